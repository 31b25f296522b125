// Package torctltest is test support: a fake tor control port, as
// net/http/httptest is a fake web server. [New] listens on loopback (TCP, or
// a Unix socket) and speaks just enough of tor's side of control-spec.txt
// for the tests of torctl and of the event sources: PROTOCOLINFO,
// AUTHCHALLENGE (SAFECOOKIE), AUTHENTICATE with every method, GETINFO (with
// data replies), GETCONF, SETEVENTS (552 for events it does not know), SETCONF, and
// asynchronous 650 events.
//
// It is not a tor: it keeps no state but what tests set and look at, and
// sends only the events a test asks for. It parses commands and computes
// the SAFECOOKIE hashes on its own, without package torctl's code, so the
// two sides check each other; for the same reason it must never import
// torctl.
package torctltest

import (
	"bufio"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Version is the tor version the fake claims, in PROTOCOLINFO and as
// GETINFO version.
const Version = "0.4.8.12"

// The SAFECOOKIE HMAC keys of control-spec.txt section 3.24.
const (
	safeCookieServerKey = "Tor safe cookie authentication server-to-controller hash"
	safeCookieClientKey = "Tor safe cookie authentication controller-to-server hash"
)

// Tor is a running fake control port. Set its exported fields before a
// client connects; they are read by the connections' goroutines.
type Tor struct {
	// Network ("tcp" or "unix") and Addr are what a client dials.
	Network, Addr string

	// Methods are the authentication methods PROTOCOLINFO offers, as tor
	// names them: SAFECOOKIE, COOKIE, HASHEDPASSWORD, NULL.
	Methods []string
	// Cookie is the 32-byte authentication cookie; CookiePath is the file
	// PROTOCOLINFO names (New writes Cookie there).
	Cookie     []byte
	CookiePath string
	// Password is what HASHEDPASSWORD accepts.
	Password string
	// Info holds the GETINFO values; a value with a "\n" is sent as a
	// data reply. Keys it lacks get 552.
	Info map[string]string
	// Conf holds the GETCONF values; keys it lacks get 552, as tor
	// answers a setting it does not know.
	Conf map[string]string
	// InfoDelay makes GETINFO of a key wait before it answers, as a
	// slow tor would.
	InfoDelay map[string]time.Duration
	// Events are the event names SETEVENTS accepts (upper case); others
	// get 552 Unrecognized event.
	Events map[string]bool
	// BadServerHash answers AUTHCHALLENGE with a wrong server hash, as a
	// server that does not know the cookie would.
	BadServerHash bool
	// OnCommand, when set, is called on the connection's goroutine after
	// the fake has answered each command, with the command line: a test
	// can send events (Conn.Send) or hang up (Conn.Close) at an exact
	// point of the conversation.
	OnCommand func(c *Conn, line string)

	ln net.Listener

	mu       sync.Mutex
	conns    map[*Conn]bool
	accepted int
	refuse   bool      // hang up on new connections, like a tor that is down
	commands []Command // every command received, in order
	before   []string  // lines to send before the next GETINFO reply
}

// Command is one command line the fake received, with the number of the
// connection that sent it (0 for the first connection accepted).
type Command struct {
	Conn int
	Line string
}

// Conn is one client's connection to the fake.
type Conn struct {
	// N numbers the connections in the order they were accepted, from 0.
	N int

	nc      net.Conn
	wmu     sync.Mutex // guards writes and events
	events  map[string]bool
	authed  bool
	expects []byte // the client hash expected after AUTHCHALLENGE
}

// Send writes lines to the client, each ended with CRLF.
func (c *Conn) Send(lines ...string) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	for _, l := range lines {
		fmt.Fprintf(c.nc, "%s\r\n", l)
	}
}

// Close hangs up on the client.
func (c *Conn) Close() { c.nc.Close() }

// DefaultEvents are the events a new fake accepts: those stock tor's
// SETEVENTS takes that privstats subscribes to. Tests that need a
// PrivCount tor, or a tor refusing some of them, set Tor.Events.
var DefaultEvents = []string{"BW", "ORCONN", "CIRC", "STREAM", "STATUS_SERVER", "CONN_BW", "CELL_STATS"}

// New starts a fake control port on network "tcp" (127.0.0.1) or "unix"
// (a socket in a temporary directory) that offers methods; t's cleanup
// stops it.
func New(t testing.TB, network string, methods ...string) *Tor {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "unix" {
		// Socket paths are limited to about 100 bytes, and test names (so
		// t.TempDir) are long.
		sockDir, err := os.MkdirTemp("", "torctl")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(sockDir) })
		addr = filepath.Join(sockDir, "control")
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	ft := &Tor{
		Network:    network,
		Addr:       ln.Addr().String(),
		Methods:    methods,
		Cookie:     make([]byte, 32),
		CookiePath: filepath.Join(t.TempDir(), "control_auth_cookie"),
		Info: map[string]string{
			"version":     Version,
			"fingerprint": "relay1 0EB7C8AAD759B26D37B857E7080FD2B138B75A1C",
		},
		Conf:      map[string]string{"TestingTorNetwork": "0"},
		InfoDelay: map[string]time.Duration{},
		Events:    map[string]bool{},
		ln:        ln,
		conns:     map[*Conn]bool{},
	}
	for _, e := range DefaultEvents {
		ft.Events[e] = true
	}
	rand.Read(ft.Cookie)
	if err := os.WriteFile(ft.CookiePath, ft.Cookie, 0o600); err != nil {
		t.Fatal(err)
	}
	go ft.serve()
	t.Cleanup(ft.Close)
	return ft
}

// Close stops listening and hangs up on every client.
func (ft *Tor) Close() {
	ft.ln.Close()
	ft.DropAll()
}

func (ft *Tor) serve() {
	for {
		nc, err := ft.ln.Accept()
		if err != nil {
			return
		}
		ft.mu.Lock()
		refuse := ft.refuse
		c := &Conn{N: ft.accepted, nc: nc, events: map[string]bool{}}
		if !refuse {
			ft.accepted++
			ft.conns[c] = true
		}
		ft.mu.Unlock()
		if refuse {
			nc.Close()
			continue
		}
		go ft.handle(c)
	}
}

// DropAll hangs up on every client, as a tor restart would.
func (ft *Tor) DropAll() {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	for c := range ft.conns {
		c.nc.Close()
		delete(ft.conns, c)
	}
}

// Refuse makes the fake hang up on new connections at once (true), like a
// tor that is down, or accept them again (false).
func (ft *Tor) Refuse(v bool) {
	ft.mu.Lock()
	ft.refuse = v
	ft.mu.Unlock()
}

// Emit sends an event ("650 BW 1 2", or the lines of a multi-line event)
// to every client subscribed to its type.
func (ft *Tor) Emit(lines ...string) {
	name := strings.Fields(lines[0][4:])[0]
	ft.mu.Lock()
	var to []*Conn
	for c := range ft.conns {
		c.wmu.Lock()
		if c.events[name] {
			to = append(to, c)
		}
		c.wmu.Unlock()
	}
	ft.mu.Unlock()
	for _, c := range to {
		c.Send(lines...)
	}
}

// SendBeforeNextGetInfo queues lines (events, typically) to be sent just
// before the next GETINFO reply: control-spec allows events between a
// command and its reply.
func (ft *Tor) SendBeforeNextGetInfo(lines ...string) {
	ft.mu.Lock()
	ft.before = append(ft.before, lines...)
	ft.mu.Unlock()
}

// Commands returns every command received so far, in order.
func (ft *Tor) Commands() []Command {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	return slices.Clone(ft.commands)
}

// SetConf returns the arguments of every SETCONF received so far, in order.
func (ft *Tor) SetConf() []string {
	var out []string
	for _, c := range ft.Commands() {
		if verb, arg, _ := strings.Cut(c.Line, " "); strings.EqualFold(verb, "SETCONF") {
			out = append(out, arg)
		}
	}
	return out
}

func (ft *Tor) offers(m string) bool { return slices.Contains(ft.Methods, m) }

func (ft *Tor) handle(c *Conn) {
	defer func() {
		c.nc.Close()
		ft.mu.Lock()
		delete(ft.conns, c)
		ft.mu.Unlock()
	}()
	br := bufio.NewReader(c.nc)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		ft.mu.Lock()
		ft.commands = append(ft.commands, Command{Conn: c.N, Line: line})
		ft.mu.Unlock()
		if !ft.answer(c, line) {
			return
		}
		if ft.OnCommand != nil {
			ft.OnCommand(c, line)
		}
	}
}

// answer replies to one command; false means hang up, as tor does after a
// failed authentication.
func (ft *Tor) answer(c *Conn, line string) bool {
	cmd, arg, _ := strings.Cut(line, " ")
	cmd = strings.ToUpper(cmd)
	switch cmd {
	case "PROTOCOLINFO":
		auth := "250-AUTH METHODS=" + strings.Join(ft.Methods, ",")
		if ft.offers("COOKIE") || ft.offers("SAFECOOKIE") {
			auth += " COOKIEFILE=" + strconv.Quote(ft.CookiePath)
		}
		c.Send("250-PROTOCOLINFO 1", auth, `250-VERSION Tor="`+Version+`"`, "250 OK")
	case "AUTHCHALLENGE":
		kind, nonceHex, _ := strings.Cut(arg, " ")
		clientNonce, err := hex.DecodeString(nonceHex)
		if kind != "SAFECOOKIE" || err != nil || !ft.offers("SAFECOOKIE") {
			c.Send("513 Invalid AUTHCHALLENGE request")
			return false
		}
		serverNonce := make([]byte, 32)
		rand.Read(serverNonce)
		msg := slices.Concat(ft.Cookie, clientNonce, serverNonce)
		serverHash := safeCookieHMAC(safeCookieServerKey, msg)
		if ft.BadServerHash {
			serverHash[0] ^= 1
		}
		c.expects = safeCookieHMAC(safeCookieClientKey, msg)
		c.Send(fmt.Sprintf("250 AUTHCHALLENGE SERVERHASH=%X SERVERNONCE=%X", serverHash, serverNonce))
	case "AUTHENTICATE":
		if !ft.authOK(c, arg) {
			c.Send("515 Authentication failed: Password did not match HashedControlPassword *or* authentication cookie.")
			return false
		}
		c.authed = true
		c.Send("250 OK")
	default:
		if !c.authed {
			c.Send("514 Authentication required.")
			return false
		}
		ft.command(c, cmd, arg)
	}
	return true
}

func (ft *Tor) authOK(c *Conn, arg string) bool {
	if c.expects != nil {
		got, err := hex.DecodeString(arg)
		return err == nil && hmac.Equal(got, c.expects)
	}
	if got, err := hex.DecodeString(arg); err == nil && arg != "" {
		if ft.offers("COOKIE") && hmac.Equal(got, ft.Cookie) {
			return true
		}
		if ft.offers("HASHEDPASSWORD") && string(got) == ft.Password {
			return true
		}
	}
	if pw, err := strconv.Unquote(arg); err == nil && ft.offers("HASHEDPASSWORD") && pw == ft.Password {
		return true
	}
	return arg == "" && ft.offers("NULL")
}

func (ft *Tor) command(c *Conn, cmd, arg string) {
	switch cmd {
	case "GETINFO":
		ft.mu.Lock()
		before := ft.before
		ft.before = nil
		ft.mu.Unlock()
		c.Send(before...)
		var out []string
		for _, k := range strings.Fields(arg) {
			time.Sleep(ft.InfoDelay[k])
			v, ok := ft.Info[k]
			if !ok {
				c.Send(fmt.Sprintf("552 Unrecognized key %q", k))
				return
			}
			if !strings.Contains(v, "\n") {
				out = append(out, fmt.Sprintf("250-%s=%s", k, v))
				continue
			}
			out = append(out, fmt.Sprintf("250+%s=", k))
			for l := range strings.SplitSeq(v, "\n") {
				if strings.HasPrefix(l, ".") {
					l = "." + l
				}
				out = append(out, l)
			}
			out = append(out, ".")
		}
		c.Send(append(out, "250 OK")...)
	case "SETEVENTS":
		names := strings.Fields(arg)
		for _, n := range names {
			if !ft.Events[strings.ToUpper(n)] {
				c.Send(fmt.Sprintf("552 Unrecognized event %q", n))
				return
			}
		}
		c.wmu.Lock()
		c.events = map[string]bool{}
		for _, n := range names {
			c.events[strings.ToUpper(n)] = true
		}
		c.wmu.Unlock()
		c.Send("250 OK")
	case "SETCONF":
		c.Send("250 OK")
	case "GETCONF":
		var out []string
		for _, k := range strings.Fields(arg) {
			v, ok := ft.Conf[k]
			if !ok {
				c.Send(fmt.Sprintf("552 Unrecognized configuration key %q", k))
				return
			}
			out = append(out, k+"="+v)
		}
		if len(out) == 0 {
			out = []string{"OK"}
		}
		for i, l := range out {
			sep := "-"
			if i == len(out)-1 {
				sep = " "
			}
			c.Send("250" + sep + l)
		}
	default:
		c.Send(fmt.Sprintf("510 Unrecognized command %q", cmd))
	}
}

func safeCookieHMAC(key string, msg []byte) []byte {
	h := hmac.New(sha256.New, []byte(key))
	h.Write(msg)
	return h.Sum(nil)
}
