package main

import (
	"fmt"
	"io"
	"path/filepath"

	"github.com/privstats/privstats/site"
)

// exportSite writes the results site of the outcome files in dir into
// outDir (`privstats results DIR --html OUTDIR`).
func exportSite(dir, outDir string, stdout, stderr io.Writer) error {
	ex, err := site.Open(dir).Export(outDir)
	for _, name := range ex.Unreadable {
		fmt.Fprintf(stderr, "skipped %s: not an outcome file\n", filepath.Join(dir, name))
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %d pages and %d CSV files for %d rounds; open %s\n", ex.Pages, ex.CSVs, ex.Rounds, filepath.Join(outDir, "index.html"))
	return nil
}
