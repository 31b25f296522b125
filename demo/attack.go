package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/aggregator/wire"
	"github.com/privstats/privstats/identity"
	"github.com/privstats/privstats/internal/deploytest"
	"github.com/privstats/privstats/tally"
)

// Attack is one way the demo's tally server can misbehave, to show the
// trust model working (docs/threat-model.md): the other nodes must refuse,
// and no outcome may be published for the attacked round.
type Attack struct {
	Name string
	// What the tally server does, and who should stop it.
	What, Stoppers string
	// Rounds is how many rounds the demo runs; the attack is on the last.
	Rounds int
	// Reason is part of the reason every stopping keeper gives.
	Reason string
	// adversary makes the tally server's hooks for the attack.
	adversary func() (*tally.Adversary, error)
}

// Attacks lists every attack privstats demo --attack knows.
var Attacks = []Attack{
	{Name: "forge-sum", Reason: "ΣV is not the sum S's collectors committed to", Rounds: 1,
		What:     "the tally server adds 1,000,000 to ΣV of the first counter before signing the agreement, to publish a total of its choosing",
		Stoppers: "every keeper: ΣV does not open the sum of the collectors' signed commitments",
		adversary: func() (*tally.Adversary, error) {
			return &tally.Adversary{Agreement: func(ag *wire.AgreementMsg) {
				ag.SumV[0].Lo += 1000000
				if ag.SumV[0].Lo < 1000000 {
					ag.SumV[0].Hi++
				}
			}}, nil
		}},
	{Name: "sybil", Reason: "not on this keeper's roster", Rounds: 1,
		What:     "the tally server adds three collectors whose keys it holds to the round (they would report without noise, thinning the noise of every total)",
		Stoppers: "every keeper: the collectors are not on its roster",
		adversary: func() (*tally.Adversary, error) {
			var fakes []*identity.Identity
			for range 3 {
				id, err := identity.New()
				if err != nil {
					return nil, err
				}
				fakes = append(fakes, id)
			}
			return &tally.Adversary{Announce: func(cfg *round.Config) {
				for _, id := range fakes {
					cfg.Collectors = append(cfg.Collectors, round.CollectorSpec{Fingerprint: id.Fingerprint, NoiseWeight: 1})
				}
				cfg.MinCollectors += len(fakes)
			}}, nil
		}},
	{Name: "thin-noise", Reason: "claims more privacy than its noise gives", Rounds: 1,
		What:     "the tally server halves every statistic's σ while still claiming the same ε and δ",
		Stoppers: "every keeper, before any collector joins (collectors make the same check): the statistics' noise, composed, does not reach the round's ε and δ for the declared sensitivities",
		adversary: func() (*tally.Adversary, error) {
			return &tally.Adversary{Announce: func(cfg *round.Config) {
				stats := slices.Clone(cfg.Statistics)
				for i := range stats {
					stats[i].Sigma /= 2
				}
				cfg.Statistics = stats
			}}, nil
		}},
	{Name: "two-sets", Reason: "asked for a second agreement", Rounds: 1,
		What:     "once K keepers committed to S, the tally server asks them to commit to S without its first collector, to difference the two totals",
		Stoppers: "every keeper that committed: it commits once per round, refuses the second set and leaves the round",
		adversary: func() (*tally.Adversary, error) {
			return &tally.Adversary{SecondAgreement: func(first wire.AgreementMsg, build func(S []string) (wire.AgreementMsg, error)) *wire.AgreementMsg {
				second, err := build(first.Collectors[1:])
				if err != nil {
					return nil
				}
				second.Refusals = first.Refusals
				return &second
			}}, nil
		}},
	{Name: "replay", Reason: "was made for another round or collector", Rounds: 2,
		What:     "in the second round the tally server puts a collector's signed commitment from the first round into the agreement in place of this round's",
		Stoppers: "every keeper: the commitment was signed for another round",
		adversary: func() (*tally.Adversary, error) {
			var mu sync.Mutex
			var earlier *wire.AgreementMsg
			return &tally.Adversary{Agreement: func(ag *wire.AgreementMsg) {
				mu.Lock()
				defer mu.Unlock()
				if earlier == nil {
					saved := *ag
					saved.Commitments = slices.Clone(ag.Commitments)
					earlier = &saved
					return
				}
				for i, fp := range earlier.Collectors {
					if j := slices.Index(ag.Collectors, fp); j >= 0 {
						ag.Commitments[j] = earlier.Commitments[i]
						return
					}
				}
			}}, nil
		}},
}

// LookupAttack finds an attack by name.
func LookupAttack(name string) (Attack, error) {
	var names []string
	for _, a := range Attacks {
		if a.Name == name {
			return a, nil
		}
		names = append(names, a.Name)
	}
	return Attack{}, fmt.Errorf("unknown attack %q (known: %s)", name, strings.Join(names, ", "))
}

// AttackReport is what an attacked round ended with.
type AttackReport struct {
	Attack   string `json:"attack"`
	What     string `json:"what"`
	Stoppers string `json:"expected_stoppers"`
	// Refusals are the nodes that refused the attacked round, and why.
	Refusals []NodeRefusal `json:"refusals"`
	// Failure is why the tally server gave the round up.
	Failure string `json:"failure,omitempty"`
	// Published is true if the attacked round published an outcome: the
	// attack got through.
	Published bool `json:"published"`
	// Counted is privstats_round_refusals_total by role, from /metrics.
	Counted map[string]float64 `json:"refusals_counted"`
}

// NodeRefusal is one node's refusal of the attacked round.
type NodeRefusal struct {
	Node   string `json:"node"` // "keeper 2", "collector 5"
	Reason string `json:"reason"`
}

// observeAttack waits for the attacked round (the last) to end, then reads
// what happened from the tally server's public API, as an operator would:
// /api/v1/status for who refused and why, /metrics for the refusals
// counted. It stops the deployment.
func observeAttack(ctx context.Context, d *deploytest.Deployment, a Attack, rounds int) (*AttackReport, error) {
	defer d.Stop()
	if _, err := d.WaitStatus(ctx, "the attacked round to end", func(st tally.Status) bool { return st.Completed+st.Failed >= rounds }); err != nil {
		return nil, err
	}
	base := "http://" + d.Tally.HTTPAddr()
	var st tally.Status
	if err := getJSON(ctx, base+"/api/v1/status", &st); err != nil {
		return nil, err
	}
	counted, err := refusalsCounted(ctx, base+"/metrics")
	if err != nil {
		return nil, err
	}
	rep := attackReport(a, st, st.Completed >= rounds, d.KeeperFingerprints(), d.CollectorFingerprints())
	rep.Counted = counted
	return rep, nil
}

func get(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 16<<20))
}

func getJSON(ctx context.Context, url string, into any) error {
	b, err := get(ctx, url)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, into)
}

// refusalsCounted reads privstats_round_refusals_total by role.
func refusalsCounted(ctx context.Context, url string) (map[string]float64, error) {
	b, err := get(ctx, url)
	if err != nil {
		return nil, err
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	out := map[string]float64{}
	if f, ok := families["privstats_round_refusals_total"]; ok {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "role" {
					out[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	return out, nil
}

func attackReport(a Attack, st tally.Status, published bool, keepers, collectors []string) *AttackReport {
	rep := &AttackReport{Attack: a.Name, What: a.What, Stoppers: a.Stoppers, Failure: st.Failure, Published: published}
	name := func(fp string) (string, int) {
		if i := slices.Index(keepers, fp); i >= 0 {
			return fmt.Sprintf("keeper %d", i+1), i
		}
		if i := slices.Index(collectors, fp); i >= 0 {
			return fmt.Sprintf("collector %d", i+1), len(keepers) + i
		}
		return "node " + fp[:min(12, len(fp))], 1 << 30
	}
	type entry struct {
		NodeRefusal
		order int
	}
	var all []entry
	for fp, reason := range st.Refusals {
		n, order := name(fp)
		all = append(all, entry{NodeRefusal{Node: n, Reason: reason}, order})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].order < all[j].order })
	for _, e := range all {
		rep.Refusals = append(rep.Refusals, e.NodeRefusal)
	}
	return rep
}
