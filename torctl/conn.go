package torctl

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// ErrClosed is returned by commands on a Conn closed by its owner.
var ErrClosed = errors.New("torctl: connection closed")

// Event is one asynchronous (650) reply. An event handler gets an Event
// that is reused for the next one: its slices are valid only until the
// handler returns. Use Clone to keep it.
type Event struct {
	Kind  EventKind
	Lines []ReplyLine
}

// Line returns the text of the event's first line, e.g. "BW 155 593",
// which is what the Parse functions take.
func (e *Event) Line() []byte {
	if len(e.Lines) == 0 {
		return nil
	}
	return e.Lines[0].Text
}

// Clone returns a copy of e that shares no memory with it.
func (e *Event) Clone() *Event {
	r := (&Reply{Code: 650, Lines: e.Lines}).Clone()
	return &Event{Kind: e.Kind, Lines: r.Lines}
}

// Conn is an open control connection. Its methods may be called from
// several goroutines: commands are sent one at a time, each waiting for
// its reply, while a reader goroutine hands events to the event handler.
type Conn struct {
	nc net.Conn
	r  *Reader
	bw *bufio.Writer

	cmdMu sync.Mutex // one command on the wire at a time

	mu      sync.Mutex // guards pending, err, closed, pi
	pending []chan result
	err     error // why the connection ended or is ending
	closed  bool  // the reader goroutine has finished
	pi      *ProtocolInfo

	done    chan struct{}
	handler atomic.Pointer[func(*Event)]
}

type result struct {
	rep *Reply
	err error
}

// Dial connects to tor's control port. network is "tcp" (or "tcp4",
// "tcp6") with a host:port address, or "unix" with a socket path.
func Dial(ctx context.Context, network, addr string) (*Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6", "unix":
	default:
		return nil, fmt.Errorf("torctl: unsupported network %q (want tcp or unix)", network)
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("torctl: dialing control port: %w", err)
	}
	return NewConn(nc), nil
}

// NewConn starts a control connection over nc, which the Conn then owns.
func NewConn(nc net.Conn) *Conn {
	c := &Conn{
		nc:   nc,
		r:    NewReader(nc),
		bw:   bufio.NewWriter(nc),
		done: make(chan struct{}),
	}
	go c.readLoop()
	return c
}

// SetEventHandler sets the function that receives asynchronous events.
// It runs on the connection's reader goroutine, one event at a time: it
// must return quickly, and must neither wait for a command on the same
// Conn (the reply would queue behind the handler) nor call its Close
// (which waits for the handler). Set it before SetEvents; events that
// arrive with no handler are dropped.
func (c *Conn) SetEventHandler(h func(*Event)) {
	if h == nil {
		c.handler.Store(nil)
		return
	}
	c.handler.Store(&h)
}

// Done is closed once the connection has ended and no more events will
// be delivered.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns why the connection ended, or nil while it is open.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		return nil
	}
	return c.err
}

// Close closes the connection. Commands waiting for replies fail with
// ErrClosed.
func (c *Conn) Close() error {
	c.abort(ErrClosed)
	<-c.done
	return nil
}

// abort records why the connection is ending and closes the socket; the
// reader goroutine then finishes the shutdown.
func (c *Conn) abort(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
	c.nc.Close()
}

func (c *Conn) readLoop() {
	var rep Reply
	ev := new(Event)
	var err error
	for {
		if err = c.r.ReadReplyInto(&rep); err != nil {
			break
		}
		if rep.Code == 650 {
			if h := c.handler.Load(); h != nil {
				ev.Lines = rep.Lines
				ev.Kind = EventType(ev.Line())
				(*h)(ev)
			}
			continue
		}
		c.mu.Lock()
		var ch chan result
		if len(c.pending) > 0 {
			ch = c.pending[0]
			c.pending = c.pending[1:]
		}
		c.mu.Unlock()
		if ch == nil {
			err = &ProtocolError{Line: c.r.Line(), Msg: fmt.Sprintf("%03d reply with no command waiting for it", rep.Code)}
			break
		}
		ch <- result{rep: rep.Clone()}
	}
	if errors.Is(err, io.EOF) {
		err = fmt.Errorf("torctl: tor closed the control connection: %w", err)
	}
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	err = c.err
	pending := c.pending
	c.pending = nil
	c.closed = true
	c.mu.Unlock()
	c.nc.Close()
	for _, ch := range pending {
		ch <- result{err: err}
	}
	close(c.done)
}

// Do sends one command line (without CRLF) and waits for its reply. A
// reply other than 2xx is returned together with a *ReplyError. If ctx
// ends first, Do returns; the reply, when it comes, is discarded.
func (c *Conn) Do(ctx context.Context, cmd string) (*Reply, error) {
	if strings.ContainsAny(cmd, "\r\n") {
		return nil, errors.New("torctl: command contains a line break")
	}
	c.cmdMu.Lock()
	defer c.cmdMu.Unlock()
	ch := make(chan result, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, err
	}
	// Queue before writing, so the reader cannot see the reply first.
	c.pending = append(c.pending, ch)
	c.mu.Unlock()

	deadline, _ := ctx.Deadline() // zero: no deadline
	c.nc.SetWriteDeadline(deadline)
	c.bw.WriteString(cmd)
	c.bw.WriteString("\r\n")
	if err := c.bw.Flush(); err != nil {
		// Part of a command may be on the wire: tor and we disagree.
		err = fmt.Errorf("torctl: sending %s: %w", verb(cmd), err)
		c.abort(err)
		return nil, err
	}
	select {
	case res := <-ch:
		if res.err != nil {
			return nil, res.err
		}
		return res.rep, res.rep.Err()
	case <-ctx.Done():
		return nil, fmt.Errorf("torctl: waiting for the reply to %s: %w", verb(cmd), ctx.Err())
	}
}

// verb is the command's keyword, safe to log (arguments may be secrets).
func verb(cmd string) string {
	if i := strings.IndexByte(cmd, ' '); i >= 0 {
		return cmd[:i]
	}
	return cmd
}

// ProtocolInfo is tor's answer to PROTOCOLINFO.
type ProtocolInfo struct {
	ProtocolVersion int
	AuthMethods     []AuthMethod
	CookieFile      string // absent unless COOKIE or SAFECOOKIE is offered
	TorVersion      string
}

// ProtocolInfo asks tor which authentication methods it accepts and
// which version it runs ("PROTOCOLINFO 1"). Tor answers only once before
// authentication, so the answer is kept and returned again afterwards.
func (c *Conn) ProtocolInfo(ctx context.Context) (*ProtocolInfo, error) {
	c.mu.Lock()
	pi := c.pi
	c.mu.Unlock()
	if pi != nil {
		return pi, nil
	}
	rep, err := c.Do(ctx, "PROTOCOLINFO 1")
	if err != nil {
		return nil, err
	}
	pi, err = parseProtocolInfo(rep)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.pi = pi
	c.mu.Unlock()
	return pi, nil
}

func parseProtocolInfo(rep *Reply) (*ProtocolInfo, error) {
	pi := &ProtocolInfo{}
	sawAuth := false
	for _, l := range rep.Lines {
		text := string(l.Text)
		kw, rest, _ := strings.Cut(text, " ")
		switch kw {
		case "PROTOCOLINFO":
			v, err := strconv.Atoi(strings.TrimSpace(rest))
			if err != nil {
				return nil, fmt.Errorf("torctl: PROTOCOLINFO: bad protocol version in %q", text)
			}
			pi.ProtocolVersion = v
		case "AUTH":
			a, err := ParseArgs(rest)
			if err != nil {
				return nil, fmt.Errorf("torctl: PROTOCOLINFO: AUTH line: %w", err)
			}
			methods, ok := a.Get("METHODS")
			if !ok {
				return nil, fmt.Errorf("torctl: PROTOCOLINFO: AUTH line without METHODS: %q", text)
			}
			for m := range strings.SplitSeq(methods, ",") {
				if m != "" {
					pi.AuthMethods = append(pi.AuthMethods, AuthMethod(strings.ToUpper(m)))
				}
			}
			pi.CookieFile, _ = a.Get("COOKIEFILE")
			sawAuth = true
		case "VERSION":
			a, err := ParseArgs(rest)
			if err != nil {
				return nil, fmt.Errorf("torctl: PROTOCOLINFO: VERSION line: %w", err)
			}
			pi.TorVersion, _ = a.Get("Tor")
		}
		// Other InfoLines, and "OK", are ignored as control-spec says.
	}
	if !sawAuth {
		return nil, errors.New("torctl: PROTOCOLINFO reply has no AUTH line")
	}
	return pi, nil
}

// GetInfo asks tor for the values of keys, e.g. "version" or
// "fingerprint". Multi-line values (sent as data blocks) have lines
// joined by "\n".
func (c *Conn) GetInfo(ctx context.Context, keys ...string) (map[string]string, error) {
	if len(keys) == 0 {
		return nil, errors.New("torctl: GetInfo needs at least one key")
	}
	for _, k := range keys {
		if k == "" || strings.ContainsAny(k, " \r\n\"") {
			return nil, fmt.Errorf("torctl: GETINFO key %q is not a keyword", k)
		}
	}
	rep, err := c.Do(ctx, "GETINFO "+strings.Join(keys, " "))
	if err != nil {
		return nil, err
	}
	values := make(map[string]string, len(keys))
	for i, l := range rep.Lines {
		if i == len(rep.Lines)-1 && !l.HasData && string(l.Text) == "OK" {
			break
		}
		k, v, ok := strings.Cut(string(l.Text), "=")
		if !ok {
			return nil, fmt.Errorf("torctl: GETINFO reply line %q is not key=value", clip(l.Text))
		}
		if l.HasData {
			if v != "" {
				return nil, fmt.Errorf("torctl: GETINFO data line %q has text after '='", clip(l.Text))
			}
			v = string(l.Data)
		}
		values[k] = v
	}
	return values, nil
}

// GetConf returns the value of one of tor's settings, e.g.
// TestingTorNetwork; "" for a setting tor has at its default without a
// value.
func (c *Conn) GetConf(ctx context.Context, key string) (string, error) {
	if key == "" || strings.ContainsAny(key, " \r\n\"=") {
		return "", fmt.Errorf("torctl: GETCONF key %q is not a keyword", key)
	}
	rep, err := c.Do(ctx, "GETCONF "+key)
	if err != nil {
		return "", err
	}
	for _, l := range rep.Lines {
		k, v, _ := strings.Cut(string(l.Text), "=")
		if strings.EqualFold(k, key) {
			return v, nil
		}
	}
	return "", fmt.Errorf("torctl: GETCONF reply does not name %s", key)
}

// UnrecognizedEventError is tor's 552 answer to SETEVENTS naming an event
// it does not know, for instance TB_EMPTY on tor 0.4.7 and later, or a
// PRIVCOUNT_ event on a stock tor. Tor changes no subscription on this
// error, so the caller can retry without the event.
type UnrecognizedEventError struct {
	Event string // as tor quoted it; empty if the reply named none
	Text  string // tor's whole reply text
}

func (e *UnrecognizedEventError) Error() string {
	return fmt.Sprintf("torctl: tor does not recognise event %q (%s)", e.Event, e.Text)
}

// SetEvents replaces the set of events tor sends on this connection;
// no names turns them all off.
func (c *Conn) SetEvents(ctx context.Context, names ...string) error {
	for _, n := range names {
		if !validEventName(n) {
			return fmt.Errorf("torctl: %q is not an event name", n)
		}
	}
	cmd := "SETEVENTS"
	if len(names) > 0 {
		cmd += " " + strings.Join(names, " ")
	}
	_, err := c.Do(ctx, cmd)
	var re *ReplyError
	if errors.As(err, &re) && re.Code == 552 {
		ue := &UnrecognizedEventError{Text: re.Text}
		if i := strings.IndexByte(re.Text, '"'); i >= 0 {
			ue.Event, _ = UnquoteString(strings.TrimSpace(re.Text[i:]))
		}
		return ue
	}
	return err
}

func validEventName(n string) bool {
	if n == "" {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || c == '_') {
			return false
		}
	}
	return true
}

// SetKnownEvents subscribes to those of names that this tor knows: each
// one tor refuses as unrecognized (PRIVCOUNT_* on stock tor) is dropped
// and the rest asked for again, so one list works across tor versions. It
// returns the events subscribed to and those tor does not know.
func (c *Conn) SetKnownEvents(ctx context.Context, names ...string) (subscribed, unrecognized []string, err error) {
	events := slices.Clone(names)
	for len(events) > 0 {
		err := c.SetEvents(ctx, events...)
		var ue *UnrecognizedEventError
		if errors.As(err, &ue) {
			i := slices.IndexFunc(events, func(e string) bool { return strings.EqualFold(e, ue.Event) })
			if i >= 0 {
				unrecognized = append(unrecognized, events[i])
				events = slices.Delete(events, i, i+1)
				continue
			}
		}
		if err != nil {
			return nil, unrecognized, err
		}
		break
	}
	return events, unrecognized, nil
}

// SetConf changes tor's configuration, all settings or none ("SETCONF").
// Values are always sent quoted.
func (c *Conn) SetConf(ctx context.Context, settings ...KeyValue) error {
	if len(settings) == 0 {
		return errors.New("torctl: SetConf needs at least one setting")
	}
	var b strings.Builder
	b.WriteString("SETCONF")
	for _, s := range settings {
		if s.Key == "" || strings.ContainsFunc(s.Key, func(r rune) bool { return r > 0x7f || !isKeywordChar(byte(r)) }) {
			return fmt.Errorf("torctl: %q is not a configuration option name", s.Key)
		}
		b.WriteByte(' ')
		b.WriteString(s.Key)
		b.WriteByte('=')
		b.WriteString(QuoteString(s.Value))
	}
	_, err := c.Do(ctx, b.String())
	return err
}
