package export

import (
	"context"
	"encoding/json"
	"errors"
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
// where /metrics and / are served). What it reads is only as good as the
// connection it came over, which is usually plain HTTP: it follows no
// redirect to another server and bounds what it reads, but it does not
// verify. Trust in an outcome comes from outcome.Verify and the
// fingerprints the reader pins (privstats verify --tally --keepers), never
// from where it was fetched.
type Client struct {
	// Base is the server's URL, e.g. http://127.0.0.1:9464.
	Base string
	// HTTP is the client to use; nil uses one with a 30 s timeout.
	HTTP *http.Client
	// MaxBytes bounds what one call reads in all (Rounds reads every
	// round); 0 is DefaultMaxBytes.
	MaxBytes int64
}

// MaxOutcomeBytes bounds what the client reads for one outcome or list, so
// a wrong URL cannot make it read without end.
const MaxOutcomeBytes = 64 << 20

// DefaultMaxBytes bounds what one call of the client reads in all, so a
// server listing endless rounds cannot make it hold them all.
const DefaultMaxBytes = 1 << 30

// Rounds lists the server's published rounds and reads each.
func (c Client) Rounds(ctx context.Context) ([]Round, error) {
	budget := c.budget()
	var list []struct {
		Name string `json:"name"`
	}
	b, err := c.get(ctx, c.url("/api/v1/rounds"), &budget)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("%s: not a privstats rounds list: %w", c.url("/api/v1/rounds"), err)
	}
	rounds := make([]Round, 0, len(list))
	for _, l := range list {
		r, err := c.round(ctx, l.Name, &budget)
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
	budget := c.budget()
	return c.round(ctx, name, &budget)
}

func (c Client) round(ctx context.Context, name string, budget *int64) (Round, error) {
	o, err := c.outcome(ctx, c.url("/api/v1/rounds/"+url.PathEscape(name)), budget)
	if err != nil {
		return Round{}, err
	}
	return Round{Name: Name(o.Series, o.Round), Outcome: o}, nil
}

// Outcome reads the outcome file at u, strictly (outcome.Parse).
func (c Client) Outcome(ctx context.Context, u string) (*outcome.Outcome, error) {
	budget := c.budget()
	return c.outcome(ctx, u, &budget)
}

func (c Client) outcome(ctx context.Context, u string, budget *int64) (*outcome.Outcome, error) {
	b, err := c.get(ctx, u, budget)
	if err != nil {
		return nil, err
	}
	o, err := outcome.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	return o, nil
}

// url is path on the server: Base's query, if any (the page's
// ?round=NAME), is not part of it.
func (c Client) url(path string) string {
	base := c.Base
	if u, err := url.Parse(base); err == nil {
		u.RawQuery, u.Fragment = "", ""
		base = u.String()
	}
	return strings.TrimRight(base, "/") + path
}

func (c Client) budget() int64 {
	if c.MaxBytes > 0 {
		return c.MaxBytes
	}
	return DefaultMaxBytes
}

// errOtherServer is a redirect the client does not follow.
var errOtherServer = errors.New("redirected to another server")

// sameServer follows a redirect only on the server first asked (or from
// http to https on its host name): an answer from elsewhere would be
// another server's word under this one's name, and https must not turn
// into http on the way.
func sameServer(req *http.Request, via []*http.Request) error {
	from, to := via[0].URL, req.URL
	switch {
	case len(via) >= 10:
		return errors.New("stopped after 10 redirects")
	case to.Scheme == from.Scheme && to.Host == from.Host,
		from.Scheme == "http" && to.Scheme == "https" && to.Hostname() == from.Hostname():
		return nil
	}
	return fmt.Errorf("%w %s://%s: give that server's URL if it is the one meant", errOtherServer, to.Scheme, to.Host)
}

func (c Client) get(ctx context.Context, u string, budget *int64) ([]byte, error) {
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	if hc.CheckRedirect == nil {
		with := *hc
		with.CheckRedirect = sameServer
		hc = &with
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if errors.Is(err, errOtherServer) {
		return nil, fmt.Errorf("GET %s: %w", u, errors.Unwrap(err))
	}
	if err != nil {
		return nil, fmt.Errorf("cannot reach the tally server: %w", err)
	}
	defer resp.Body.Close()
	limit := min(MaxOutcomeBytes, *budget)
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	switch {
	case int64(len(b)) > *budget:
		return nil, fmt.Errorf("GET %s: more than %d bytes read from the server in all", u, c.budget())
	case len(b) > MaxOutcomeBytes:
		return nil, fmt.Errorf("GET %s: answer larger than %d bytes", u, MaxOutcomeBytes)
	}
	*budget -= int64(len(b))
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", u, resp.Status, strings.TrimSpace(string(b)))
	}
	return b, nil
}
