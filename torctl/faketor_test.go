package torctl

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
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeTor is a control port that speaks just enough of tor's side of the
// protocol for these tests: PROTOCOLINFO, AUTHCHALLENGE, AUTHENTICATE with
// every method, GETINFO (with data replies), SETEVENTS (with 552 for
// events it does not know), SETCONF and asynchronous events. It parses
// commands on its own, without this package's code, so the two sides
// check each other.
type fakeTor struct {
	t       *testing.T
	ln      net.Listener
	network string
	addr    string

	methods       []string // offered in PROTOCOLINFO
	cookie        []byte
	cookiePath    string
	password      string
	info          map[string]string // GETINFO values; "\n" makes a data reply
	known         map[string]bool   // events SETEVENTS accepts
	badServerHash bool              // answer AUTHCHALLENGE with a wrong hash

	mu       sync.Mutex
	conns    map[*fakeConn]bool
	refuse   bool     // hang up on new connections, like a tor that is down
	commands []string // every command received, in order
	before   []string // lines to send before the next GETINFO reply
	setconf  []string
}

type fakeConn struct {
	nc      net.Conn
	wmu     sync.Mutex
	authed  bool
	events  map[string]bool
	expects []byte // client hash expected after AUTHCHALLENGE
}

func (fc *fakeConn) send(lines ...string) {
	fc.wmu.Lock()
	defer fc.wmu.Unlock()
	for _, l := range lines {
		fmt.Fprintf(fc.nc, "%s\r\n", l)
	}
}

// newFakeTor starts a fake control port on network "tcp" (127.0.0.1) or
// "unix" (a socket in a temporary directory), offering methods.
func newFakeTor(t *testing.T, network string, methods ...string) *fakeTor {
	t.Helper()
	dir := t.TempDir()
	addr := "127.0.0.1:0"
	if network == "unix" {
		// Socket paths are limited to about 100 bytes; test names are long.
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
	ft := &fakeTor{
		t: t, ln: ln, network: network, addr: ln.Addr().String(),
		methods:    methods,
		cookie:     make([]byte, 32),
		cookiePath: filepath.Join(dir, "control_auth_cookie"),
		info: map[string]string{
			"version":     "0.4.8.12",
			"fingerprint": "relay1 0EB7C8AAD759B26D37B857E7080FD2B138B75A1C",
		},
		known: map[string]bool{"BW": true, "ORCONN": true, "CIRC": true, "STREAM": true,
			"STATUS_SERVER": true, "CONN_BW": true, "CELL_STATS": true},
		conns: map[*fakeConn]bool{},
	}
	rand.Read(ft.cookie)
	if err := os.WriteFile(ft.cookiePath, ft.cookie, 0o600); err != nil {
		t.Fatal(err)
	}
	go ft.serve()
	t.Cleanup(ft.close)
	return ft
}

func (ft *fakeTor) close() {
	ft.ln.Close()
	ft.dropAll()
}

func (ft *fakeTor) serve() {
	for {
		nc, err := ft.ln.Accept()
		if err != nil {
			return
		}
		ft.mu.Lock()
		refuse := ft.refuse
		fc := &fakeConn{nc: nc, events: map[string]bool{}}
		if !refuse {
			ft.conns[fc] = true
		}
		ft.mu.Unlock()
		if refuse {
			nc.Close()
			continue
		}
		go ft.handle(fc)
	}
}

// dropAll hangs up on every client, as a tor restart would.
func (ft *fakeTor) dropAll() {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	for fc := range ft.conns {
		fc.nc.Close()
		delete(ft.conns, fc)
	}
}

func (ft *fakeTor) setRefuse(v bool) {
	ft.mu.Lock()
	ft.refuse = v
	ft.mu.Unlock()
}

// emit sends an event line ("650 BW 1 2" or a multi-line event) to every
// client subscribed to its type.
func (ft *fakeTor) emit(lines ...string) {
	name := strings.Fields(lines[0][4:])[0]
	ft.mu.Lock()
	var to []*fakeConn
	for fc := range ft.conns {
		fc.wmu.Lock()
		if fc.events[name] {
			to = append(to, fc)
		}
		fc.wmu.Unlock()
	}
	ft.mu.Unlock()
	for _, fc := range to {
		fc.send(lines...)
	}
}

func (ft *fakeTor) sendBeforeNextReply(lines ...string) {
	ft.mu.Lock()
	ft.before = append(ft.before, lines...)
	ft.mu.Unlock()
}

func (ft *fakeTor) received() []string {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	return append([]string(nil), ft.commands...)
}

func (ft *fakeTor) offers(m string) bool {
	for _, o := range ft.methods {
		if o == m {
			return true
		}
	}
	return false
}

func (ft *fakeTor) handle(fc *fakeConn) {
	defer func() {
		fc.nc.Close()
		ft.mu.Lock()
		delete(ft.conns, fc)
		ft.mu.Unlock()
	}()
	br := bufio.NewReader(fc.nc)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		cmd, arg, _ := strings.Cut(line, " ")
		cmd = strings.ToUpper(cmd)
		ft.mu.Lock()
		ft.commands = append(ft.commands, line)
		ft.mu.Unlock()
		switch cmd {
		case "PROTOCOLINFO":
			auth := "250-AUTH METHODS=" + strings.Join(ft.methods, ",")
			if ft.offers("COOKIE") || ft.offers("SAFECOOKIE") {
				auth += " COOKIEFILE=" + strconv.Quote(ft.cookiePath)
			}
			fc.send("250-PROTOCOLINFO 1", auth, `250-VERSION Tor="0.4.8.12"`, "250 OK")
		case "AUTHCHALLENGE":
			kind, nonceHex, _ := strings.Cut(arg, " ")
			clientNonce, err := hex.DecodeString(nonceHex)
			if kind != "SAFECOOKIE" || err != nil || !ft.offers("SAFECOOKIE") {
				fc.send("513 Invalid AUTHCHALLENGE request")
				return
			}
			serverNonce := make([]byte, 32)
			rand.Read(serverNonce)
			msg := append(append(append([]byte{}, ft.cookie...), clientNonce...), serverNonce...)
			serverHash := fakeHMAC(safeCookieServerKey, msg)
			if ft.badServerHash {
				serverHash[0] ^= 1
			}
			fc.expects = fakeHMAC(safeCookieClientKey, msg)
			fc.send(fmt.Sprintf("250 AUTHCHALLENGE SERVERHASH=%X SERVERNONCE=%X", serverHash, serverNonce))
		case "AUTHENTICATE":
			if !ft.authOK(fc, arg) {
				fc.send("515 Authentication failed: Password did not match HashedControlPassword *or* authentication cookie.")
				return
			}
			fc.authed = true
			fc.send("250 OK")
		default:
			if !fc.authed {
				fc.send("514 Authentication required.")
				return
			}
			ft.command(fc, cmd, arg)
		}
	}
}

func (ft *fakeTor) authOK(fc *fakeConn, arg string) bool {
	if fc.expects != nil {
		got, err := hex.DecodeString(arg)
		return err == nil && hmac.Equal(got, fc.expects)
	}
	if got, err := hex.DecodeString(arg); err == nil && arg != "" {
		if ft.offers("COOKIE") && hmac.Equal(got, ft.cookie) {
			return true
		}
		if ft.offers("HASHEDPASSWORD") && string(got) == ft.password {
			return true
		}
	}
	if pw, err := strconv.Unquote(arg); err == nil && ft.offers("HASHEDPASSWORD") && pw == ft.password {
		return true
	}
	return arg == "" && ft.offers("NULL")
}

func (ft *fakeTor) command(fc *fakeConn, cmd, arg string) {
	switch cmd {
	case "GETINFO":
		ft.mu.Lock()
		before := ft.before
		ft.before = nil
		ft.mu.Unlock()
		fc.send(before...)
		var out []string
		for _, k := range strings.Fields(arg) {
			if k == "slow" {
				time.Sleep(300 * time.Millisecond)
				out = append(out, "250-slow=finally")
				continue
			}
			v, ok := ft.info[k]
			if !ok {
				fc.send(fmt.Sprintf("552 Unrecognized key %q", k))
				return
			}
			if !strings.Contains(v, "\n") {
				out = append(out, fmt.Sprintf("250-%s=%s", k, v))
				continue
			}
			out = append(out, fmt.Sprintf("250+%s=", k))
			for _, l := range strings.Split(v, "\n") {
				if strings.HasPrefix(l, ".") {
					l = "." + l
				}
				out = append(out, l)
			}
			out = append(out, ".")
		}
		fc.send(append(out, "250 OK")...)
	case "SETEVENTS":
		names := strings.Fields(arg)
		for _, n := range names {
			if !ft.known[strings.ToUpper(n)] {
				fc.send(fmt.Sprintf("552 Unrecognized event %q", n))
				return
			}
		}
		fc.wmu.Lock()
		fc.events = map[string]bool{}
		for _, n := range names {
			fc.events[strings.ToUpper(n)] = true
		}
		fc.wmu.Unlock()
		fc.send("250 OK")
	case "SETCONF":
		ft.mu.Lock()
		ft.setconf = append(ft.setconf, arg)
		ft.mu.Unlock()
		fc.send("250 OK")
	default:
		fc.send(fmt.Sprintf("510 Unrecognized command %q", cmd))
	}
}

func fakeHMAC(key string, msg []byte) []byte {
	h := hmac.New(sha256.New, []byte(key))
	h.Write(msg)
	return h.Sum(nil)
}
