package policy_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/privstats/privstats/policy"
)

func TestMissingLedgerIsEmpty(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keeper", policy.LedgerFile)
	led, err := policy.OpenLedger(path)
	if err != nil {
		t.Fatal(err)
	}
	// With no history, even a changed round is a first round.
	if err := policy.Defaults().Check(firstRound(), led, day1); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("opening a ledger created %s", path)
	}
	if err := led.Record(firstRound(), policy.Defaults()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("Record did not write the ledger (its directory did not exist): %v", err)
	}
}

func TestCorruptLedgerIsAnErrorNamingTheFile(t *testing.T) {
	tests := map[string]string{
		"truncated":     `{"version":1,"series":{"relays":{"baseline_round":1,`,
		"empty":         ``,
		"not JSON":      "version = 1\n",
		"wrong version": `{"version":7,"series":{}}`,
		"unknown field": `{"version":1,"series":{},"counts":[1,2,3]}`,
		"trailing data": `{"version":1,"series":{}} {}`,
		"null series":   `{"version":1,"series":{"relays":null}}`,
	}
	for name, content := range tests {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), policy.LedgerFile)
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			led, err := policy.OpenLedger(path)
			if err == nil {
				t.Fatalf("corrupt ledger opened: %+v", led)
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "corrupt") {
				t.Errorf("error %q does not name %s as corrupt", err, path)
			}
			// Never silently reset: the file is still there, unchanged.
			if b, _ := os.ReadFile(path); string(b) != content {
				t.Errorf("the corrupt file was changed to %q", b)
			}
		})
	}
}

func TestUnreadableLedgerIsAnError(t *testing.T) {
	dir := t.TempDir() // a directory where the file should be
	if _, err := policy.OpenLedger(dir); err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("got %v, want an error naming %s", err, dir)
	}
}

// The ledger file holds the delay rule's history and nothing derived from
// counts, and is replaced whole (no temporary files left behind).
func TestLedgerFileContents(t *testing.T) {
	dir := t.TempDir()
	led, err := policy.OpenLedger(filepath.Join(dir, policy.LedgerFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := led.Record(firstRound(), policy.Defaults()); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != policy.LedgerFile {
		t.Errorf("directory holds %v, want only %s", entries, policy.LedgerFile)
	}
	b, err := os.ReadFile(led.Path())
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Version int
		Series  map[string]struct {
			BaselineRound uint64 `json:"baseline_round"`
			Baseline      []struct {
				Name  string
				Sigma float64
			}
			LastRound uint64    `json:"last_round"`
			LastEnd   time.Time `json:"last_end"`
		}
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	s := f.Series["relays"]
	if f.Version != 1 || s.BaselineRound != 1 || s.LastRound != 1 || !s.LastEnd.Equal(day1) || len(s.Baseline) != 3 || s.Baseline[1].Name != "exit_streams" || s.Baseline[1].Sigma != 4e5 {
		t.Errorf("ledger file:\n%s", b)
	}
}

func TestLedgerIsSafeForConcurrentUse(t *testing.T) {
	p := policy.Defaults()
	led := newLedger(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			cfg := firstRound()
			cfg.Series = fmt.Sprintf("series-%d", i)
			if err := p.Check(cfg, led, day1); err != nil {
				t.Error(err)
			}
			if err := led.Record(cfg, p); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	again := reopen(t, led)
	for i := range 8 {
		cfg := testRound(2, day1.Add(-time.Hour), day1.Add(time.Hour))
		cfg.Series = fmt.Sprintf("series-%d", i)
		if err := p.Check(cfg, again, day1); err == nil {
			t.Errorf("series-%d: the overlapping round was accepted; its first round was lost", i)
		}
	}
}
