// Package e2e holds privstats's end-to-end test against real tor: a private,
// loopback-only Tor network (package tornet) watched by one collector per
// relay, with a tally server and share keepers, measuring traffic the test
// drives itself. It has no code of its own; see tor_test.go.
package e2e
