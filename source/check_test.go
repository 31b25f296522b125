package source_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/privstats/privstats/source"
	"github.com/privstats/privstats/stats"
	"github.com/privstats/privstats/torctl"
	"github.com/privstats/privstats/torctl/torctltest"
)

func checkContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// support indexes a report's verdicts by statistic.
func support(r *source.CheckReport) map[string]source.StatisticSupport {
	m := map[string]source.StatisticSupport{}
	for _, s := range r.Statistics {
		m[s.Name] = s
	}
	return m
}

// bySource is every catalogue statistic of one source.
func bySource(src string) []string {
	var out []string
	for _, s := range stats.Catalogue() {
		if s.Source == src {
			out = append(out, s.Name)
		}
	}
	return out
}

// Debian's tor: a Unix control socket, SAFECOOKIE with the cookie file tor
// names in PROTOCOLINFO, no PrivCount events, no test network.
func TestCheckStockTorOnUnixSocket(t *testing.T) {
	ft := torctltest.New(t, "unix", "COOKIE", "SAFECOOKIE")
	r, err := source.Check(checkContext(t), source.CheckOptions{Control: &source.ControlOptions{Address: "unix:" + ft.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	c := r.Control
	if c.TorVersion != torctltest.Version || c.AuthMethod != torctl.AuthSafeCookie || c.CookieFile != ft.CookiePath ||
		c.RelayFingerprint != "0EB7C8AAD759B26D37B857E7080FD2B138B75A1C" || c.TestingTorNetwork || c.PrivCount() {
		t.Errorf("control report = %+v", c)
	}
	if r.MetricsPort != nil {
		t.Errorf("MetricsPort report %+v without a MetricsPort", r.MetricsPort)
	}
	sup := support(r)
	if len(sup) != len(stats.Catalogue()) {
		t.Errorf("%d verdicts for %d statistics", len(sup), len(stats.Catalogue()))
	}
	for _, name := range bySource(stats.SourceControl) {
		if !sup[name].Fed {
			t.Errorf("%s not fed by stock tor: %s", name, sup[name].Why)
		}
	}
	wantWhy := map[string]string{
		stats.SourceTestNetwork: "TestingTorNetwork 1",
		stats.SourcePrivCount:   "needs PrivCount-patched tor: this tor knows none of the PRIVCOUNT_* events",
		stats.SourceMetricsPort: "MetricsPort, which is not configured",
	}
	for src, why := range wantWhy {
		for _, name := range bySource(src) {
			if s := sup[name]; s.Fed || !strings.Contains(s.Why, why) {
				t.Errorf("%s (%s): fed %v, why %q; want not fed because %q", name, src, s.Fed, s.Why, why)
			}
		}
	}
	if got, want := r.Fed(), bySource(stats.SourceControl); !slices.Equal(got, want) {
		t.Errorf("Fed() = %v, want %v", got, want)
	}
	// The check leaves tor as it found it: it asks for nothing to be
	// changed, only which events exist.
	if sc := ft.SetConf(); len(sc) != 0 {
		t.Errorf("the check changed tor's settings: %q", sc)
	}
}

func TestCheckTestNetworkAndPrivCountTor(t *testing.T) {
	ft := privcountTor(t)
	ft.Events["CONN_BW"] = true
	ft.Conf["TestingTorNetwork"] = "1"
	ft.Info["fingerprint"] = "1790CB940F43BFE92EC81BF9EAA3DD1DEEB570BE" // as real tor answers
	r, err := source.Check(checkContext(t), source.CheckOptions{Control: &source.ControlOptions{Address: ft.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Control.TestingTorNetwork || !r.Control.PrivCount() || r.Control.AuthMethod != torctl.AuthNull ||
		r.Control.RelayFingerprint != "1790CB940F43BFE92EC81BF9EAA3DD1DEEB570BE" {
		t.Errorf("control report = %+v", r.Control)
	}
	sup := support(r)
	for _, src := range []string{stats.SourceControl, stats.SourceTestNetwork, stats.SourcePrivCount} {
		for _, name := range bySource(src) {
			if !sup[name].Fed {
				t.Errorf("%s (%s) not fed: %s", name, src, sup[name].Why)
			}
		}
	}
}

// A test network's tor that was not given TestingTorNetwork accepts
// SETEVENTS CONN_BW but never sends one: the check goes by the setting.
func TestCheckConnBWNeedsTestingTorNetwork(t *testing.T) {
	ft := torctltest.New(t, "tcp", "NULL")
	ft.Events["CONN_BW"] = true
	r, err := source.Check(checkContext(t), source.CheckOptions{Control: &source.ControlOptions{Address: ft.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range bySource(stats.SourceTestNetwork) {
		if s := support(r)[name]; s.Fed || !strings.Contains(s.Why, "TestingTorNetwork") {
			t.Errorf("%s: %+v", name, s)
		}
	}
}

func TestCheckMetricsPort(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "# TYPE tor_relay_streams_total counter\ntor_relay_streams_total{type=\"BEGIN\"} 100\n"+
			"# TYPE tor_relay_traffic_bytes counter\ntor_relay_traffic_bytes{direction=\"read\"} 1000\n")
	}))
	defer srv.Close()
	r, err := source.Check(checkContext(t), source.CheckOptions{MetricsURL: srv.URL + "/metrics"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Control != nil || !slices.Equal(r.MetricsPort.Families, []string{"tor_relay_streams_total", "tor_relay_traffic_bytes"}) {
		t.Errorf("report: control %+v, MetricsPort %+v", r.Control, r.MetricsPort)
	}
	sup := support(r)
	for name, want := range map[string]bool{"exit_streams_by_type": true, "relay_traffic_bytes": true, "onion_intro1_cells": false} {
		if sup[name].Fed != want {
			t.Errorf("%s: %+v, want fed %v", name, sup[name], want)
		}
	}
	if why := sup["onion_intro1_cells"].Why; !strings.Contains(why, "does not export tor_relay_intro1_total") {
		t.Errorf("onion_intro1_cells why = %q", why)
	}
	if why := sup["relay_bytes_read"].Why; !strings.Contains(why, "control port, which is not configured") {
		t.Errorf("relay_bytes_read why = %q", why)
	}
}

// checkFails runs a check that must fail and returns its error.
func checkFails(t *testing.T, opts source.CheckOptions) *source.CheckError {
	t.Helper()
	r, err := source.Check(checkContext(t), opts)
	var ce *source.CheckError
	if !errors.As(err, &ce) {
		t.Fatalf("Check = %+v, %v (%T); want a CheckError", r, err, err)
	}
	return ce
}

func TestCheckFailuresNameTheFix(t *testing.T) {
	t.Run("no socket", func(t *testing.T) {
		sock := filepath.Join(t.TempDir(), "control")
		ce := checkFails(t, source.CheckOptions{Control: &source.ControlOptions{Address: "unix:" + sock}})
		if !strings.Contains(ce.Part, sock) || !strings.Contains(ce.Fix, "no control socket at "+sock) || !strings.Contains(ce.Fix, "systemctl status tor") {
			t.Errorf("part %q, fix %q", ce.Part, ce.Fix)
		}
	})
	t.Run("wrong cookie", func(t *testing.T) {
		ft := torctltest.New(t, "unix", "SAFECOOKIE")
		other := filepath.Join(t.TempDir(), "cookie")
		if err := os.WriteFile(other, make([]byte, 32), 0o600); err != nil {
			t.Fatal(err)
		}
		ce := checkFails(t, source.CheckOptions{Control: &source.ControlOptions{Address: "unix:" + ft.Addr, CookieFile: other}})
		if !strings.Contains(ce.Fix, "tor refused the cookie") {
			t.Errorf("fix %q", ce.Fix)
		}
	})
	t.Run("no cookie file", func(t *testing.T) {
		ft := torctltest.New(t, "unix", "SAFECOOKIE")
		ce := checkFails(t, source.CheckOptions{Control: &source.ControlOptions{Address: "unix:" + ft.Addr, CookieFile: ft.CookiePath + ".missing"}})
		if !strings.Contains(ce.Fix, "cookie file does not exist") {
			t.Errorf("fix %q", ce.Fix)
		}
	})
	t.Run("nothing on the control port", func(t *testing.T) {
		addr := closedPort(t)
		ce := checkFails(t, source.CheckOptions{Control: &source.ControlOptions{Address: addr}})
		if !strings.Contains(ce.Fix, "nothing listens on "+addr) || !strings.Contains(ce.Fix, "unix:/run/tor/control") {
			t.Errorf("fix %q", ce.Fix)
		}
	})
	t.Run("MetricsPort refuses", func(t *testing.T) {
		ce := checkFails(t, source.CheckOptions{MetricsURL: "http://" + closedPort(t) + "/metrics"})
		if !strings.Contains(ce.Fix, "MetricsPort 127.0.0.1:9035") {
			t.Errorf("fix %q", ce.Fix)
		}
	})
	t.Run("MetricsPortPolicy hangs up", func(t *testing.T) {
		// What tor does to an address its MetricsPortPolicy rejects.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		ce := checkFails(t, source.CheckOptions{MetricsURL: "http://" + ln.Addr().String() + "/metrics"})
		if !strings.Contains(ce.Fix, "MetricsPortPolicy accept 127.0.0.1") {
			t.Errorf("err %v, fix %q", ce.Err, ce.Fix)
		}
	})
}

// closedPort is a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// Permission problems are told by the errors the system returns. The tests
// run as root here, which no file mode stops, so these are the errors as
// net and os build them; tornet's Debian test meets the real ones.
func TestDiagnoseControlPermission(t *testing.T) {
	socket := &net.OpError{Op: "dial", Net: "unix", Err: os.NewSyscallError("connect", syscall.EACCES)}
	p := source.DiagnoseControl("unix:/run/tor/control", socket)
	if !p.Permanent || !strings.Contains(p.Fix, "adduser") || !strings.Contains(p.Fix, "debian-tor") || !strings.Contains(p.Fix, "ControlSocketsGroupWritable 1") {
		t.Errorf("socket permission: %+v", p)
	}
	cookie := &torctl.NoAuthMethodError{Offered: []torctl.AuthMethod{torctl.AuthSafeCookie},
		Skipped: []error{fmt.Errorf("SAFECOOKIE: %w", &fs.PathError{Op: "open", Path: "/run/tor/control.authcookie", Err: syscall.EACCES})}}
	p = source.DiagnoseControl("unix:/run/tor/control", cookie)
	if !p.Permanent || !strings.Contains(p.Fix, "adduser") || !strings.Contains(p.Fix, "CookieAuthFileGroupReadable 1") {
		t.Errorf("cookie permission: %+v", p)
	}
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	if p := source.DiagnoseControl("127.0.0.1:9051", refused); p.Permanent || p.Fix == "" {
		t.Errorf("connection refused (tor restarting?) should be retried quietly with a hint: %+v", p)
	}
	if p := source.DiagnoseControl("127.0.0.1:9051", errors.New("torctl: connection closed")); p != (source.ControlProblem{}) {
		t.Errorf("a lost connection: %+v, want no advice", p)
	}
}

// A PrivCount tor from an older patch knows some PRIVCOUNT_* events: the
// check names the one missing.
func TestCheckOlderPrivCountTor(t *testing.T) {
	ft := privcountTor(t)
	delete(ft.Events, "PRIVCOUNT_CIRCUIT_CLOSE")
	r, err := source.Check(checkContext(t), source.CheckOptions{Control: &source.ControlOptions{Address: ft.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	sup := support(r)
	if s := sup["exit_circuits"]; s.Fed || !strings.Contains(s.Why, "knows PRIVCOUNT_CIRCUIT_CLOSE") {
		t.Errorf("exit_circuits: %+v", s)
	}
	if s := sup["exit_streams"]; !s.Fed {
		t.Errorf("exit_streams: %+v", s)
	}
}

// A running MetricsPort source names the same fix as the check when its
// reads fail.
func TestMetricsPortReadFailureNamesTheFix(t *testing.T) {
	var logs strings.Builder
	var mu sync.Mutex
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil)))
	defer slog.SetDefault(old)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	src := source.MetricsPort("http://"+closedPort(t)+"/metrics", 10*time.Millisecond, nil)
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, nil, func(time.Time, []byte) {}, func(time.Time, time.Time) {}) }()
	for {
		mu.Lock()
		got := logs.String()
		mu.Unlock()
		if strings.Contains(got, "read failed") || ctx.Err() != nil {
			if !strings.Contains(got, `fix="nothing listens there: add MetricsPort 127.0.0.1:9035 and MetricsPortPolicy accept 127.0.0.1`) {
				t.Errorf("log:\n%s", got)
			}
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
