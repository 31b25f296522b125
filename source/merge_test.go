package source

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestMergeDeliversEveryPartsEventsAndGaps(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.trace")
	b := filepath.Join(dir, "b.trace")
	os.WriteFile(a, []byte("1795316008.000 650 BW 1 2\n1795316009.000 650 BW 3 4\n"), 0o600)
	os.WriteFile(b, []byte("# gap 1795316000.000 1795316001.000\n1795316010.000 650 BW 5 6\n"), 0o600)
	var lines []string
	gaps := 0
	err := Merge(Trace(a, Fast), Trace(b, Fast)).Run(context.Background(), nil,
		func(_ time.Time, line []byte) { lines = append(lines, string(line)) },
		func(time.Time, time.Time) { gaps++ })
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(lines)
	if want := []string{"650 BW 1 2", "650 BW 3 4", "650 BW 5 6"}; !slices.Equal(lines, want) {
		t.Fatalf("merged events %q, want %q", lines, want)
	}
	if gaps != 1 {
		t.Fatalf("%d gaps, want 1", gaps)
	}
}

func TestMergeReportsAPartsFailure(t *testing.T) {
	err := Merge(Trace(filepath.Join(t.TempDir(), "missing.trace"), Fast), Synthetic(SyntheticOptions{Fast: true, Limit: 10, Seed: 1})).Run(
		context.Background(), nil, func(time.Time, []byte) {}, func(time.Time, time.Time) {})
	if err == nil {
		t.Fatal("a missing trace went unreported")
	}
}
