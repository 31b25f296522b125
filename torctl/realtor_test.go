package torctl

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// startRealTor runs the tor binary, if this machine has one, with its
// network disabled and control on both a Unix socket and a TCP port, and
// returns the TCP address and the socket path.
func startRealTor(t *testing.T) (tcpAddr, socket string) {
	t.Helper()
	bin, err := exec.LookPath("tor")
	if err != nil || testing.Short() {
		t.Skip("no tor binary in PATH")
	}
	dir := t.TempDir()
	// Tor creates a control socket only in a directory no one else can read.
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	socket = filepath.Join(dir, "control")
	portFile := filepath.Join(dir, "port")
	torrc := fmt.Sprintf(`DataDirectory %s
ControlSocket %s
ControlPort auto
ControlPortWriteToFile %s
CookieAuthentication 1
SocksPort 0
DisableNetwork 1
Log notice file %s
`, filepath.Join(dir, "data"), socket, portFile, filepath.Join(dir, "tor.log"))
	if err := os.WriteFile(filepath.Join(dir, "torrc"), []byte(torrc), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	cmd := exec.CommandContext(ctx, bin, "--defaults-torrc", os.DevNull, "-f", filepath.Join(dir, "torrc"))
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Skipf("cannot start tor: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cancel()
		<-exited
	})
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case <-exited:
			t.Fatalf("tor exited:\n%s", out.String())
		default:
		}
		b, err := os.ReadFile(portFile)
		if err == nil && strings.Contains(string(b), "UNIX_PORT=") {
			for l := range strings.Lines(string(b)) {
				if a, ok := strings.CutPrefix(strings.TrimSpace(l), "PORT="); ok {
					return a, socket
				}
			}
		}
	}
	log, _ := os.ReadFile(filepath.Join(dir, "tor.log"))
	t.Fatalf("tor did not open its control port; its output:\n%s%s", out.String(), log)
	return "", ""
}

// TestRealTor checks the client against the tor binary itself, when the
// machine has one: PROTOCOLINFO, SAFECOOKIE with tor's own cookie file,
// GETINFO data replies, GETCONF, 552 for events this tor does not have, and BW
// events, which tor sends every second.
func TestRealTor(t *testing.T) {
	tcpAddr, socket := startRealTor(t)

	c, err := Dial(testContext(t), "unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pi, err := c.ProtocolInfo(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(pi.AuthMethods, AuthSafeCookie) || pi.CookieFile == "" || pi.TorVersion == "" {
		t.Errorf("ProtocolInfo = %+v", pi)
	}

	events := make(chan string, 16)
	s := NewSession(SessionConfig{
		Network: "tcp",
		Address: tcpAddr,
		Events:  []string{"BW", "ORCONN", "CIRC", "STREAM", "STATUS_SERVER", "CONN_BW", "CELL_STATS", "TB_EMPTY", "PRIVCOUNT_STREAM_ENDED"},
		OnEvent: func(ev *Event) {
			select {
			case events <- string(ev.Line()):
			default:
			}
		},
		OnConnect: func(ctx context.Context, c *Conn, info ConnectInfo) error {
			t.Logf("tor %s: subscribed to %q; unrecognized %q", info.ProtocolInfo.TorVersion, info.Events, info.Unrecognized)
			if info.AuthMethod != AuthSafeCookie {
				t.Errorf("authenticated with %s, want SAFECOOKIE", info.AuthMethod)
			}
			if !slices.Contains(info.Unrecognized, "PRIVCOUNT_STREAM_ENDED") {
				t.Errorf("Unrecognized = %q, want PRIVCOUNT_STREAM_ENDED among them", info.Unrecognized)
			}
			v, err := c.GetInfo(ctx, "version", "config-text")
			if err != nil {
				return err
			}
			if !strings.HasPrefix(v["version"], pi.TorVersion) || !strings.Contains(v["config-text"], "DisableNetwork 1") {
				t.Errorf("GETINFO = %q", v)
			}
			for key, want := range map[string]string{"DisableNetwork": "1", "TestingTorNetwork": "0"} {
				if got, err := c.GetConf(ctx, key); err != nil || got != want {
					t.Errorf("GETCONF %s = %q, %v; want %s", key, got, err, want)
				}
			}
			return nil
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go s.Run(ctx)
	for {
		select {
		case line := <-events:
			t.Logf("event: %s", line)
			if _, err := parseAny([]byte(line)); err != nil {
				t.Errorf("event %q: %v", line, err)
			}
			if EventType([]byte(line)) == EventBW {
				return
			}
		case <-ctx.Done():
			t.Fatal("no BW event from tor")
		}
	}
}
