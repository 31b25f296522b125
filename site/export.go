package site

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
)

// Exported counts what Export wrote.
type Exported struct {
	Rounds, Pages, CSVs int
	// Unreadable are the files of the archive that are not outcomes.
	Unreadable []string
}

// safeName is what a series, round or statistic name must look like to
// become part of a file name.
var safeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// Export writes the site into outDir as static files that open from disk
// with nothing fetched from a network: index.html (the latest round, with
// every statistic's totals over the rounds of its series), round-NAME.html
// per round, and the CSV behind every plot under csv/.
func (a *Archive) Export(outDir string) (Exported, error) {
	if st, err := os.Stat(a.dir); err != nil || !st.IsDir() {
		return Exported{}, fmt.Errorf("no outcomes directory %s", a.dir)
	}
	all, unreadable, err := a.Rounds()
	if err != nil {
		return Exported{}, err
	}
	ex := Exported{Rounds: len(all), Unreadable: unreadable}
	if len(all) == 0 {
		return ex, fmt.Errorf("no published rounds in %s", a.dir)
	}
	for _, r := range all {
		for _, name := range append([]string{r.Name, r.Series}, statNames(r)...) {
			if !safeName.MatchString(name) {
				return ex, fmt.Errorf("%s: the name %q cannot be part of a file name", r.Name, name)
			}
		}
	}
	link := func(name string) string { return "round-" + name + ".html" }
	write := func(name string, opts PageOptions) error {
		var buf bytes.Buffer
		opts.RoundLink, opts.Overview = link, "index.html"
		if err := a.WritePage(&buf, opts); err != nil {
			return err
		}
		ex.Pages++
		return writeFile(filepath.Join(outDir, name), buf.Bytes())
	}
	if err := write("index.html", PageOptions{Series: true}); err != nil {
		return ex, err
	}
	series := map[string]bool{}
	for i, r := range all {
		if err := write(link(r.Name), PageOptions{Round: r.Name}); err != nil {
			return ex, err
		}
		for _, stat := range statNames(r) {
			if err := writeCSV(filepath.Join(outDir, csvPath("round", r.Name, stat)), stat, all[i:i+1]); err != nil {
				return ex, err
			}
			ex.CSVs++
			if key := r.Series + "\x00" + stat; !series[key] {
				series[key] = true
				if err := writeCSV(filepath.Join(outDir, csvPath("series", r.Series, stat)), stat, inSeries(all, r.Series)); err != nil {
					return ex, err
				}
				ex.CSVs++
			}
		}
	}
	return ex, nil
}

func statNames(r Round) []string {
	out := make([]string, len(r.Statistics))
	for i, s := range r.Statistics {
		out[i] = s.Name
	}
	return out
}

func writeCSV(path, stat string, rounds []Round) error {
	var buf bytes.Buffer
	if err := WriteCSV(&buf, stat, rounds); err != nil {
		return err
	}
	return writeFile(path, buf.Bytes())
}

func writeFile(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return err
	}
	return nil
}
