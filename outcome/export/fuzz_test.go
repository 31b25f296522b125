package export

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/privstats/privstats/internal/vectortest"
	"github.com/privstats/privstats/outcome"
)

// served answers every request from memory: the rounds list at
// /api/v1/rounds, one outcome for any round.
type served struct{ list, outcome []byte }

func (s served) RoundTrip(req *http.Request) (*http.Response, error) {
	body := s.outcome
	if req.URL.Path == "/api/v1/rounds" {
		body = s.list
	}
	return &http.Response{StatusCode: http.StatusOK, Status: "200 OK", Header: http.Header{},
		Body: io.NopCloser(bytes.NewReader(body)), Request: req}, nil
}

// FuzzClientRounds reads arbitrary answers of a tally server's results API
// (a rounds list, an outcome) as Client.Rounds does. What it returns is
// one round per listed name, each an outcome that outcome.Parse accepts
// from the bytes served, named as the server publishes it.
//
//	go test ./outcome/export -run '^$' -fuzz '^FuzzClientRounds$'
func FuzzClientRounds(f *testing.F) {
	for _, b := range vectortest.Sections(f, "outcome", "outcome.json") {
		f.Add([]byte(`[{"name":"a"},{"name":"b"}]`), b)
	}
	f.Add([]byte(`[]`), []byte(`{}`))
	f.Add([]byte(`[{"name":"../x"}]`), []byte(`null`))
	f.Add([]byte(`{"name":"a"}`), []byte(``))
	f.Fuzz(func(t *testing.T, list, body []byte) {
		c := Client{Base: "http://tally.invalid", HTTP: &http.Client{Transport: served{list, body}}, MaxBytes: 1 << 20}
		rounds, err := c.Rounds(context.Background())
		if err != nil {
			return
		}
		want, err := outcome.Parse(body)
		if len(rounds) > 0 && err != nil {
			t.Fatalf("Rounds returned %d rounds of an outcome outcome.Parse refuses: %v", len(rounds), err)
		}
		if n := strings.Count(string(list), "{"); len(rounds) > n {
			t.Fatalf("%d rounds from a list of at most %d", len(rounds), n)
		}
		for _, r := range rounds {
			if r.Name != Name(want.Series, want.Round) || r.Outcome.ConfigHash != want.ConfigHash {
				t.Fatalf("round %q is not the outcome served (%s)", r.Name, Name(want.Series, want.Round))
			}
		}
	})
}
