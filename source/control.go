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

// privcountSetting turns on PrivCount-patched tor's events.
var privcountSetting = torctl.KeyValue{Key: "EnablePrivCount", Value: "1"}

func (c *control) Run(ctx context.Context, _ *Windows, emit func(time.Time, []byte), gap func(start, end time.Time)) error {
	o := c.opts
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	network, addr := "tcp", o.Address
	if addr == "" {
		addr = DefaultControlAddress
	}
	if p, ok := strings.CutPrefix(addr, "unix:"); ok {
		network, addr = "unix", p
	}
	events := o.Events
	if events == nil {
		events = stats.ControlEvents()
	}

	// emit and gap run on different goroutines of the session; the lock
	// keeps them from overlapping, as Source promises.
	var mu sync.Mutex
	var line []byte
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
			if len(info.Unrecognized) > 0 {
				log.Warn("tor does not know these events; statistics that need them will count nothing",
					"events", strings.Join(info.Unrecognized, " "))
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
			log.Warn("tor control port", "err", err)
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
