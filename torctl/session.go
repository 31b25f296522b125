package torctl

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/privstats/privstats/internal/wait"
)

// Defaults for SessionConfig.
const (
	DefaultMinBackoff     = time.Second
	DefaultMaxBackoff     = time.Minute
	DefaultSetupTimeout   = 30 * time.Second
	maxRecordedGaps       = 1024
	defaultControlNetwork = "tcp"
)

// SessionConfig says where tor is and what a Session asks of it.
type SessionConfig struct {
	Network string // "tcp" (default) or "unix"
	Address string // host:port, or the socket path
	Auth    AuthOptions

	// Events to subscribe to. Events tor does not recognise are dropped
	// (and listed in ConnectInfo.Unrecognized) rather than failing the
	// session, so one configuration works across tor versions.
	Events []string
	// SetConf is applied after authenticating and before SETEVENTS on
	// every connection, e.g. EnablePrivCount=1 for PrivCount tor.
	SetConf []KeyValue

	// OnEvent receives events; see Conn.SetEventHandler for its rules.
	OnEvent func(*Event)
	// OnConnect, if set, runs once events are flowing on each new
	// connection, e.g. to GETINFO fingerprint. An error closes the
	// connection and the Session retries.
	OnConnect func(ctx context.Context, c *Conn, info ConnectInfo) error
	// OnGap, if set, is called with each gap once it has ended.
	OnGap func(Gap)
	// OnError, if set, is told of each failed attempt and lost connection.
	OnError func(error)

	// Backoff between attempts grows from MinBackoff to MaxBackoff, with
	// jitter. The first retry after losing a connection is immediate.
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// SetupTimeout bounds dialing, authenticating and subscribing.
	SetupTimeout time.Duration
}

// ConnectInfo describes a connection a Session has set up.
type ConnectInfo struct {
	ProtocolInfo *ProtocolInfo
	AuthMethod   AuthMethod
	Events       []string // subscribed
	Unrecognized []string // asked for but unknown to this tor
}

// Gap is a period in which a Session could not have seen tor's events:
// from losing (or failing to make) a connection to having subscribed to
// events on a new one. A collector reports gaps about itself so that
// readers of its results know when it was blind; gaps say nothing about
// the relay's traffic.
type Gap struct {
	Start time.Time
	End   time.Time // zero while the gap is still open
	Err   error     // what started the gap
}

// Duration returns End-Start, or 0 for an open gap.
func (g Gap) Duration() time.Duration {
	if g.End.IsZero() {
		return 0
	}
	return g.End.Sub(g.Start)
}

// Session keeps one control connection to tor alive: it dials,
// authenticates, subscribes, delivers events and, when the connection
// is lost, reconnects with backoff and records the gap.
type Session struct {
	cfg SessionConfig

	mu       sync.Mutex
	conn     *Conn
	gaps     []Gap
	open     bool // a gap is open
	openGap  Gap
	running  bool
	finished bool
}

// NewSession returns a Session for cfg. Call Run to start it.
func NewSession(cfg SessionConfig) *Session {
	if cfg.Network == "" {
		cfg.Network = defaultControlNetwork
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(DefaultMaxBackoff, cfg.MinBackoff)
	}
	if cfg.SetupTimeout <= 0 {
		cfg.SetupTimeout = DefaultSetupTimeout
	}
	return &Session{cfg: cfg}
}

// Conn returns the current connection, or nil while disconnected.
func (s *Session) Conn() *Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn
}

// Gaps returns the gaps recorded so far, oldest first, ending with the
// open gap (End zero) if the session is disconnected now. Only the most
// recent 1024 are kept; use OnGap to keep all.
func (s *Session) Gaps() []Gap {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := slices.Clone(s.gaps)
	if s.open {
		g = append(g, s.openGap)
	}
	return g
}

// Run connects and keeps reconnecting until ctx ends, then closes the
// connection, closes any open gap at that moment and returns ctx's error.
// A Session runs once.
func (s *Session) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.running || s.finished {
		s.mu.Unlock()
		return errors.New("torctl: Session.Run called twice")
	}
	s.running = true
	s.mu.Unlock()
	defer func() {
		now := time.Now()
		s.mu.Lock()
		s.running, s.finished = false, true
		s.mu.Unlock()
		s.endGap(now)
	}()

	start := time.Now()
	attempt := 0
	for {
		c, info, err := s.connect(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			s.startGap(start, err)
			s.report(err)
			if !wait.Sleep(ctx, backoff(attempt, s.cfg.MinBackoff, s.cfg.MaxBackoff)) {
				return ctx.Err()
			}
			attempt++
			continue
		}
		s.endGap(time.Now())
		attempt = 0
		s.mu.Lock()
		s.conn = c
		s.mu.Unlock()
		if s.cfg.OnConnect != nil {
			if err := s.cfg.OnConnect(ctx, c, info); err != nil {
				c.abort(fmt.Errorf("torctl: OnConnect: %w", err))
			}
		}
		select {
		case <-c.Done():
		case <-ctx.Done():
			c.Close()
			s.mu.Lock()
			s.conn = nil
			s.mu.Unlock()
			return ctx.Err()
		}
		lost := time.Now()
		s.mu.Lock()
		s.conn = nil
		s.mu.Unlock()
		err = c.Err()
		s.startGap(lost, err)
		s.report(err)
		start = lost
	}
}

// connect dials, authenticates, configures and subscribes.
func (s *Session) connect(ctx context.Context) (*Conn, ConnectInfo, error) {
	var info ConnectInfo
	ctx, cancel := context.WithTimeout(ctx, s.cfg.SetupTimeout)
	defer cancel()
	c, err := Dial(ctx, s.cfg.Network, s.cfg.Address)
	if err != nil {
		return nil, info, err
	}
	fail := func(err error) (*Conn, ConnectInfo, error) {
		c.Close()
		return nil, info, err
	}
	if s.cfg.OnEvent != nil {
		c.SetEventHandler(s.cfg.OnEvent)
	}
	if info.ProtocolInfo, err = c.ProtocolInfo(ctx); err != nil {
		return fail(err)
	}
	if info.AuthMethod, err = c.Authenticate(ctx, s.cfg.Auth); err != nil {
		return fail(err)
	}
	if len(s.cfg.SetConf) > 0 {
		if err := c.SetConf(ctx, s.cfg.SetConf...); err != nil {
			return fail(err)
		}
	}
	if info.Events, info.Unrecognized, err = c.SetKnownEvents(ctx, s.cfg.Events...); err != nil {
		return fail(err)
	}
	return c, info, nil
}

func (s *Session) startGap(at time.Time, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.open {
		s.open = true
		s.openGap = Gap{Start: at, Err: err}
	}
}

func (s *Session) endGap(at time.Time) {
	s.mu.Lock()
	if !s.open {
		s.mu.Unlock()
		return
	}
	g := s.openGap
	g.End = at
	s.open = false
	if len(s.gaps) == maxRecordedGaps {
		s.gaps = slices.Delete(s.gaps, 0, 1)
	}
	s.gaps = append(s.gaps, g)
	s.mu.Unlock()
	if s.cfg.OnGap != nil {
		s.cfg.OnGap(g)
	}
}

func (s *Session) report(err error) {
	if s.cfg.OnError != nil && err != nil {
		s.cfg.OnError(err)
	}
}

// backoff returns the wait before retry number attempt (0-based): a
// delay that doubles from lo up to hi, of which a random half is waited,
// so that collectors restarted together do not reconnect in lockstep.
func backoff(attempt int, lo, hi time.Duration) time.Duration {
	d := hi
	if attempt < 32 && lo<<attempt > 0 && lo<<attempt < hi {
		d = lo << attempt
	}
	half := d / 2
	return half + rand.N(d-half+1)
}
