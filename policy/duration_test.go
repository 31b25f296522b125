package policy_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/privstats/privstats/policy"
)

func TestDurationFromYAML(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"90s":   90 * time.Second,
		"1h30m": 90 * time.Minute,
		"24h":   24 * time.Hour,
		"0s":    0,
		"0":     0,
		`"2m"`:  2 * time.Minute,
	} {
		var v struct {
			D policy.Duration `yaml:"d"`
		}
		if err := yaml.Unmarshal([]byte("d: "+in), &v); err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if time.Duration(v.D) != want {
			t.Errorf("%s = %v, want %v", in, v.D, want)
		}
	}
}

func TestBadDurationErrorNamesTheLine(t *testing.T) {
	for in, want := range map[string]string{
		"1 hour": `line 3: invalid duration "1 hour" (write a number with a unit: 90s, 1h30m, 24h)`,
		"3600":   `line 3: invalid duration "3600"`,
		"-5m":    `line 3: duration "-5m" is negative`,
		"[1h]":   `line 3: want a duration such as 90s, 1h30m or 24h, not a list or mapping`,
	} {
		var v struct {
			A int             `yaml:"a"`
			B string          `yaml:"b"`
			D policy.Duration `yaml:"d"`
		}
		err := yaml.Unmarshal([]byte("a: 1\nb: x\nd: "+in+"\n"), &v)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", in, err, want)
		}
	}
}

func TestDurationRoundTrips(t *testing.T) {
	p := policy.Defaults()
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"DelayPeriod":"24h0m0s"`) {
		t.Errorf("JSON %s", b)
	}
	var back policy.Policy
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, p) {
		t.Errorf("JSON round trip: %+v, %v", back, err)
	}
	y, err := yaml.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	back = policy.Policy{}
	if err := yaml.Unmarshal(y, &back); err != nil || !reflect.DeepEqual(back, p) {
		t.Errorf("YAML round trip of\n%s: %+v, %v", y, back, err)
	}
}
