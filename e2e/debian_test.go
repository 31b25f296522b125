package e2e

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/privstats/privstats/tornet"
)

// TestDebianControlSocket is the README's path for a Debian relay, against
// real tor: a relay of the private network opens its control socket and
// cookie as Debian's tor package does (ControlSocket … GroupWritable,
// ControlSocketsGroupWritable 1, CookieAuthentication 1,
// CookieAuthFileGroupReadable 1), `privstats init collector` writes a
// config, and `privstats collect --check` approves it. Run as root, the
// check runs as user nobody with only tor's group (as the privstats user
// in group debian-tor would), and once without it, when it must fail
// naming the fix; otherwise it runs as the user who runs tor.
//
// Run it alone: go test ./e2e -run TestDebianControlSocket
func TestDebianControlSocket(t *testing.T) {
	if err := tornet.Available(); err != nil {
		t.Skipf("%v — this test needs Debian's tor: apt-get install -y tor", err)
	}
	if testing.Short() {
		t.Skip("starts a private Tor network: about a minute")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()

	// Directories another user can traverse (t.TempDir's are 0700), for
	// the check that runs as nobody.
	dir, err := os.MkdirTemp("", "privstats-debian")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "privstats")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/privstats/privstats/cmd/privstats").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	netDir := filepath.Join(dir, "tor")
	if err := os.Mkdir(netDir, 0o755); err != nil {
		t.Fatal(err)
	}
	n, err := tornet.Start(ctx, tornet.Options{Dir: netDir, ControlSocket: true, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Stop)
	var relay *tornet.Node
	for _, node := range n.Nodes {
		if node.Role == tornet.Exit {
			relay = node
		}
	}

	// The modes Debian's settings give: the socket and cookie are the
	// group's, not the world's.
	sock, err := os.Stat(relay.ControlSocket)
	if err != nil {
		t.Fatal(err)
	}
	cookie, err := os.Stat(relay.CookieFile)
	if err != nil {
		t.Fatal(err)
	}
	if m := sock.Mode(); m.Type() != fs.ModeSocket || m.Perm()&0o060 != 0o060 || m.Perm()&0o007 != 0 {
		t.Errorf("control socket mode %v, want group read-write and nothing for others", m)
	}
	if m := cookie.Mode().Perm(); m != 0o640 {
		t.Errorf("cookie mode %v, want 0640 (CookieAuthFileGroupReadable 1)", m)
	}
	torGroup := sock.Sys().(*syscall.Stat_t).Gid

	// The operator's two commands; only the socket's path differs from
	// Debian's /run/tor/control.
	cfg := filepath.Join(dir, "etc", "collector.yaml")
	if out, err := exec.CommandContext(ctx, bin, "init", "collector", "-o", cfg).CombinedOutput(); err != nil {
		t.Fatalf("privstats init collector: %v\n%s", err, out)
	}
	text, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	moved := bytes.Replace(text, []byte("address: unix:/run/tor/control"), []byte("address: unix:"+relay.ControlSocket), 1)
	// Readable by the check's user; the key beside it is not, and the
	// check does not need it.
	if err := os.WriteFile(cfg, moved, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{cfg, filepath.Dir(cfg)} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	check := func(groups ...uint32) (stdout, stderr string, err error) {
		cmd := exec.CommandContext(ctx, bin, "collect", "--check", "-c", cfg)
		if os.Geteuid() == 0 {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: groups}}
		}
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err = cmd.Run()
		return o.String(), e.String(), err
	}
	stdout, stderr, err := check(torGroup)
	t.Logf("privstats collect --check:\n%s%s", stdout, stderr)
	if err != nil {
		t.Fatalf("collect --check: %v", err)
	}
	for _, want := range []string{
		"on control port unix:" + relay.ControlSocket + ": authenticated with SAFECOOKIE (cookie " + relay.CookieFile + ")",
		"relay fingerprint " + relay.Fingerprint,
		"kind: TestingTorNetwork 1",
		"OK: privstats collect can read this tor",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("collect --check does not say %q", want)
		}
	}
	// tornet relays allow CONN_BW: the check sees a test network's tor.
	if !strings.Contains(stdout, "exit_bytes") || strings.Contains(stdout, "needs TestingTorNetwork") {
		t.Errorf("collect --check did not find the test network's statistics")
	}

	if os.Geteuid() != 0 {
		t.Log("not root: the check ran as tor's own user; the group-only access was not tried")
		return
	}
	// Not in tor's group: refused, and told how to join it.
	_, stderr, err = check()
	t.Logf("privstats collect --check without tor's group:\n%s", stderr)
	if err == nil {
		t.Fatal("collect --check passed for a user outside tor's group")
	}
	for _, want := range []string{"permission denied", "fix: this user may not open " + relay.ControlSocket,
		"sudo adduser nobody debian-tor", "ControlSocketsGroupWritable 1"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("collect --check without the group does not say %q", want)
		}
	}
}
