package tally

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/privstats/privstats/aggregator"
	"github.com/privstats/privstats/identity"
	"github.com/privstats/privstats/internal/atomicfile"
)

// state is everything the tally server must not forget across a restart.
// It holds only public or blinded data (signed messages, sealed bundles,
// blinded reports), so keeping it on disk reveals nothing about any relay.
type state struct {
	Series    string `json:"series"`
	NextRound uint64 `json:"next_round"`
	Completed int    `json:"completed"`
	Failed    int    `json:"failed"`
	// LastStart is when the previous round's window began; the next starts
	// a period later.
	LastStart  time.Time `json:"last_start"`
	Version    uint64    `json:"version"`
	Current    *round    `json:"current,omitempty"`
	LastRefuse string    `json:"last_refusal,omitempty"`
}

// round is one round's progress.
type round struct {
	Announce  identity.Signed              `json:"announce"`
	Hash      string                       `json:"config_hash"`
	Phase     string                       `json:"phase"`
	RoundKeys map[string]identity.Signed   `json:"round_keys"`
	Refusals  map[string]string            `json:"refusals"`
	Bundles   map[string][]identity.Signed `json:"bundles"` // by keeper
	Joined    map[string]bool              `json:"joined"`
	Acks      map[string][]string          `json:"acks"`
	Reports   map[string]identity.Signed   `json:"reports"`
	Agreement *identity.Signed             `json:"agreement,omitempty"`
	Digest    string                       `json:"agreement_digest,omitempty"`
	Commits   map[string]identity.Signed   `json:"commits"`
	Shares    map[string]identity.Signed   `json:"shares"`
	Deadline  time.Time                    `json:"deadline"`
	Failure   string                       `json:"failure,omitempty"`
	Outcome   string                       `json:"outcome,omitempty"`

	cfg *aggregator.RoundConfig
}

func newRound(announce identity.Signed, cfg *aggregator.RoundConfig, hash string) *round {
	return &round{
		Announce: announce, Hash: hash, Phase: aggregator.PhaseAnnounced, cfg: cfg,
		RoundKeys: map[string]identity.Signed{}, Refusals: map[string]string{},
		Bundles: map[string][]identity.Signed{}, Joined: map[string]bool{}, Acks: map[string][]string{},
		Reports: map[string]identity.Signed{}, Commits: map[string]identity.Signed{}, Shares: map[string]identity.Signed{},
	}
}

const stateFile = "state.json"

func loadState(dir string) (*state, error) {
	path := filepath.Join(dir, stateFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s is damaged (%v); move it aside to start afresh, nothing in it is secret", path, err)
	}
	if r := st.Current; r != nil {
		cfg, err := aggregator.DecodeRoundConfig(r.Announce.Body)
		if err != nil {
			return nil, fmt.Errorf("%s: current round: %w", path, err)
		}
		r.cfg = cfg
	}
	return &st, nil
}

func saveState(dir string, st *state) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, stateFile), b, 0o600)
}
