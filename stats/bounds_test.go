package stats

import "testing"

func TestBinRange(t *testing.T) {
	for _, c := range []struct {
		label      string
		lo, hi     uint64
		open, isOK bool
	}{
		{"[0,1024)", 0, 1024, false, true},
		{"[65536,inf)", 65536, inf, true, true},
		{"[ 10 , 60 )", 10, 60, false, true},
		{"web", 0, 0, false, false},
		{"total", 0, 0, false, false},
		{"[5,5)", 0, 0, false, false},
	} {
		lo, hi, open, ok := BinRange(c.label)
		if lo != c.lo || hi != c.hi || open != c.open || ok != c.isOK {
			t.Errorf("BinRange(%q) = %d, %d, %v, %v; want %d, %d, %v, %v", c.label, lo, hi, open, ok, c.lo, c.hi, c.open, c.isOK)
		}
	}
	// Every catalogue histogram's labels read back to its edges.
	for _, st := range Catalogue() {
		for i, l := range st.Bins.Labels() {
			lo, _, _, ok := BinRange(l)
			if ok != st.Bins.IsNumeric() || (ok && lo != st.Bins.Edges[i]) {
				t.Errorf("%s bin %q: BinRange lo %d ok %v", st.Name, l, lo, ok)
			}
		}
	}
}
