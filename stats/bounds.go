package stats

// BinRange reads a numeric histogram bin's label as a round carries it,
// "[lo,hi)" with hi possibly "inf", and returns its edges; open is true for
// an open upper end. ok is false for a category or a single counter's
// label, which have no edges. Exports use it to give each bin a numeric
// upper bound (Prometheus's "le"-style label, PrivCount's bin triplets).
func BinRange(label string) (lo, hi uint64, open, ok bool) {
	lo, hi, err := parseRange(label)
	if err != nil {
		return 0, 0, false, false
	}
	return lo, hi, hi == inf, true
}
