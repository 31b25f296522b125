package loadtest

import (
	"fmt"
	"syscall"
)

// fdsPerCollector is what one simulated collector costs in open files in
// this process: its HTTP/2 connection to the tally server, and a spare for
// a reconnection whose old connection is still closing. Its bytes are
// counted in this process (wireCounter), not by a proxy, which would hold
// two more files per connection.
const fdsPerCollector = 2

// raiseFileLimit makes sure this process, and the tally server it starts
// (which inherits the limit), may open enough files for collectors
// simulated collectors, raising RLIMIT_NOFILE when it is short and the
// process may (root may raise the hard limit up to fs.nr_open). At 7,000
// collectors the common hard limit of 20,000 is not enough: collectors past
// it fail with "too many open files" and miss the round. It fails with the
// fix when the limit cannot be raised, before anything starts.
func raiseFileLimit(collectors int) error {
	need := uint64(collectors)*fdsPerCollector + 1024
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("loadtest: reading the open-file limit: %w", err)
	}
	if lim.Cur >= need {
		return nil
	}
	raised := syscall.Rlimit{Cur: need, Max: max(lim.Max, need)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
		return fmt.Errorf("loadtest: %d collectors need about %d open files (%d each), but the limit is %d (hard %d) and raising it failed (%v): raise it with 'ulimit -n %d' before running, or run fewer collectors",
			collectors, need, fdsPerCollector, lim.Cur, lim.Max, err, need)
	}
	return nil
}
