package config_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"reflect"

	"github.com/privstats/privstats/config"
	"github.com/privstats/privstats/policy"
)

// writeTemplate writes role's template to a fresh directory, as init does.
func writeTemplate(t *testing.T, role string) (path string, text string) {
	t.Helper()
	dir := t.TempDir()
	path = filepath.Join(dir, role+".yaml")
	b, err := config.Template(role, config.TemplateValues{Path: path, IdentityKey: role + ".key", Fingerprint: fp1, DataDir: "/var/lib/privstats/" + role})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, string(b)
}

// fillIn marks the keys a template leaves for the operator to fill in.
var fillInRE = regexp.MustCompile(`FILL IN`)

// A collector's file fresh from init is checkable at once: its source is
// Debian's tor, and nothing else is looked at.
func TestCollectorTemplateLoadsForCheck(t *testing.T) {
	path, text := writeTemplate(t, "collector")
	if !strings.Contains(text, fp1) {
		t.Error("the template does not show this node's fingerprint")
	}
	dc, err := config.LoadCollectorSource(path)
	if err != nil {
		t.Fatal(err)
	}
	if network, addr := dc.Source.Control.Network(); network != "unix" || addr != "/run/tor/control" {
		t.Errorf("control dials %s %s, want Debian's socket", network, addr)
	}
	if dc.Source.Control.CookieFile != "" || !slices.Equal(dc.Source.Control.AllowedAuth, []string{"SAFECOOKIE"}) {
		t.Errorf("control %+v: want the cookie tor names, by SAFECOOKIE", dc.Source.Control)
	}
	if dc.LogFormat != config.LogText {
		t.Errorf("log_format %q", dc.LogFormat)
	}
	// The full loader names what is still to be filled in.
	_, err = config.LoadCollector(path)
	for _, want := range []string{"tally.address: required", "tally.fingerprint: required", "keepers: required"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("LoadCollector = %v, want it to say %q", err, want)
		}
	}
	// Filled in, it is a complete collector.yaml.
	filled := strings.Replace(text, "  address: \"\"\n  fingerprint: \"\"", "  address: tally.example.org:8443\n  fingerprint: "+fp2, 1)
	filled = strings.Replace(filled, "keepers: []", "keepers: ["+fp1+", "+fp2+", "+fp3+"]", 1)
	if err := os.WriteFile(path, []byte(filled), 0o600); err != nil {
		t.Fatal(err)
	}
	dc, err = config.LoadCollector(path)
	if err != nil {
		t.Fatalf("filled in: %v", err)
	}
	if dc.IdentityKey != filepath.Join(filepath.Dir(path), "collector.key") || dc.DataDir != "/var/lib/privstats/collector" ||
		!reflect.DeepEqual(dc.Policy, policy.Defaults()) {
		t.Errorf("collector %+v", dc)
	}
}

// Every template loads except for the keys it marks FILL IN: each problem
// the full loader reports is on a line the template marks, or under it.
func TestTemplatesMissOnlyWhatTheyMark(t *testing.T) {
	loaders := map[string]func(string) error{"collector": loadCollector, "keeper": loadKeeper, "tally": loadTally}
	for _, role := range config.Roles {
		t.Run(role, func(t *testing.T) {
			path, text := writeTemplate(t, role)
			err := loaders[role](path)
			if err == nil {
				t.Fatal("a template with nothing filled in loaded")
			}
			lines := strings.Split(text, "\n")
			// The keys a FILL IN comment is about: the next key line.
			marked := map[string]bool{}
			for i, l := range lines {
				if !fillInRE.MatchString(l) || !strings.HasPrefix(strings.TrimSpace(l), "#") {
					continue
				}
				for _, k := range lines[i+1:] {
					if k != "" && !strings.HasPrefix(k, "#") {
						marked[strings.TrimSpace(strings.SplitN(k, ":", 2)[0])] = true
						break
					}
				}
			}
			for p := range strings.SplitSeq(err.Error(), "\n") {
				_, problem, _ := strings.Cut(strings.TrimPrefix(p, path+":"), ": ")
				key := strings.SplitN(strings.SplitN(problem, ":", 2)[0], ".", 2)[0]
				if !marked[key] {
					t.Errorf("problem %q is about %q, which the template does not mark FILL IN (marked: %v)", p, key, marked)
				}
			}
		})
	}
}

func TestTemplateUnknownRole(t *testing.T) {
	if _, err := config.Template("collecter", config.TemplateValues{}); err == nil || !strings.Contains(err.Error(), "collector") {
		t.Errorf("err = %v", err)
	}
}

func TestLogFormat(t *testing.T) {
	keeper := "identity_key: k\ntally: {address: \"t:8443\", fingerprint: " + fp1 + "}\nkeepers: [" + fp1 + "]\ncollectors: [{fingerprint: " + fp2 + "}]\n"
	k, err := config.LoadKeeper(write(t, keeper+"log_format: json\n"))
	if err != nil || k.LogFormat != config.LogJSON {
		t.Fatalf("log_format json: %+v, %v", k, err)
	}
	wantProblems(t, loadKeeper, []problem{{"bad log format", keeper + "log_format: xml\n", `:5: log_format: "xml" is not a log format (text or json)`}})
}
