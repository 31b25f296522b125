package loadtest

import (
	"strings"
	"syscall"
	"testing"
)

func TestRaiseFileLimit(t *testing.T) {
	var before syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &before); err != nil {
		t.Fatal(err)
	}
	// A need below the current limit changes nothing.
	if err := raiseFileLimit(1); err != nil {
		t.Fatalf("1 collector: %v", err)
	}
	// No process may open more files than fs.nr_open (at most 2^30 on
	// Linux), so this need cannot be met: the error names the fix.
	err := raiseFileLimit(1 << 30)
	if err == nil {
		t.Fatal("a need of 2·2^30 files was granted")
	}
	if !strings.Contains(err.Error(), "ulimit -n") {
		t.Errorf("error does not name the fix: %v", err)
	}
	var after syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &after); err != nil {
		t.Fatal(err)
	}
	if after.Cur < before.Cur {
		t.Errorf("limit fell from %d to %d", before.Cur, after.Cur)
	}
}
