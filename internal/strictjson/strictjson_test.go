package strictjson

import (
	"strings"
	"testing"
)

type inner struct {
	Label string `json:"label"`
	Total int64  `json:"noisy_total"`
}

type doc struct {
	Name  string            `json:"name"`
	Bins  []inner           `json:"bins"`
	Notes map[string]string `json:"notes,omitempty"`
	Plain int
}

func TestAcceptsWellFormedDocuments(t *testing.T) {
	var d doc
	err := Unmarshal([]byte(`{"name":"a","bins":[{"label":"x","noisy_total":5},{"label":"y","noisy_total":-2}],"notes":{"k":"v","K2":"w"},"Plain":3}`+"\n"), &d)
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "a" || len(d.Bins) != 2 || d.Bins[1].Total != -2 || d.Notes["K2"] != "w" || d.Plain != 3 {
		t.Fatalf("decoded %+v", d)
	}
}

func TestRefusesAmbiguousDocuments(t *testing.T) {
	for name, tc := range map[string]struct{ in, want string }{
		"duplicate key":            {`{"name":"a","name":"b"}`, "appears twice"},
		"case-variant duplicate":   {`{"bins":[{"noisy_total":999999999,"NOISY_TOTAL":5}]}`, "differ only in case"},
		"kelvin-sign duplicate":    {`{"notes":{"k":"1","\u212a":"2"}}`, "differ only in case"},
		"long-s matches a field":   {`{"name":"a","bins":[{"label":"x","noiſy_total":1}]}`, "spelled"},
		"case-variant field alone": {`{"NAME":"a"}`, "spelled"},
		"unknown field":            {`{"name":"a","extra":1}`, "unknown field"},
		"trailing object":          {`{"name":"a"}{"name":"b"}`, "trailing"},
		"trailing garbage":         {`{"name":"a"} x`, ""},
		"nested duplicate":         {`{"bins":[{"label":"x","label":"y"}]}`, "appears twice"},
		"invalid UTF-8":            {"{\"name\":\"\xff\"}", "UTF-8"},
	} {
		var d doc
		err := Unmarshal([]byte(tc.in), &d)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Unmarshal(%s) = %v, want an error containing %q", name, tc.in, err, tc.want)
		}
	}
}

func FuzzUnmarshal(f *testing.F) {
	f.Add([]byte(`{"name":"a","bins":[{"label":"x","noisy_total":5}]}`))
	f.Add([]byte(`{"name":"a","NAME":"b"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var d doc
		_ = Unmarshal(data, &d)
	})
}
