package noise_test

import (
	"fmt"

	"github.com/privstats/privstats/noise"
)

// A round counting exit streams and onion descriptor stores, with
// PrivCount's budget. The planner gives most of ε to the small count, so
// both come out with the same relative error.
func ExampleAllocate() {
	stats := []noise.StatisticBudget{
		{Name: "exit_streams", L0: 1, LInf: 20, Estimate: 2e9},
		{Name: "onion_descriptor_stores", L0: 10, LInf: 3, Estimate: 5e4},
	}
	plan, err := noise.Allocate(0.3, 1e-11, stats)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, a := range plan {
		fmt.Printf("%s: ε=%.3g σ=%.4g relative error %.3g%%\n", a.Name, a.Epsilon, a.Sigma, 100*a.ExpectedRelativeError)
	}
	// Output:
	// exit_streams: ε=1.11e-05 σ=7.706e+06 relative error 0.385%
	// onion_descriptor_stores: ε=0.3 σ=192.7 relative error 0.385%
}

// With an assumed honest fraction β = 0.5, any half of the collectors add
// the full noise between them, so fewer than half must never be summed.
func ExampleCheckCoverage() {
	fps := []string{"A1", "B2", "C3", "D4", "E5", "F6"}
	weights := noise.Weights{HonestFraction: 0.5}.Resolve(fps)
	fmt.Println(noise.CheckCoverage(weights, 3))
	fmt.Println(noise.CheckCoverage(weights, 2))
	// Output:
	// <nil>
	// noise: coverage: with min_collectors = 2 of 6 permitted collectors, a result may sum just A1 w=0.5774, B2 w=0.5774, whose noise variance is only 0.6667·σ², 0.3333·σ² short of σ²; raise min_collectors to at least 3 or raise their weights
}
