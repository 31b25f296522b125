package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"
)

// soakEnv sets how long TestSoak runs (a Go duration, e.g. 15m); unset,
// the test is skipped.
const soakEnv = "PRIVSTATS_SOAK"

// TestSoak runs rounds back to back across separate processes for
// PRIVSTATS_SOAK (e.g. 15m), kill -9ing a random keeper about every third
// round and the tally server about every eighth, each restarted at once.
// At every round's end it records the resident memory (VmRSS) and open
// file descriptors (/proc/PID/fd) of the tally server and each keeper, and
// the round's result. Every round must be published or failed with a
// logged reason, and within each process's life its descriptors may not
// grow by more than 16 nor its resident memory by more than 64 MiB from
// its third sample on (the first rounds warm caches up).
func TestSoak(t *testing.T) {
	v := os.Getenv(soakEnv)
	if v == "" {
		t.Skipf("set %s to a duration (e.g. 15m) to run the soak", soakEnv)
	}
	length, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("%s=%q: %v", soakEnv, v, err)
	}
	d := newDeployment(t)
	d.configure(seriesSpec{name: "soak", rounds: 0, roundLength: "3s", setupTime: "2s"})
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	running := map[string]*proc{"tally": d.start("tally", "tally", "-c", "tally.yaml")}
	watched := []string{"tally", "keeper1", "keeper2", "keeper3"}
	for i := 1; i <= 3; i++ {
		k, dc := fmt.Sprintf("keeper%d", i), fmt.Sprintf("dc%d", i)
		running[k] = d.start(k, "keeper", "-c", k+".yaml")
		running[dc] = d.start(dc, "collect", "-c", dc+".yaml")
	}
	d.waitUp(running["tally"])

	// life is one process's samples, in order.
	type sample struct {
		round    uint64
		rss, fds int64
	}
	lives := map[*proc][]sample{}
	var rows []string
	restarts := 0
	var events []string // since the last row
	kill := func(name, command string) {
		running[name].kill(t)
		restarts++
		events = append(events, name)
		running[name] = d.start(fmt.Sprintf("%s-%d", name, restarts), command, "-c", name+".yaml")
	}

	_, last, _ := d.progress()
	end := time.Now().Add(length)
	// Events happen at random points of a round: each tick (every 100 ms,
	// about 60 a round) has these chances.
	const keeperChance, tallyChance = 1.0 / 180, 1.0 / 480
	for time.Now().Before(end) {
		time.Sleep(100 * time.Millisecond)
		if running["tally"].exited() {
			t.Fatal("the tally server exited")
		}
		switch x := rng.Float64(); {
		case x < tallyChance:
			kill("tally", "tally")
			d.waitUp(running["tally"])
		case x < tallyChance+keeperChance:
			kill(fmt.Sprintf("keeper%d", 1+rng.IntN(3)), "keeper")
		}
		_, n, ok := d.progress()
		if !ok || n <= last {
			continue
		}
		// Rounds last+1 … n−1 ended while a restart hid them; round last
		// ended just now, as n was announced.
		for r := last; r < n; r++ {
			if r == 0 {
				continue
			}
			o, reason := d.ended(r)
			var result string
			switch {
			case o != nil:
				result = fmt.Sprintf("done (%d collectors, %d shares)", o.Collectors.Count, len(o.Shares))
			case reason != "":
				result = "failed: " + reason
			default:
				t.Errorf("round %d ended neither published nor failed with a reason", r)
			}
			row := fmt.Sprintf("%4d  %-60s", r, result)
			for _, name := range watched {
				p := running[name]
				s := sample{round: r, rss: procMemory(t, p.cmd.Process.Pid, "VmRSS"), fds: openFDs(t, p.cmd.Process.Pid)}
				lives[p] = append(lives[p], s)
				row += fmt.Sprintf("  %s %3d MiB %3d fds", name, s.rss>>20, s.fds)
			}
			if len(events) > 0 {
				row += "  killed: " + strings.Join(events, ", ")
				events = nil
			}
			rows = append(rows, row)
		}
		last = n
	}
	t.Logf("%d rounds, %d restarts (seed %d):\n%s", len(rows), restarts, seed, strings.Join(rows, "\n"))
	for p, life := range lives {
		if len(life) < 5 {
			continue
		}
		base := life[2]
		for _, s := range life[3:] {
			if s.fds > base.fds+16 || s.rss > base.rss+64<<20 {
				t.Errorf("%s grew from %d fds, %d MiB at round %d to %d fds, %d MiB at round %d",
					p.name, base.fds, base.rss>>20, base.round, s.fds, s.rss>>20, s.round)
				break
			}
		}
	}
}

// openFDs counts the open file descriptors of a process.
func openFDs(t *testing.T, pid int) int64 {
	t.Helper()
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return int64(len(entries))
}
