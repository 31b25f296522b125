package source

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/privstats/privstats/stats"
	"github.com/privstats/privstats/torctl"
)

// DefaultControlAddress is where tor's control port usually listens.
const DefaultControlAddress = "127.0.0.1:9051"

// ControlOptions says how to reach tor's control port.
type ControlOptions struct {
	// Address is host:port or unix:/path/to/socket; DefaultControlAddress
	// if empty.
	Address string
	// Password is for HASHEDPASSWORD authentication.
	Password string
	// CookieFile overrides the cookie file tor names in PROTOCOLINFO.
	CookieFile string
	// AllowedAuth limits the authentication methods tried; nil allows all.
	AllowedAuth []torctl.AuthMethod
	// Events to subscribe to; nil means every event the catalogue can use
	// (stats.ControlEvents). Events this tor does not know are dropped
	// and logged. If any PRIVCOUNT_* event is accepted, the source also
	// sets EnablePrivCount 1.
	Events []string
	// Logger receives connection news; nil uses slog.Default().
	Logger *slog.Logger
	// MinBackoff and MaxBackoff bound the wait between reconnection
	// attempts; torctl's defaults (1 s, 1 min) if zero.
	MinBackoff, MaxBackoff time.Duration
}

// Control returns a source that reads events from a live tor control port.
// It keeps the connection up, reconnecting with backoff, and reports every
// period without a subscribed connection as a gap.
func Control(opts ControlOptions) Source {
	return &control{opts: opts}
}

type control struct {
	opts ControlOptions
	link link
	// sess is the running session, whose connection says whether tor is
	// reachable right now.
	sess atomic.Pointer[torctl.Session]
}

// Status says whether the control connection is up, and when tor was last
// heard from: the connection's setup or its latest BW event, which tor
// sends every second whatever the relay's traffic.
func (c *control) Status() Status {
	st := c.link.status()
	sess := c.sess.Load()
	st.Connected = st.Connected && sess != nil && sess.Conn() != nil
	return st
}

// controlNetwork splits a control address (host:port or unix:/path; ""
// for DefaultControlAddress) into what to dial.
func controlNetwork(address string) (network, addr string) {
	if address == "" {
		address = DefaultControlAddress
	}
	if p, ok := strings.CutPrefix(address, "unix:"); ok {
		return "unix", p
	}
	return "tcp", address
}

// privcountSetting turns on PrivCount-patched tor's events.
var privcountSetting = torctl.KeyValue{Key: "EnablePrivCount", Value: "1"}

func (c *control) Run(ctx context.Context, _ *Windows, emit func(time.Time, []byte), gap func(start, end time.Time)) error {
	o := c.opts
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	network, addr := controlNetwork(o.Address)
	if o.Address == "" {
		o.Address = DefaultControlAddress
	}
	events := o.Events
	if events == nil {
		events = stats.ControlEvents()
	}

	// emit and gap run on different goroutines of the session; the lock
	// keeps them from overlapping, as Source promises.
	var mu sync.Mutex
	var line []byte
	toldPrivCount := false // OnConnect runs on one goroutine at a time
	sess := torctl.NewSession(torctl.SessionConfig{
		Network: network,
		Address: addr,
		Auth:    torctl.AuthOptions{Password: o.Password, CookiePath: o.CookieFile, Allowed: o.AllowedAuth},
		Events:  events,
		OnEvent: func(ev *torctl.Event) {
			if ev.Kind == torctl.EventBW {
				c.link.up(time.Now())
			}
			mu.Lock()
			defer mu.Unlock()
			line = append(append(line[:0], "650 "...), ev.Line()...)
			emit(time.Now(), line)
		},
		OnConnect: func(ctx context.Context, conn *torctl.Conn, info torctl.ConnectInfo) error {
			c.link.up(time.Now())
			version := ""
			if info.ProtocolInfo != nil {
				version = info.ProtocolInfo.TorVersion
			}
			log.Info("tor control port connected", "address", o.Address, "tor", version,
				"auth", string(info.AuthMethod), "events", strings.Join(info.Events, " "))
			// Stock tor knows no PRIVCOUNT_* event: that is expected, and
			// said once, not on every reconnection. Any other event tor
			// does not know is a surprise worth a warning each time.
			var privcount, other []string
			for _, e := range info.Unrecognized {
				if strings.HasPrefix(e, "PRIVCOUNT_") {
					privcount = append(privcount, e)
				} else {
					other = append(other, e)
				}
			}
			if len(privcount) > 0 && !toldPrivCount {
				toldPrivCount = true
				log.Info("tor is not PrivCount-patched: statistics of PrivCount events will count nothing (privstats collect --check lists what this tor feeds)",
					"events", strings.Join(privcount, " "))
			}
			if len(other) > 0 {
				log.Warn("tor does not know these events; statistics that need them will count nothing",
					"events", strings.Join(other, " "))
			}
			for _, e := range info.Events {
				if strings.HasPrefix(e, "PRIVCOUNT_") {
					if err := conn.SetConf(ctx, privcountSetting); err != nil {
						log.Warn("tor accepted PrivCount events but not EnablePrivCount=1; they may never come", "err", err)
					}
					break
				}
			}
			return nil
		},
		OnGap: func(g torctl.Gap) {
			mu.Lock()
			defer mu.Unlock()
			log.Warn("events from tor were missed", "from", g.Start, "to", g.End, "for", g.Duration().Round(time.Millisecond), "cause", g.Err)
			gap(g.Start, g.End)
		},
		OnError: func(err error) {
			c.link.down()
			// A problem only the operator can fix is an ERROR naming the
			// fix; the session still retries (with capped backoff), so
			// the collector recovers by itself once it is fixed.
			if p := DiagnoseControl(o.Address, err); p.Permanent {
				log.Error("cannot use tor's control port", "address", o.Address, "err", err, "fix", p.Fix)
			} else if p.Fix != "" {
				log.Warn("tor control port", "address", o.Address, "err", err, "hint", p.Fix)
			} else {
				log.Warn("tor control port", "address", o.Address, "err", err)
			}
		},
		MinBackoff: o.MinBackoff,
		MaxBackoff: o.MaxBackoff,
	})
	c.sess.Store(sess)
	err := sess.Run(ctx)
	if ctx.Err() != nil {
		return nil
	}
	return err
}
