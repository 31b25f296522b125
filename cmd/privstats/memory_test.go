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

	"github.com/privstats/privstats/aggregator/shamir"
	"github.com/privstats/privstats/aggregator/wire"
	"github.com/privstats/privstats/identity"
	"github.com/privstats/privstats/tally"
	"github.com/privstats/privstats/transport"
)

// memoryBound is what a flood of posts may add to the tally server's peak
// resident memory over what it holds once it is up.
const memoryBound = 256 << 20

// TestTallyMemoryUnderFloods starts a tally server as its own process, so
// its peak resident memory (VmHWM in /proc/PID/status) is its own, and
// floods it with bodies of its max_body_bytes (8 MiB): 60 at once from one
// authenticated collector, and one at once from each of 500 authenticated
// collectors. Each flood is sent twice, in the
// worst case of each body format the server reads from collectors:
//
//   - binary, to /v1/bundles: a list of the most envelopes a list may hold
//     (shamir.MaxHolders), each with as large a body as fits, so the
//     server reads and allocates all 8 MiB before it can refuse the
//     bundles (wrong phase; unsigned);
//   - JSON, to /v1/refusal, the JSON endpoint collectors may post to: one
//     signed message whose base64 body fills the 8 MiB, which the server
//     buffers, checks and decodes before it can refuse it (bad signature).
//
// The peak must stay within memoryBound (256 MiB) of the server's resident
// memory before the flood. All four take about 5 s: the server refuses
// most posts unread (its caps on posts and on body memory) and closes
// their connections, so little of the 8 GB offered is sent.
func TestTallyMemoryUnderFloods(t *testing.T) {
	for _, flood := range []struct {
		name        string
		peers, each int
	}{{"one peer, 60 at once", 1, 60}, {"500 peers, one each", 500, 1}} {
		for _, format := range []struct {
			name, path, contentType string
			body                    func(int) []byte
		}{
			{"binary bundles", wire.PathBundles, wire.ContentBinary, binaryFloodBody},
			{"JSON refusal", wire.PathRefusal, "application/json", jsonFloodBody},
		} {
			t.Run(flood.name+", "+format.name, func(t *testing.T) {
				memoryFlood(t, flood.peers, flood.each, format.path, format.contentType, format.body(tally.DefaultMaxBodyBytes))
			})
		}
	}
}

func memoryFlood(t *testing.T, peers, each int, path, contentType string, body []byte) {
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

	before := procMemory(t, ts.cmd.Process.Pid, "VmRSS")
	var wg sync.WaitGroup
	var mu sync.Mutex
	answers := map[string]int{}
	for _, id := range ids {
		client := floodClient(t, id, d.listen, tallyID.Fingerprint)
		for range each {
			wg.Go(func() {
				req, _ := http.NewRequest(http.MethodPost, "https://"+d.listen+path, bytes.NewReader(body))
				req.Header.Set(wire.HeaderVersion, strconv.Itoa(wire.ProtocolVersion))
				req.Header.Set("Content-Type", contentType)
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

// binaryFloodBody is a binary list of shamir.MaxHolders unsigned share
// bundle envelopes, size bytes long: the most a list may hold, each as
// large as fits. A list of more, smaller envelopes is refused after its
// first 4 bytes.
func binaryFloodBody(size int) []byte {
	const envelope = 4 + 1 + len(wire.KindShareBundle) + 32 + 64 + 4 // length, kind, signer, signature, body length
	list := make([]identity.Signed, shamir.MaxHolders)
	bodyLen := (size-4)/len(list) - envelope
	for i := range list {
		list[i] = identity.Signed{Kind: wire.KindShareBundle, Signer: strings.Repeat("00", 32),
			Signature: make([]byte, 64), Body: bytes.Repeat([]byte{byte(i)}, bodyLen)}
	}
	b, err := wire.AppendSignedList(nil, list)
	if err != nil {
		panic(err)
	}
	return b
}

// jsonFloodBody is one JSON signed refusal, size bytes long, whose body
// (base64) fills it: the server holds the 8 MiB it read, the strings its
// key check and its decoder make of them and the decoded body at once.
func jsonFloodBody(size int) []byte {
	head := `{"kind":"refusal","signer":"` + strings.Repeat("00", 32) + `","signature":"","body":"`
	n := (size - len(head) - 2) / 4 * 4
	return []byte(head + strings.Repeat("QUFB", n/4) + `"}`)
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
