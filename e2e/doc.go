// Package e2e holds privstats's end-to-end test against real tor: a private,
// loopback-only Tor network (package tornet) watched by one collector per
// relay, with a tally server and share keepers, measuring traffic the test
// drives itself (tor_test.go), and a Debian relay's path from `privstats
// init collector` to `privstats collect --check` over tor's control socket
// (debian_test.go). It has no code of its own.
package e2e
