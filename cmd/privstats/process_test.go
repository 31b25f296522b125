package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/privstats/privstats/outcome"
	"github.com/privstats/privstats/source"
	"github.com/privstats/privstats/stats"
)

// proc is one privstats process started by a test.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan error
}

// deployment is a tally server, keepers and collectors run as separate
// processes of the privstats binary, talking HTTPS on loopback.
type deployment struct {
	t      *testing.T
	dir    string
	procs  []*proc
	listen string // the tally server's HTTPS address
	series string
	http   string // the tally server's /metrics address
}

func newDeployment(t *testing.T) *deployment {
	d := &deployment{t: t, dir: t.TempDir()}
	t.Cleanup(func() {
		for _, p := range d.procs {
			if p.cmd.ProcessState == nil {
				p.cmd.Process.Kill()
				<-p.done
			}
		}
		if t.Failed() {
			for _, p := range d.procs {
				b, _ := os.ReadFile(p.log)
				lines := strings.Split(strings.TrimSpace(string(b)), "\n")
				t.Logf("--- last lines of %s:\n%s", p.name, strings.Join(lines[max(0, len(lines)-15):], "\n"))
			}
		}
	})
	return d
}

// privstats runs the binary to completion and returns its stdout.
func (d *deployment) privstats(args ...string) string {
	d.t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), asMain+"=1")
	cmd.Dir = d.dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		d.t.Fatalf("privstats %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return strings.TrimSpace(out.String())
}

// start launches a long-running privstats process.
func (d *deployment) start(name string, args ...string) *proc {
	d.t.Helper()
	p := &proc{name: name, log: filepath.Join(d.dir, name+".log"), done: make(chan error, 1)}
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		d.t.Fatal(err)
	}
	p.cmd = exec.Command(os.Args[0], args...)
	p.cmd.Env = append(os.Environ(), asMain+"=1")
	p.cmd.Dir = d.dir
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	go func() {
		p.done <- p.cmd.Wait()
		f.Close()
	}()
	d.procs = append(d.procs, p)
	return p
}

// waitDone fails the test unless the process ends cleanly (the tally
// server: its last round finished) within the time given.
func (p *proc) waitDone(t *testing.T, within time.Duration) {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
	case <-time.After(within):
		t.Fatalf("%s did not finish within %s", p.name, within)
	}
}

// kill ends a process at once, as a crash would.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func (d *deployment) write(name, content string) string {
	d.t.Helper()
	path := filepath.Join(d.dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		d.t.Fatal(err)
	}
	return path
}

// waitPhase polls the tally server's /metrics until the round is in phase.
func (d *deployment) waitPhase(phase string, within time.Duration) {
	d.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if got, _, _ := d.progress(); got == phase {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	d.t.Fatalf("round did not reach phase %s within %s", phase, within)
}

// progress is the current round's number and phase as the tally server's
// /metrics shows them; ok is false while it does not answer.
func (d *deployment) progress() (phase string, number uint64, ok bool) {
	text, ok := d.metrics()
	for line := range strings.Lines(text) {
		if p, found := strings.CutPrefix(line, `privstats_round_phase{phase="`); found && strings.HasSuffix(line, "} 1\n") {
			phase, _, _ = strings.Cut(p, `"`)
		}
		if n, found := strings.CutPrefix(line, "privstats_round_number "); found {
			f, _ := strconv.ParseFloat(strings.TrimSpace(n), 64)
			number = uint64(f)
		}
	}
	return phase, number, ok
}

// metrics is the tally server's /metrics text; ok is false while it does
// not answer.
func (d *deployment) metrics() (text string, ok bool) {
	resp, err := http.Get("http://" + d.http + "/metrics")
	if err != nil {
		return "", false
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return "", false
	}
	return string(b), true
}

// seriesSpec is the round series a test deployment runs.
type seriesSpec struct {
	name                   string
	rounds                 int // 0: forever
	roundLength, setupTime string
}

// configure makes keys for a tally server, three keepers (K = 2) and three
// collectors (dc1…dc3), writes their YAML files and the keepers' roster, and
// returns each one's fingerprint by name. Every statistic has σ = 0, so
// totals are exact.
func (d *deployment) configure(s seriesSpec) map[string]string {
	d.t.Helper()
	keys := map[string]string{}
	for _, n := range []string{"tally", "keeper1", "keeper2", "keeper3", "dc1", "dc2", "dc3"} {
		keys[n] = d.privstats("keygen", "-o", n+".key")
	}
	d.listen, d.http, d.series = freePort(d.t), freePort(d.t), s.name
	keeperList := fmt.Sprintf("keepers:\n  - %s\n  - %s\n  - %s\n", keys["keeper1"], keys["keeper2"], keys["keeper3"])
	d.write("tally.yaml", fmt.Sprintf(`identity_key: tally.key
listen: %s
http_listen: %s
data_dir: data
series: %s
rounds: %d
round_length: %s
setup_time: %s
%sthreshold: 2
collectors:
  - fingerprint: %s
  - fingerprint: %s
  - fingerprint: %s
min_collectors: 2
epsilon: 0.4
delta: 0.0004
statistics:
  - {name: relay_bytes_read, sigma: 0, epsilon: 0.1, delta: 0.0001}
  - {name: or_connections, sigma: 0, epsilon: 0.1, delta: 0.0001}
  - {name: exit_streams_by_port, sigma: 0, epsilon: 0.1, delta: 0.0001}
  - {name: hsdir_v3_stores, sigma: 0, epsilon: 0.1, delta: 0.0001}
%s`, d.listen, d.http, s.name, s.rounds, s.roundLength, s.setupTime, keeperList, keys["dc1"], keys["dc2"], keys["dc3"], testPolicy))
	// The keepers' operators admit the three collectors in a roster file.
	d.write("roster.yaml", fmt.Sprintf("collectors:\n  - {fingerprint: %s, name: dc1}\n  - {fingerprint: %s, name: dc2}\n  - {fingerprint: %s, name: dc3}\n", keys["dc1"], keys["dc2"], keys["dc3"]))
	tallyPeer := fmt.Sprintf("tally:\n  address: %s\n  fingerprint: %s\n", d.listen, keys["tally"])
	for i := 1; i <= 3; i++ {
		d.write(fmt.Sprintf("keeper%d.yaml", i), fmt.Sprintf("identity_key: keeper%d.key\n%s%sdata_dir: keeper%d\ncollectors_file: roster.yaml\n%s", i, tallyPeer, keeperList, i, testPolicy))
		d.write(fmt.Sprintf("dc%d.yaml", i), fmt.Sprintf("identity_key: dc%d.key\n%s%sdata_dir: dc%d\nsource:\n  synthetic:\n    rate: 400\n    seed: %d\n%s",
			i, tallyPeer, keeperList, i, i, testPolicy))
	}
	return keys
}

const testPolicy = `policy:
  max_epsilon: 1
  max_delta: 0.01
  min_collectors: 1
  min_round_length: 0s
  delay_period: 1m
  allow_zero_noise: true   # σ = 0: totals are exact, so the test can check them
`

// TestRolesAsSeparateProcesses runs a round with the tally server, three
// keepers (K = 2) and three collectors as separate processes of the
// binary, configured by YAML files. Mid-round one keeper is killed, one
// collector is killed before it can report, and the tally server is killed
// and restarted; the round must still complete, and with σ = 0 its totals
// must equal exactly what the reporting collectors counted in the window,
// recounted here from the traces they recorded.
func TestRolesAsSeparateProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a round of about 20 seconds across seven processes")
	}
	d := newDeployment(t)
	keys := d.configure(seriesSpec{name: "proc", rounds: 1, roundLength: "10s", setupTime: "3s"})

	tallyProc := d.start("tally", "tally", "-c", "tally.yaml", "-exit-when-done")
	var keepers, collectors []*proc
	for i := 1; i <= 3; i++ {
		keepers = append(keepers, d.start(fmt.Sprintf("keeper%d", i), "keeper", "-c", fmt.Sprintf("keeper%d.yaml", i), "-exit-when-done"))
		collectors = append(collectors, d.start(fmt.Sprintf("dc%d", i), "collect", "-c", fmt.Sprintf("dc%d.yaml", i), "-exit-when-done", "--record", fmt.Sprintf("dc%d.trace", i)))
	}

	d.waitPhase("collecting", 30*time.Second)
	time.Sleep(2 * time.Second)
	keepers[2].kill(t)    // N − K = 1 keeper may die
	collectors[2].kill(t) // counted, never reports
	tallyProc.kill(t)     // crash the tally server mid-round…
	time.Sleep(time.Second)
	tallyProc = d.start("tally-restarted", "tally", "-c", "tally.yaml", "-exit-when-done") // …and restart it
	// The killed keeper and collector come back: they have lost their
	// round key, shares and blinding, so they must sit the round out and say so.
	keeper3 := d.start("keeper3-restarted", "keeper", "-c", "keeper3.yaml", "-exit-when-done")
	dc3 := d.start("dc3-restarted", "collect", "-c", "dc3.yaml", "-exit-when-done")

	tallyProc.waitDone(t, 90*time.Second)
	if b, _ := os.ReadFile(tallyProc.log); !bytes.Contains(b, []byte("resuming round from saved state")) {
		t.Error("the restarted tally server did not say it resumed the round")
	}
	for _, p := range []*proc{keepers[0], keepers[1], collectors[0], collectors[1], keeper3, dc3} {
		select {
		case err := <-p.done:
			if err != nil {
				t.Errorf("%s exited with %v", p.name, err)
			}
			p.done <- err
		case <-time.After(20 * time.Second):
			t.Errorf("%s did not exit after the last round", p.name)
		}
	}

	path := d.outcomePath(1)
	// The test round adds no noise: verify finds it valid, and says loudly,
	// with its own exit status, that it is not private.
	cmd := exec.Command(os.Args[0], "verify", path)
	cmd.Env = append(os.Environ(), asMain+"=1")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitNotPrivate || !strings.Contains(string(out), ": valid: ") ||
		!strings.Contains(string(out), "NOT PRIVATE: relay_bytes_read: no noise was added") {
		t.Fatalf("verify of a zero-noise round: %v\n%s", err, out)
	}
	o, err := outcome.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{keys["dc1"], keys["dc2"]}
	slices.Sort(want)
	if !slices.Equal(o.Collectors.Fingerprints, want) {
		t.Fatalf("S = %v, want collectors 1 and 2", o.Collectors.Fingerprints)
	}
	if len(o.Shares) != 2 {
		t.Fatalf("%d aggregate shares, want 2 (keeper 3 was killed)", len(o.Shares))
	}
	for who, fp := range map[string]string{"keeper 3": keys["keeper3"], "collector 3": keys["dc3"]} {
		if !strings.Contains(o.Refusals[fp], "restarted during the round") {
			t.Errorf("%s after its restart: refusal %q, want it to say it lost its secrets", who, o.Refusals[fp])
		}
	}

	// Recount what collectors 1 and 2 saw inside the window from their traces.
	truth := make([]uint64, o.Config.NumCounters())
	for _, n := range []string{"dc1", "dc2"} {
		prog, err := stats.Compile(o.Config.Statistics)
		if err != nil {
			t.Fatal(err)
		}
		c := sliceCounters(truth)
		err = source.Trace(filepath.Join(d.dir, n+".trace"), source.Fast).Run(context.Background(), nil, func(at time.Time, line []byte) {
			if !at.Before(o.Window.Start) && at.Before(o.Window.End) {
				prog.CountAt(at, line, c)
			}
		}, func(time.Time, time.Time) {})
		if err != nil {
			t.Fatal(err)
		}
	}
	i, counted := 0, 0
	for _, s := range o.Statistics {
		for _, b := range s.Bins {
			if b.NoisyTotal != int64(truth[i]) {
				t.Errorf("%s/%s: published %d, the collectors counted %d", s.Name, b.Label, b.NoisyTotal, truth[i])
			}
			if truth[i] > 0 {
				counted++
			}
			i++
		}
	}
	if counted < 4 {
		t.Fatalf("only %d counters saw events: the workload did not reach the collectors", counted)
	}
}

type sliceCounters []uint64

func (s sliceCounters) Add(c int, n uint64) { s[c] += n }
