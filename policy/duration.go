package policy

import (
	"fmt"
	"time"

	"gopkg.in/yaml.v3"
)

// Duration is a time.Duration written in YAML the way Go prints one: "90s",
// "1h30m", "24h". A bare number is refused rather than guessed at (seconds?
// nanoseconds?), and so is a negative duration: no privstats setting means
// anything by one.
type Duration time.Duration

// String prints the duration as time.Duration does ("24h0m0s").
func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalYAML parses a duration scalar. Its errors are yaml.TypeErrors
// that name the line, so a config loader reports them with the rest.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return durationError(n.Line, "want a duration such as 90s, 1h30m or 24h, not a list or mapping")
	}
	v, err := parseDuration(n.Value)
	if err != nil {
		return durationError(n.Line, err.Error())
	}
	*d = v
	return nil
}

// MarshalText prints the duration as time.Duration does, so JSON and YAML
// encodings read back through UnmarshalText and UnmarshalYAML.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses the form MarshalText writes.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := parseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

func parseDuration(s string) (Duration, error) {
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q (write a number with a unit: 90s, 1h30m, 24h)", s)
	}
	if v < 0 {
		return 0, fmt.Errorf("duration %q is negative", s)
	}
	return Duration(v), nil
}

func durationError(line int, problem string) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %s", line, problem)}}
}
