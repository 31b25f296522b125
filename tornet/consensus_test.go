package tornet

import "testing"

func TestListedRelaysCountsRouterLinesOfOurRelays(t *testing.T) {
	consensus := `network-status-version 3 microdesc
vote-status consensus
valid-after 2026-11-22 09:28:10
r auth0 AY2h8Sj0Ue7uFBBXGbYU2zG3+TQ 2026-11-22 09:28:04 127.0.0.1 41001 41003
m ZaeLwzR2R3y5iP3T3rrFcbPYGhO7WqGjkt04pN4BMOg
s Authority Exit Fast Guard HSDir Running Stable V2Dir Valid
r exit0 Bf4d+u3NFUBnA0Al6AEq3kLbHxo 2026-11-22 09:28:05 127.0.0.1 41010 0
s Exit Fast Guard HSDir Running Stable Valid
r stranger ChfX2hJl0ZU5tDrEbgPHjH4Mi0I 2026-11-22 09:28:05 127.0.0.1 41020 0
directory-footer
`
	want := map[string]bool{"auth0": true, "auth1": true, "exit0": true, "middle0": true}
	if got := listedRelays(consensus, want); got != 2 {
		t.Errorf("listedRelays = %d, want 2 (auth0 and exit0; not stranger, not the s lines)", got)
	}
	if got := listedRelays("", want); got != 0 {
		t.Errorf("empty consensus: %d", got)
	}
}
