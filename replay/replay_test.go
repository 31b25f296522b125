package replay_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/privstats/privstats/replay"
	"github.com/privstats/privstats/stats"
)

const sampleTrace = "../testdata/sample.trace"

func TestPreviewTable(t *testing.T) {
	var out strings.Builder
	if err := replay.Preview(context.Background(), sampleTrace, nil, &out, "table"); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	if !strings.HasPrefix(s, "LOCAL PREVIEW of your own relay's data") || !strings.Contains(s, "Nothing was sent anywhere") {
		t.Errorf("preview does not open with its notice:\n%s", s)
	}
	for _, st := range stats.Catalogue() {
		if !strings.Contains(s, st.Name) {
			t.Errorf("preview of all statistics lacks %s", st.Name)
		}
	}
	for _, want := range []string{
		`relay_bytes_read\s+control\s+total\s+193883\s+bytes`,
		`exit_streams_by_port\s+privcount\s+web\s+2\s+streams`,
		`or_connection_lifetime\s+control\s+\[10,60\)\s+3\s+connections`,
		`malformed: 1 \(skipped\)`,
		`events:\s+63 \(2026-11-22T`,
	} {
		if !regexp.MustCompile(want).MatchString(s) {
			t.Errorf("preview lacks %q:\n%s", want, s)
		}
	}
}

func TestPreviewJSONOfNamedStatistics(t *testing.T) {
	var out strings.Builder
	names := []string{"hsdir_v3_fetches", "relay_bytes_written"}
	if err := replay.Preview(context.Background(), sampleTrace, names, &out, "json"); err != nil {
		t.Fatal(err)
	}
	var r struct {
		LocalPreview bool   `json:"local_preview"`
		Notice       string `json:"notice"`
		Events       int    `json:"events"`
		Malformed    int    `json:"malformed_events"`
		Statistics   []struct {
			Name string `json:"name"`
			Bins []struct {
				Label string `json:"label"`
				Count uint64 `json:"count"`
			} `json:"bins"`
		} `json:"statistics"`
	}
	if err := json.Unmarshal([]byte(out.String()), &r); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !r.LocalPreview || !strings.Contains(r.Notice, "LOCAL PREVIEW") || r.Events != 63 || r.Malformed != 1 {
		t.Errorf("report header = %+v", r)
	}
	if len(r.Statistics) != 2 || r.Statistics[0].Name != "hsdir_v3_fetches" || r.Statistics[1].Name != "relay_bytes_written" {
		t.Fatalf("statistics = %+v", r.Statistics)
	}
	f := r.Statistics[0].Bins
	if len(f) != 2 || f[0].Label != "cached" || f[0].Count != 2 || f[1].Label != "uncached" || f[1].Count != 1 {
		t.Errorf("hsdir_v3_fetches = %+v", f)
	}
	if b := r.Statistics[1].Bins; len(b) != 1 || b[0].Label != "total" || b[0].Count != 188737 {
		t.Errorf("relay_bytes_written = %+v", b)
	}
}

func TestPreviewErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.trace")
	os.WriteFile(bad, []byte("1795316000.0 650 BW 1 2\n17953x6001 650 BW 1 2\n"), 0o600)
	for _, tc := range []struct {
		path, format string
		names        []string
		want         string
	}{
		{sampleTrace, "table", []string{"exit_stream"}, `unknown statistic "exit_stream"`},
		{sampleTrace, "yaml", nil, "unknown format"},
		{bad, "table", nil, "bad.trace:2: bad timestamp"},
		{filepath.Join(t.TempDir(), "missing.trace"), "json", nil, "no such file"},
	} {
		var out strings.Builder
		err := replay.Preview(context.Background(), tc.path, tc.names, &out, tc.format)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Preview(%s, %v, %s) = %v, want an error mentioning %q", tc.path, tc.names, tc.format, err, tc.want)
		}
	}
}
