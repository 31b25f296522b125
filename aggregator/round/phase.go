package round

// Round phases, in order. A round ends in PhaseDone or PhaseFailed.
const (
	PhaseAnnounced  = "announced"  // config published; keepers post round keys
	PhaseSetup      = "setup"      // keys published; collectors post sealed bundles
	PhaseCollecting = "collecting" // inside [start, end)
	PhaseReporting  = "reporting"  // after end; collectors report
	PhaseAgreeing   = "agreeing"   // (S, ΣV) posted; keepers commit
	PhaseReleasing  = "releasing"  // K matching commits; keepers release shares
	PhaseDone       = "done"
	PhaseFailed     = "failed"
)

// Phases lists every phase in order (for metrics).
var Phases = []string{PhaseAnnounced, PhaseSetup, PhaseCollecting, PhaseReporting, PhaseAgreeing, PhaseReleasing, PhaseDone, PhaseFailed}
