package site_test

import (
	"io"
	"testing"

	"github.com/privstats/privstats/site"
)

// BenchmarkPage is a request for the results page of a series of 500
// rounds (three statistics, 13 bins) once the archive has read them and
// drawn the plots: a directory listing, a stat per file and the template.
func BenchmarkPage(b *testing.B) {
	dir := b.TempDir()
	writeRounds(b, dir, 500)
	a := site.Open(dir)
	opts := site.PageOptions{Series: true, RoundLink: func(n string) string { return "?round=" + n }}
	if err := a.WritePage(io.Discard, opts); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := a.WritePage(io.Discard, opts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPageFirst is the first request for the same page: every outcome
// read and parsed, every plot drawn.
func BenchmarkPageFirst(b *testing.B) {
	dir := b.TempDir()
	writeRounds(b, dir, 500)
	opts := site.PageOptions{Series: true, RoundLink: func(n string) string { return "?round=" + n }}
	b.ReportAllocs()
	for b.Loop() {
		if err := site.Open(dir).WritePage(io.Discard, opts); err != nil {
			b.Fatal(err)
		}
	}
}
