package outcome

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/privstats/privstats/aggregator/wire"
)

// leaf is one value in an outcome's JSON tree, with the path that reaches it.
type leaf struct {
	path []any // string keys and int indices
	val  any
}

func leaves(v any, path []any, out *[]leaf) {
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			leaves(c, append(append([]any{}, path...), k), out)
		}
	case []any:
		for i, c := range x {
			leaves(c, append(append([]any{}, path...), i), out)
		}
	default:
		*out = append(*out, leaf{path: path, val: v})
	}
}

// set replaces the value at path in a fresh copy of the tree.
func set(root any, path []any, val any) any {
	if len(path) == 0 {
		return val
	}
	switch x := root.(type) {
	case map[string]any:
		c := make(map[string]any, len(x))
		for k, v := range x {
			c[k] = v
		}
		k := path[0].(string)
		c[k] = set(x[k], path[1:], val)
		return c
	case []any:
		c := append([]any{}, x...)
		i := path[0].(int)
		c[i] = set(x[i], path[1:], val)
		return c
	}
	panic("bad path")
}

// mutate changes a value into another of the same form (a time stays a
// time, hex stays hex, base64 stays base64), so that what catches the
// change is a check of meaning, not of syntax.
func mutate(v any) (any, bool) {
	switch x := v.(type) {
	case json.Number:
		if f, err := x.Float64(); err == nil && strings.ContainsAny(string(x), ".eE") {
			return json.Number(fmt.Sprint(f*1.001 + 1e-3)), true
		}
		return json.Number(string(x) + "1"), true
	case bool:
		return !x, true
	case string:
		if t, err := time.Parse(time.RFC3339Nano, x); err == nil {
			return t.Add(time.Second).Format(time.RFC3339Nano), true
		}
		if x == "" {
			return "x", true
		}
		b := []byte(x)
		i := len(b) / 2
		switch c := b[i]; {
		case c >= '0' && c <= '8', c >= 'a' && c <= 'e', c >= 'A' && c <= 'Y':
			b[i] = c + 1
		case c == '9':
			b[i] = '0'
		default:
			b[i] = 'a'
		}
		return string(b), true
	}
	return nil, false
}

func decodeTree(t *testing.T, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		t.Fatal(err)
	}
	return tree
}

// Every single-field change of a real outcome, anywhere in the file, is
// caught by Parse or Verify: no field is left unsigned and unchecked.
func TestVerifyRejectsEverySingleFieldChange(t *testing.T) {
	// Keeper 2's share is off by one, so rejected_shares is covered too.
	_, o, _ := withBadShare(t)
	if len(o.RejectedShares) != 1 {
		t.Fatalf("%d rejected shares, want 1", len(o.RejectedShares))
	}
	orig, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	if back, err := Parse(orig); err != nil || Verify(back) != nil {
		t.Fatalf("the unchanged outcome does not verify: %v / %v", err, Verify(back))
	}
	tree := decodeTree(t, orig)
	var all []leaf
	leaves(tree, nil, &all)
	if len(all) < 50 {
		t.Fatalf("only %d leaves: the walk is broken", len(all))
	}
	for _, l := range all {
		m, ok := mutate(l.val)
		if !ok {
			continue
		}
		b, _ := json.Marshal(set(tree, l.path, m))
		back, err := Parse(b)
		if err == nil {
			err = Verify(back)
		}
		if err == nil {
			t.Errorf("changing %v from %v to %v still verifies", l.path, l.val, m)
		}
	}
}

func TestParseRefusesAmbiguousFiles(t *testing.T) {
	in, _ := testRound(t, 3, 2)
	o, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	good, _ := json.Marshal(o)
	total := fmt.Sprintf(`"noisy_total":%d`, o.Statistics[0].Bins[0].NoisyTotal)
	for name, b := range map[string]string{
		"unknown field":      strings.Replace(string(good), `"version":`, `"comment":"x","version":`, 1),
		"duplicate key":      strings.Replace(string(good), total, `"noisy_total":999999999,`+total, 1),
		"case-variant key":   strings.Replace(string(good), total, `"noisy_total":999999999,"NOISY_TOTAL"`+total[len(`"noisy_total"`):], 1),
		"case-variant alone": strings.Replace(string(good), total, `"Noisy_Total"`+total[len(`"noisy_total"`):], 1),
		"trailing data":      string(good) + `{"version":1}`,
	} {
		if b == string(good) {
			t.Fatalf("%s: the edit did not apply", name)
		}
		if _, err := Parse([]byte(b)); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}

// An outcome cannot accuse an honest keeper: a rejected share must be
// shown off the polynomial by the accepted ones.
func TestVerifyRefusesAFalseAccusation(t *testing.T) {
	in, _ := testRound(t, 5, 3)
	o, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	honest := o.Shares[4]
	o.Shares = o.Shares[:4]
	o.RejectedShares = []RejectedShare{{Keeper: signerOf(honest), Share: honest, Reason: offPolynomial}}
	if err := Verify(o); err == nil || !strings.Contains(err.Error(), "not shown to be off the polynomial") {
		t.Fatalf("Verify with an honest keeper accused: %v", err)
	}
}

// The tally server cannot publish a total other than what S reported: an
// agreement whose ΣV is shifted (true total 30, published 1,000,030) does
// not open the collectors' commitments, so Build and Verify refuse it even
// when every keeper went along and signed shares for it.
func TestForgedSumIsRefused(t *testing.T) {
	in, _ := testRound(t, 3, 2)
	var ag wire.AgreementMsg
	if _, err := wire.OpenBody(in.Agreement, wire.KindAgreement, in.Tally.Fingerprint, &ag); err != nil {
		t.Fatal(err)
	}
	ag.SumV[0].Lo += 1000000
	forged, err := wire.SignBody(in.Tally, wire.KindAgreement, ag)
	if err != nil {
		t.Fatal(err)
	}
	o, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	o.Agreement = forged
	if err := Verify(o); err == nil || !strings.Contains(err.Error(), "not the sum S's collectors committed to") {
		t.Fatalf("Verify of a forged ΣV: %v", err)
	}
	in.Agreement = forged
	if _, err := Build(in); err == nil || !strings.Contains(err.Error(), "not the sum") {
		t.Fatalf("Build of a forged ΣV: %v", err)
	}
}
