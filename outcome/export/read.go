package export

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/privstats/privstats/outcome"
)

// Name is what a round's outcome is published under: the file name
// (without ".json") in DATA_DIR/outcomes and the name in the results API.
func Name(series string, round uint64) string {
	return fmt.Sprintf("%s-%06d", series, round)
}

// OutcomesDir is where the outcome files of a tally server's data
// directory are: DIR/outcomes if it exists, else DIR itself (so either
// may be given). A missing DIR is an error wrapping fs.ErrNotExist.
func OutcomesDir(dir string) (string, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return "", fmt.Errorf("%s: no such data directory: %w", dir, fs.ErrNotExist)
	}
	if !st.IsDir() {
		return "", fmt.Errorf("%s is not a directory (give a tally server's data_dir or its outcomes directory)", dir)
	}
	if st, err := os.Stat(filepath.Join(dir, "outcomes")); err == nil && st.IsDir() {
		return filepath.Join(dir, "outcomes"), nil
	}
	return dir, nil
}

// ReadDir reads every outcome file in dir (an outcomes directory), oldest
// round first. A file that does not read as an outcome is an error naming
// it, unless skip is given: then skip is told of it and the rest are read,
// so a server listing its rounds can pass over a damaged file while an
// export refuses to leave one out silently.
func ReadDir(dir string, skip func(error)) ([]Round, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var rounds []Round
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		o, err := outcome.Read(filepath.Join(dir, e.Name()))
		if err != nil {
			if skip == nil {
				return nil, err
			}
			skip(err)
			continue
		}
		rounds = append(rounds, Round{Name: strings.TrimSuffix(e.Name(), ".json"), Outcome: o})
	}
	sortRounds(rounds)
	return rounds, nil
}

// IsURL reports whether src names a tally server (http:// or https://)
// rather than a directory.
func IsURL(src string) bool {
	return strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://")
}

// Client reads a tally server's results API (its plain-HTTP http_listen,
// where /metrics and / are served).
type Client struct {
	// Base is the server's URL, e.g. http://127.0.0.1:9464.
	Base string
	// HTTP is the client to use; nil uses one with a 30 s timeout.
	HTTP *http.Client
}

// MaxOutcomeBytes bounds what the client reads for one outcome or list, so
// a wrong URL cannot make it read without end.
const MaxOutcomeBytes = 64 << 20

// Rounds lists the server's published rounds and reads each.
func (c Client) Rounds(ctx context.Context) ([]Round, error) {
	var list []struct {
		Name string `json:"name"`
	}
	b, err := c.get(ctx, c.url("/api/v1/rounds"))
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("%s: not a privstats rounds list: %w", c.url("/api/v1/rounds"), err)
	}
	rounds := make([]Round, 0, len(list))
	for _, l := range list {
		r, err := c.Round(ctx, l.Name)
		if err != nil {
			return nil, err
		}
		rounds = append(rounds, r)
	}
	sortRounds(rounds)
	return rounds, nil
}

// Round reads one published round by name, or "latest".
func (c Client) Round(ctx context.Context, name string) (Round, error) {
	o, err := c.Outcome(ctx, c.url("/api/v1/rounds/"+url.PathEscape(name)))
	if err != nil {
		return Round{}, err
	}
	return Round{Name: Name(o.Series, o.Round), Outcome: o}, nil
}

// Outcome reads the outcome file at u, strictly (outcome.Parse).
func (c Client) Outcome(ctx context.Context, u string) (*outcome.Outcome, error) {
	b, err := c.get(ctx, u)
	if err != nil {
		return nil, err
	}
	o, err := outcome.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	return o, nil
}

func (c Client) url(path string) string { return strings.TrimRight(c.Base, "/") + path }

func (c Client) get(ctx context.Context, u string) ([]byte, error) {
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the tally server: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxOutcomeBytes+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if len(b) > MaxOutcomeBytes {
		return nil, fmt.Errorf("GET %s: answer larger than %d bytes", u, MaxOutcomeBytes)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", u, resp.Status, strings.TrimSpace(string(b)))
	}
	return b, nil
}
