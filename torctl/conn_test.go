package torctl

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/privstats/privstats/torctl/torctltest"
)

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func dialFake(t *testing.T, ft *torctltest.Tor) *Conn {
	t.Helper()
	c, err := Dial(testContext(t), ft.Network, ft.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func authed(t *testing.T, ft *torctltest.Tor) *Conn {
	t.Helper()
	c := dialFake(t, ft)
	if _, err := c.Authenticate(testContext(t), AuthOptions{Password: ft.Password}); err != nil {
		t.Fatal(err)
	}
	return c
}

var networks = []string{"tcp", "unix"}

func TestProtocolInfo(t *testing.T) {
	for _, network := range networks {
		t.Run(network, func(t *testing.T) {
			ft := torctltest.New(t, network, "COOKIE", "SAFECOOKIE", "HASHEDPASSWORD")
			c := dialFake(t, ft)
			ctx := testContext(t)
			pi, err := c.ProtocolInfo(ctx)
			if err != nil {
				t.Fatal(err)
			}
			want := []AuthMethod{AuthCookie, AuthSafeCookie, AuthHashedPassword}
			if pi.ProtocolVersion != 1 || !slices.Equal(pi.AuthMethods, want) ||
				pi.CookieFile != ft.CookiePath || pi.TorVersion != "0.4.8.12" {
				t.Errorf("ProtocolInfo = %+v", pi)
			}
			// Tor answers PROTOCOLINFO once before authentication: the
			// second call must not reach it.
			if _, err := c.ProtocolInfo(ctx); err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(commandLines(ft), "PROTOCOLINFO"); n != 1 {
				t.Errorf("PROTOCOLINFO sent %d times, want 1", n)
			}
		})
	}
}

func TestParseProtocolInfoRecorded(t *testing.T) {
	r := NewReader(strings.NewReader(crlf(readTestdata(t, "replies/protocolinfo.txt"))))
	rep, err := r.ReadReply()
	if err != nil {
		t.Fatal(err)
	}
	pi, err := parseProtocolInfo(rep)
	if err != nil {
		t.Fatal(err)
	}
	if pi.CookieFile != "/var/lib/tor/control_auth_cookie" || len(pi.AuthMethods) != 3 || pi.TorVersion != "0.4.8.12" {
		t.Errorf("got %+v", pi)
	}
}

func TestAuthenticate(t *testing.T) {
	tests := []struct {
		name    string
		offered []string
		opts    func(ft *torctltest.Tor) AuthOptions
		setup   func(t *testing.T, ft *torctltest.Tor)
		want    AuthMethod
		wantErr string
	}{
		{
			name:    "SAFECOOKIE preferred",
			offered: []string{"COOKIE", "SAFECOOKIE", "HASHEDPASSWORD"},
			want:    AuthSafeCookie,
		},
		{
			name:    "COOKIE when SAFECOOKIE is not allowed",
			offered: []string{"COOKIE", "SAFECOOKIE"},
			opts:    func(*torctltest.Tor) AuthOptions { return AuthOptions{Allowed: []AuthMethod{AuthCookie}} },
			want:    AuthCookie,
		},
		{
			name:    "HASHEDPASSWORD",
			offered: []string{"HASHEDPASSWORD"},
			setup:   func(_ *testing.T, ft *torctltest.Tor) { ft.Password = `pa ss"word\` },
			opts:    func(ft *torctltest.Tor) AuthOptions { return AuthOptions{Password: ft.Password} },
			want:    AuthHashedPassword,
		},
		{
			name:    "wrong password",
			offered: []string{"HASHEDPASSWORD"},
			setup:   func(_ *testing.T, ft *torctltest.Tor) { ft.Password = "right" },
			opts:    func(*torctltest.Tor) AuthOptions { return AuthOptions{Password: "wrong"} },
			want:    AuthHashedPassword,
			wantErr: "515",
		},
		{
			name:    "NULL",
			offered: []string{"NULL"},
			want:    AuthNull,
		},
		{
			name:    "cookie override path",
			offered: []string{"SAFECOOKIE"},
			setup: func(t *testing.T, ft *torctltest.Tor) {
				// tor names a path we cannot read; the caller knows better.
				moved := ft.CookiePath + ".moved"
				if err := os.Rename(ft.CookiePath, moved); err != nil {
					t.Fatal(err)
				}
				ft.CookiePath = moved + ".unused"
			},
			opts: func(ft *torctltest.Tor) AuthOptions {
				return AuthOptions{CookiePath: strings.TrimSuffix(ft.CookiePath, ".unused")}
			},
			want: AuthSafeCookie,
		},
		{
			name:    "unreadable cookie falls back to password",
			offered: []string{"SAFECOOKIE", "HASHEDPASSWORD"},
			setup: func(_ *testing.T, ft *torctltest.Tor) {
				ft.Password = "pw"
				os.Remove(ft.CookiePath)
			},
			opts: func(*torctltest.Tor) AuthOptions { return AuthOptions{Password: "pw"} },
			want: AuthHashedPassword,
		},
		{
			name:    "cookie of the wrong size is refused",
			offered: []string{"SAFECOOKIE", "COOKIE"},
			setup: func(_ *testing.T, ft *torctltest.Tor) {
				os.WriteFile(ft.CookiePath, []byte("too short"), 0o600)
			},
			wantErr: "not 32 bytes",
		},
		{
			name:    "nothing allowed",
			offered: []string{"COOKIE"},
			opts:    func(*torctltest.Tor) AuthOptions { return AuthOptions{Allowed: []AuthMethod{AuthSafeCookie}} },
			wantErr: "no usable authentication method",
		},
		{
			name:    "SAFECOOKIE server hash mismatch",
			offered: []string{"SAFECOOKIE", "NULL"},
			setup:   func(_ *testing.T, ft *torctltest.Tor) { ft.BadServerHash = true },
			want:    AuthSafeCookie,
			wantErr: "server's hash does not match",
		},
	}
	for _, network := range networks {
		for _, tt := range tests {
			t.Run(network+"/"+tt.name, func(t *testing.T) {
				ft := torctltest.New(t, network, tt.offered...)
				if tt.setup != nil {
					tt.setup(t, ft)
				}
				var opts AuthOptions
				if tt.opts != nil {
					opts = tt.opts(ft)
				}
				c := dialFake(t, ft)
				got, err := c.Authenticate(testContext(t), opts)
				if got != tt.want {
					t.Errorf("method = %q, want %q", got, tt.want)
				}
				if tt.wantErr == "" {
					if err != nil {
						t.Fatal(err)
					}
					// Authenticated: a command works.
					if _, err := c.GetInfo(testContext(t), "version"); err != nil {
						t.Fatal(err)
					}
					return
				}
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
				}
			})
		}
	}
}

func TestSafeCookieMismatchSendsNothingMore(t *testing.T) {
	ft := torctltest.New(t, "tcp", "SAFECOOKIE", "NULL")
	ft.BadServerHash = true
	c := dialFake(t, ft)
	if _, err := c.Authenticate(testContext(t), AuthOptions{}); err == nil {
		t.Fatal("authenticated to a server that does not know the cookie")
	}
	<-c.Done() // we hang up on an impostor
	for _, cmd := range ft.Commands() {
		if strings.HasPrefix(cmd.Line, "AUTHENTICATE") {
			t.Errorf("sent %q to a server that failed the challenge", cmd.Line)
		}
	}
}

func TestGetInfo(t *testing.T) {
	ft := torctltest.New(t, "tcp", "NULL")
	ft.Info["config-text"] = "ControlPort 9051\n.hidden\nCookieAuthentication 1"
	c := authed(t, ft)
	ctx := testContext(t)

	got, err := c.GetInfo(ctx, "version", "fingerprint", "config-text")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"version":     "0.4.8.12",
		"fingerprint": "relay1 0EB7C8AAD759B26D37B857E7080FD2B138B75A1C",
		"config-text": "ControlPort 9051\n.hidden\nCookieAuthentication 1",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}

	_, err = c.GetInfo(ctx, "no-such-key")
	var re *ReplyError
	if !errors.As(err, &re) || re.Code != 552 {
		t.Errorf("unknown key: err = %v, want a 552 ReplyError", err)
	}
	if _, err := c.GetInfo(ctx, "two words"); err == nil {
		t.Error("a key with a space was sent")
	}
}

func TestEventsInterleavedWithReplies(t *testing.T) {
	ft := torctltest.New(t, "unix", "NULL")
	c := authed(t, ft)
	ctx := testContext(t)
	var mu sync.Mutex
	var got []string
	c.SetEventHandler(func(ev *Event) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, ev.Kind.String()+": "+strings.TrimSpace(string(ev.Clone().Line())))
		if ev.Kind == EventCirc && len(ev.Lines) != 3 {
			t.Errorf("multi-line CIRC event has %d lines", len(ev.Lines))
		}
	})
	if err := c.SetEvents(ctx, "BW", "CIRC"); err != nil {
		t.Fatal(err)
	}
	// control-spec 4.1: events may come between a command and its reply.
	ft.SendBeforeNextGetInfo(
		"650 BW 155 593",
		"650-CIRC 1000 EXTENDED moria1,moria2 0xBEEF",
		"650-EXTRAMAGIC=99",
		"650 ANONYMITY=high",
	)
	v, err := c.GetInfo(ctx, "version")
	if err != nil || v["version"] != "0.4.8.12" {
		t.Fatalf("GetInfo = %v, %v", v, err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"BW: BW 155 593", "CIRC: CIRC 1000 EXTENDED moria1,moria2 0xBEEF"}
	if !slices.Equal(got, want) {
		t.Errorf("events = %q, want %q", got, want)
	}
}

func TestEventsWhileCommandsRun(t *testing.T) {
	ft := torctltest.New(t, "tcp", "NULL")
	c := authed(t, ft)
	ctx := testContext(t)
	const n = 500
	var count sync.WaitGroup
	count.Add(n)
	var bw BWEvent
	c.SetEventHandler(func(ev *Event) {
		if err := ParseBW(ev.Line(), &bw); err != nil {
			t.Error(err)
		}
		count.Done()
	})
	if err := c.SetEvents(ctx, "BW"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range n {
			ft.Emit("650 BW " + strconv.Itoa(i) + " 1")
		}
	}()
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 25 {
				v, err := c.GetInfo(ctx, "fingerprint")
				if err != nil || !strings.HasPrefix(v["fingerprint"], "relay1 ") {
					t.Errorf("GetInfo = %v, %v", v, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	waitOrFail(t, &count, "all events")
}

func TestSetEventsUnrecognized(t *testing.T) {
	ft := torctltest.New(t, "tcp", "NULL")
	c := authed(t, ft)
	ctx := testContext(t)
	err := c.SetEvents(ctx, "BW", "TB_EMPTY")
	var ue *UnrecognizedEventError
	if !errors.As(err, &ue) || ue.Event != "TB_EMPTY" {
		t.Fatalf("err = %v, want UnrecognizedEventError for TB_EMPTY", err)
	}
	if err := c.SetEvents(ctx, "BW"); err != nil {
		t.Fatalf("retry without TB_EMPTY: %v", err)
	}
	if err := c.SetEvents(ctx, "BW;QUIT"); err == nil {
		t.Error("an event name with a ';' was sent")
	}
}

func TestSetConf(t *testing.T) {
	ft := torctltest.New(t, "tcp", "NULL")
	c := authed(t, ft)
	ctx := testContext(t)
	err := c.SetConf(ctx, KeyValue{"EnablePrivCount", "1"}, KeyValue{"ContactInfo", `ops "at" example.org`})
	if err != nil {
		t.Fatal(err)
	}
	want := `EnablePrivCount="1" ContactInfo="ops \"at\" example.org"`
	if ft.SetConf()[0] != want {
		t.Errorf("SETCONF %s, want %s", ft.SetConf()[0], want)
	}
	if err := c.SetConf(ctx, KeyValue{"Bad Key", "1"}); err == nil {
		t.Error("an option name with a space was sent")
	}
}

// slowTor is a fake tor whose answer to GETINFO slow takes 300 ms.
func slowTor(t *testing.T) *torctltest.Tor {
	ft := torctltest.New(t, "tcp", "NULL")
	ft.Info["slow"] = "finally"
	ft.InfoDelay["slow"] = 300 * time.Millisecond
	return ft
}

func TestCommandTimeoutKeepsRepliesInStep(t *testing.T) {
	ft := slowTor(t)
	c := authed(t, ft)
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.GetInfo(short, "slow"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	// The late reply to "slow" must not be taken for this one.
	v, err := c.GetInfo(testContext(t), "version")
	if err != nil || v["version"] != "0.4.8.12" || len(v) != 1 {
		t.Fatalf("GetInfo after a timeout = %v, %v", v, err)
	}
}

func TestConnClosedByTor(t *testing.T) {
	ft := torctltest.New(t, "tcp", "NULL")
	c := authed(t, ft)
	ft.DropAll()
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed after tor hung up")
	}
	if err := c.Err(); err == nil || !strings.Contains(err.Error(), "tor closed") {
		t.Errorf("Err = %v", err)
	}
	if _, err := c.GetInfo(testContext(t), "version"); err == nil {
		t.Error("command on a dead connection succeeded")
	}
}

func TestCloseFailsWaitingCommand(t *testing.T) {
	ft := slowTor(t)
	c := authed(t, ft)
	errc := make(chan error, 1)
	go func() {
		_, err := c.GetInfo(testContext(t), "slow")
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	c.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Errorf("err = %v, want ErrClosed", err)
	}
}

func TestDoRejectsLineBreaks(t *testing.T) {
	ft := torctltest.New(t, "tcp", "NULL")
	c := authed(t, ft)
	if _, err := c.Do(testContext(t), "GETINFO version\r\nSIGNAL HALT"); err == nil {
		t.Fatal("a command with CRLF was sent")
	}
}

func TestDialErrors(t *testing.T) {
	ctx := testContext(t)
	if _, err := Dial(ctx, "udp", "127.0.0.1:9051"); err == nil {
		t.Error("udp accepted")
	}
	if _, err := Dial(ctx, "unix", filepath.Join(t.TempDir(), "none")); err == nil {
		t.Error("dialing a missing socket succeeded")
	}
}

func TestUnauthenticatedCommandIsRefused(t *testing.T) {
	ft := torctltest.New(t, "tcp", "NULL")
	c := dialFake(t, ft)
	_, err := c.GetInfo(testContext(t), "version")
	var re *ReplyError
	if !errors.As(err, &re) || re.Code != 514 {
		t.Errorf("err = %v, want 514", err)
	}
}

// commandLines is every command ft received, one a line.
func commandLines(ft *torctltest.Tor) string {
	var lines []string
	for _, c := range ft.Commands() {
		lines = append(lines, c.Line)
	}
	return strings.Join(lines, "\n")
}

func waitOrFail(t *testing.T, wg *sync.WaitGroup, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

func readTestdata(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// crlf turns a testdata transcript's LF line ends into tor's CRLF.
func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

// A caller tells an unreadable cookie and refused credentials apart by
// type, to give the operator the fix: join tor's group, or correct the
// cookie file or password.
func TestAuthenticateErrorKinds(t *testing.T) {
	t.Run("unreadable cookie", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("root reads a file of mode 0000")
		}
		ft := torctltest.New(t, "unix", "SAFECOOKIE")
		if err := os.Chmod(ft.CookiePath, 0); err != nil {
			t.Fatal(err)
		}
		_, err := dialFake(t, ft).Authenticate(testContext(t), AuthOptions{})
		var nm *NoAuthMethodError
		if !errors.As(err, &nm) || !errors.Is(err, fs.ErrPermission) {
			t.Fatalf("err = %v (%T), want a NoAuthMethodError wrapping permission denied", err, err)
		}
		if !strings.Contains(err.Error(), ft.CookiePath) {
			t.Errorf("err = %v, want it to name %s", err, ft.CookiePath)
		}
	})
	t.Run("wrong cookie", func(t *testing.T) {
		ft := torctltest.New(t, "tcp", "SAFECOOKIE")
		other := filepath.Join(t.TempDir(), "other_cookie")
		if err := os.WriteFile(other, make([]byte, 32), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := dialFake(t, ft).Authenticate(testContext(t), AuthOptions{CookiePath: other})
		var ae *AuthError
		if !errors.As(err, &ae) || ae.Method != AuthSafeCookie {
			t.Fatalf("err = %v (%T), want an AuthError for SAFECOOKIE", err, err)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		ft := torctltest.New(t, "tcp", "HASHEDPASSWORD")
		ft.Password = "right"
		_, err := dialFake(t, ft).Authenticate(testContext(t), AuthOptions{Password: "wrong"})
		var ae *AuthError
		var re *ReplyError
		if !errors.As(err, &ae) || ae.Method != AuthHashedPassword || !errors.As(err, &re) || re.Code != 515 {
			t.Fatalf("err = %v (%T), want an AuthError wrapping tor's 515", err, err)
		}
	})
}

func TestGetConf(t *testing.T) {
	ft := torctltest.New(t, "tcp", "NULL")
	ft.Conf["TestingTorNetwork"] = "1"
	ft.Conf["ContactInfo"] = ""
	c := authed(t, ft)
	ctx := testContext(t)
	if v, err := c.GetConf(ctx, "TestingTorNetwork"); err != nil || v != "1" {
		t.Errorf("GetConf(TestingTorNetwork) = %q, %v; want 1", v, err)
	}
	if v, err := c.GetConf(ctx, "ContactInfo"); err != nil || v != "" {
		t.Errorf("GetConf(ContactInfo) = %q, %v; want empty", v, err)
	}
	var re *ReplyError
	if _, err := c.GetConf(ctx, "NoSuchOption"); !errors.As(err, &re) || re.Code != 552 {
		t.Errorf("GetConf(NoSuchOption) err = %v, want tor's 552", err)
	}
	if _, err := c.GetConf(ctx, "a b"); err == nil {
		t.Error("GetConf accepted a key with a space")
	}
}
