package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/privstats/privstats/stats"
	"github.com/privstats/privstats/torctl/torctltest"
)

// The README's path for a Debian relay: `privstats init collector`, then
// `privstats collect --check`, against a fake tor that speaks like
// Debian's (a Unix socket, COOKIE and SAFECOOKIE, the cookie file named in
// PROTOCOLINFO). Only the socket's path differs from /run/tor/control;
// tornet's TestDebianControlSocket runs the same check against real tor.
func TestInitThenCheck(t *testing.T) {
	ft := torctltest.New(t, "unix", "COOKIE", "SAFECOOKIE")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "etc", "collector.yaml")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"init", "collector", "-o", cfg}, &stdout, &stderr); code != 0 {
		t.Fatalf("init: exit %d\n%s", code, &stderr)
	}
	text, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	moved := strings.Replace(string(text), "address: unix:/run/tor/control", "address: unix:"+ft.Addr, 1)
	if moved == string(text) {
		t.Fatal("init wrote no unix:/run/tor/control")
	}
	if err := os.WriteFile(cfg, []byte(moved), 0o600); err != nil {
		t.Fatal(err)
	}

	stdout.Reset()
	stderr.Reset()
	if code := run([]string{"collect", "--check", "-c", cfg}, &stdout, &stderr); code != 0 {
		t.Fatalf("collect --check: exit %d\nstdout:\n%s\nstderr:\n%s", code, &stdout, &stderr)
	}
	var control int
	for _, s := range stats.Catalogue() {
		if s.Source == stats.SourceControl {
			control++
		}
	}
	out := stdout.String()
	for _, want := range []string{
		"tor " + torctltest.Version + " on control port unix:" + ft.Addr + ": authenticated with SAFECOOKIE (cookie " + ft.CookiePath + ")",
		"relay fingerprint 0EB7C8AAD759B26D37B857E7080FD2B138B75A1C",
		"kind: stock tor",
		"This tor can feed " + strconv.Itoa(control) + " of " + strconv.Itoa(len(stats.Catalogue())) + " statistics:",
		"needs PrivCount-patched tor",
		"needs TestingTorNetwork 1",
		"reads tor's MetricsPort, which is not configured",
		"OK: privstats collect can read this tor",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}

	// Tor gone: the check fails, naming the fix.
	ft.Close()
	os.Remove(ft.Addr)
	stdout.Reset()
	stderr.Reset()
	if code := run([]string{"collect", "--check", "-c", cfg}, &stdout, &stderr); code != 1 {
		t.Fatalf("collect --check without tor: exit %d, want 1\n%s", code, &stderr)
	}
	if !strings.Contains(stderr.String(), "fix: no control socket at "+ft.Addr) {
		t.Errorf("stderr:\n%s", &stderr)
	}
}
