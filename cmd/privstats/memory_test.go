package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/privstats/privstats/aggregator/wire"
	"github.com/privstats/privstats/identity"
	"github.com/privstats/privstats/tally"
	"github.com/privstats/privstats/transport"
)

// memoryBound is what a flood of posts may add to the tally server's peak
// resident memory over what it holds once it is up.
const memoryBound = 256 << 20

// memoryEnv runs TestTallyMemoryUnderFloods. It is not in CI while the
// server holds each body whole: one peer's flood then peaks at 220–260 MiB
// over the baseline, astride the bound (docs/robustness.md).
const memoryEnv = "PRIVSTATS_MEMORY"

// memoryPeersEnv runs the flood from 500 authenticated peers too (moving
// about 4 GB over loopback TLS).
const memoryPeersEnv = "PRIVSTATS_MEMORY_PEERS"

// TestTallyMemoryUnderFloods starts a tally server as its own process, so
// its peak resident memory (VmHWM in /proc/PID/status) is its own, and
// floods it with 8 MiB bodies, each a list of as many small signed
// messages as fit, which decode to far more than their size: 60 at once
// from one authenticated collector (PRIVSTATS_MEMORY=1) and one at once
// from each of 500 authenticated collectors (PRIVSTATS_MEMORY_PEERS=1).
// The peak must stay within memoryBound (256 MiB) of the server's resident
// memory before the flood.
func TestTallyMemoryUnderFloods(t *testing.T) {
	t.Run("one peer, 60 at once", func(t *testing.T) {
		if os.Getenv(memoryEnv) == "" {
			t.Skipf("set %s=1 to run it", memoryEnv)
		}
		memoryFlood(t, 1, 60)
	})
	t.Run("500 peers, one each", func(t *testing.T) {
		if os.Getenv(memoryPeersEnv) == "" {
			t.Skipf("moves about 4 GB; set %s=1 to run it", memoryPeersEnv)
		}
		memoryFlood(t, 500, 1)
	})
}

func memoryFlood(t *testing.T, peers, each int) {
	d := newDeployment(t)
	tallyID, err := identity.New()
	if err != nil {
		t.Fatal(err)
	}
	if err := tallyID.Save(filepath.Join(d.dir, "tally.key")); err != nil {
		t.Fatal(err)
	}
	ids := make([]*identity.Identity, peers)
	var list strings.Builder
	for i := range ids {
		if ids[i], err = identity.New(); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&list, "  - fingerprint: %s\n", ids[i].Fingerprint)
	}
	var keepers strings.Builder
	for range 3 {
		k, _ := identity.New() // listed, never started: the round never gets past its announcement
		fmt.Fprintf(&keepers, "  - %s\n", k.Fingerprint)
	}
	d.listen, d.http = freePort(t), freePort(t)
	d.write("tally.yaml", fmt.Sprintf(`identity_key: tally.key
listen: %s
http_listen: %s
data_dir: data
series: flood
rounds: 1
round_length: 1h
setup_time: 1h
keepers:
%sthreshold: 2
collectors:
%smin_collectors: 1
epsilon: 0.4
delta: 0.0004
statistics:
  - {name: relay_bytes_read, sigma: 0, epsilon: 0.1, delta: 0.0001}
%s`, d.listen, d.http, keepers.String(), list.String(), testPolicy))
	ts := d.start("tally", "tally", "-c", "tally.yaml")
	d.waitUp(ts)

	body := floodBody(tally.DefaultMaxBodyBytes)
	before := procMemory(t, ts.cmd.Process.Pid, "VmRSS")
	var wg sync.WaitGroup
	var mu sync.Mutex
	answers := map[string]int{}
	for _, id := range ids {
		client := floodClient(t, id, d.listen, tallyID.Fingerprint)
		for range each {
			wg.Go(func() {
				req, _ := http.NewRequest(http.MethodPost, "https://"+d.listen+wire.PathBundles, bytes.NewReader(body))
				req.Header.Set(wire.HeaderVersion, strconv.Itoa(wire.ProtocolVersion))
				req.Header.Set("Content-Type", "application/json")
				answer := "error"
				if resp, err := client.Do(req); err == nil {
					answer = strconv.Itoa(resp.StatusCode)
					resp.Body.Close()
				}
				mu.Lock()
				answers[answer]++
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	if ts.exited() {
		t.Fatal("the tally server died under the flood")
	}
	peak := procMemory(t, ts.cmd.Process.Pid, "VmHWM")
	t.Logf("%d peers × %d bodies of %d bytes: answers %v; resident before %d MiB, peak %d MiB (+%d MiB, bound +%d MiB)",
		peers, each, len(body), answers, before>>20, peak>>20, (peak-before)>>20, memoryBound>>20)
	if peak-before > memoryBound {
		t.Errorf("peak resident memory grew by %d MiB, more than %d MiB", (peak-before)>>20, memoryBound>>20)
	}
	// A post over the caps is answered before its body is read, and the
	// connection closed; the client, still writing, may see only that. The
	// server's count says every post was answered.
	text, _ := d.metrics()
	counted := 0.0
	for line := range strings.Lines(text) {
		if rest, ok := strings.CutPrefix(line, "privstats_rejected_requests_total{"); ok {
			_, v, _ := strings.Cut(rest, "} ")
			n, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			counted += n
		}
	}
	if int(counted) != peers*each {
		t.Errorf("the server counted %v refused posts, want all %d (none can be accepted: the round is not collecting)\n%s", counted, peers*each, text)
	}
}

// floodBody is a JSON list of empty signed messages, size bytes long.
func floodBody(size int) []byte {
	const item = `{"kind":"share_bundle","signer":"","body":"","signature":""}`
	var b bytes.Buffer
	b.Grow(size)
	b.WriteByte('[')
	for b.Len()+len(item)+2 <= size {
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		b.WriteString(item)
	}
	b.WriteByte(']')
	return b.Bytes()
}

// floodClient is an HTTPS client authenticated as id, with a connection
// per request in flight (HTTP/1.1), as separate clients would have.
func floodClient(t *testing.T, id *identity.Identity, addr, tallyFP string) *http.Client {
	conf, err := transport.ClientConfig(id, tallyFP)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{TLSClientConfig: conf, DisableKeepAlives: true}}
}

// procMemory reads one "Vm…: N kB" line of /proc/PID/status, in bytes.
func procMemory(t *testing.T, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("/proc/%d/status has no %s", pid, field)
	return 0
}
