package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/privstats/privstats/config"
)

// log_format: json makes every line one JSON object a log shipper can
// read; text stays key=value.
func TestLogFormat(t *testing.T) {
	var b bytes.Buffer
	newLogger(&b, false, config.LogJSON).With("role", "collector").Info("collector up", "tally", "t:8443")
	var line map[string]any
	if err := json.Unmarshal(b.Bytes(), &line); err != nil {
		t.Fatalf("not JSON: %q: %v", b.String(), err)
	}
	if line["level"] != "INFO" || line["msg"] != "collector up" || line["role"] != "collector" || line["tally"] != "t:8443" {
		t.Errorf("line = %v", line)
	}
	b.Reset()
	newLogger(&b, false, config.LogText).Info("collector up")
	if !strings.Contains(b.String(), `level=INFO msg="collector up"`) {
		t.Errorf("text line = %q", b.String())
	}
}
