package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/outcome"
)

// TestFullDiskIsRefusedThenRecovered gives the tally server a data
// directory on a 1 MiB tmpfs (so it needs root, or CAP_SYS_ADMIN, to
// mount; it skips otherwise), fills the disk once the keepers' round keys
// are stored, and only then starts the collectors. Their share bundles
// cannot be journaled: each post must be answered 500 naming the failed
// operation, counted as privstats_tally_internal_errors_total{op=
// "journal_write"} and logged at ERROR with the OS's reason. The server is
// then kill -9ed and restarted on the still-full disk, which it must
// survive; once space returns, the collectors' retries are stored and the
// round publishes an outcome that verifies, with all three collectors.
func TestFullDiskIsRefusedThenRecovered(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a round of about 15 seconds across seven processes")
	}
	d := newDeployment(t)
	d.configure(seriesSpec{name: "disk", rounds: 1, roundLength: "4s", setupTime: "8s"})
	data := filepath.Join(d.dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", data, "tmpfs", 0, "size=1m,mode=0700"); err != nil {
		t.Skipf("cannot mount a small tmpfs to fill (%v): this test needs root", err)
	}
	// Detached lazily: the processes may still hold it open until the
	// deployment's cleanup (which runs after this one) kills them.
	t.Cleanup(func() { syscall.Unmount(data, syscall.MNT_DETACH) })

	ts := d.start("tally", "tally", "-c", "tally.yaml", "-exit-when-done")
	for i := 1; i <= 3; i++ {
		k := "keeper" + strconv.Itoa(i)
		d.start(k, "keeper", "-c", k+".yaml", "-exit-when-done")
	}
	d.waitPhase(round.PhaseSetup, 30*time.Second)
	filler := fill(t, data)

	for i := 1; i <= 3; i++ {
		dc := "dc" + strconv.Itoa(i)
		d.start(dc, "collect", "-c", dc+".yaml", "-exit-when-done")
	}
	d.waitCount(`privstats_tally_internal_errors_total{op="journal_write"}`, 1, 20*time.Second)
	if n := d.count(`privstats_round_collectors_joined`); n != 0 {
		t.Fatalf("%v collectors joined on a full disk", n)
	}
	ts.kill(t)
	ts = d.start("tally-restarted", "tally", "-c", "tally.yaml", "-exit-when-done")
	d.waitUp(ts)
	// The restarted server refuses the same way: what it loaded is whole.
	d.waitCount(`privstats_tally_internal_errors_total{op="journal_write"}`, 1, 20*time.Second)
	for _, p := range []*proc{d.procs[0], ts} {
		b, _ := os.ReadFile(p.log)
		if !bytes.Contains(b, []byte(`level=ERROR msg="tally server failure" role=tally op=journal_write`)) || !bytes.Contains(b, []byte("no space left on device")) {
			t.Errorf("%s did not log the journal write failure at ERROR with its reason", p.name)
		}
	}
	b, _ := os.ReadFile(filepath.Join(d.dir, "dc1.log"))
	if !bytes.Contains(b, []byte("internal error (journal_write): the tally server did not store the message; send it again later")) {
		t.Error("collector 1 was not told its bundles were not stored and why")
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	ts.waitDone(t, 60*time.Second) // the round finishes once space returns
	o, err := outcome.Read(d.outcomePath(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := outcome.Verify(o); err != nil {
		t.Fatalf("the outcome published after the disk was full does not verify: %v", err)
	}
	if o.Collectors.Count != 3 {
		t.Fatalf("%d collectors in S, want all 3 (their bundles were stored once space returned): %v", o.Collectors.Count, o.Collectors.Fingerprints)
	}
}

// fill writes a file into dir until the file system is full and returns
// its path.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return path
		}
	}
}

// count is the value of one sample on the tally server's /metrics (0 if
// it is missing or the server does not answer).
func (d *deployment) count(sample string) float64 {
	text, _ := d.metrics()
	for line := range strings.Lines(text) {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return 0
}

// waitCount waits until sample reaches at least n.
func (d *deployment) waitCount(sample string, n float64, within time.Duration) {
	d.t.Helper()
	deadline := time.Now().Add(within)
	for d.count(sample) < n {
		if time.Now().After(deadline) {
			d.t.Fatalf("%s did not reach %v within %s", sample, n, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
