// Package noise decides how much differential-privacy noise a privstats round
// adds, and draws it.
//
// A round publishes each statistic's network-wide total plus Gaussian noise of
// standard deviation σ. This package
//
//   - calibrates σ from a privacy budget (ε, δ) and a statistic's sensitivity
//     with the analytic Gaussian mechanism of Balle and Wang (2018), exactly as
//     Google's differential-privacy library computes it ([Sigma]), and
//     PrivCount's older, looser bound for comparison ([ClassicSigma]);
//   - calibrates a whole round as one composed Gaussian mechanism: μ for
//     (ε, δ) on the exact GDP curve ([GDPMu], [GDPDelta]), shared among the
//     statistics for equal expected relative error ([AllocateComposed]),
//     with a proof of how far the collectors' summed discrete Gaussian noise
//     is from it ([AccountRound], [RoundEpsilon]), which every node checks
//     ([CheckComposed]);
//   - or splits one round's budget across its statistics so that every
//     statistic gets the same expected relative error, each calibrated
//     alone ([Allocate]), or by PrivCount's classic rule
//     ([AllocateClassic]), for comparison;
//   - spreads σ over the collectors: collector i adds N(0, (w_i σ)²), and the
//     tally server checks that every set of collectors it may be allowed to sum
//     still carries a total variance of at least σ² ([Weights], [CheckCoverage]);
//   - draws each collector's noise with Google's floating-point-safe sampler,
//     which reads crypto/rand ([Sample]), and then wipes the randomness it
//     buffered ([Scrub]);
//   - or draws it from the discrete Gaussian N_Z(0, (w_i σ)²) with the exact
//     sampler of Canonne, Kamath and Steinke ([SampleDiscreteGaussian],
//     [SampleDiscrete]), gives that law's true variance
//     ([DiscreteGaussianVariance]), and proves what (ε, δ) the sum over a
//     released set of collectors gets, after Kairouz, Liu and Steinke
//     ([DistributedEpsilon], [CheckDistributed], [MinCollectorSigma]);
//   - turns a noisy total and its σ into a confidence interval ([CI95]).
//
// Google's package is also called noise; this package imports it as dpnoise.
package noise
