package tally

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/privstats/privstats/aggregator/commit"
	"github.com/privstats/privstats/aggregator/field"
	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/aggregator/wire"
	"github.com/privstats/privstats/identity"
	"github.com/privstats/privstats/internal/strictjson"
	"github.com/privstats/privstats/site"
	"github.com/privstats/privstats/transport"
)

// maxReason bounds a refusal's reason: it is stored, logged and published.
const maxReason = 1024

// maxGaps bounds the gaps one report may list.
const maxGaps = 1000

func (s *Server) apiHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+wire.PathRound, s.handleRound)
	mux.HandleFunc("GET "+wire.PathBundles, s.handleGetBundles)
	post(s, mux, wire.PathRoundKey, "keeper", s.acceptRoundKey)
	post(s, mux, wire.PathAck, "keeper", s.acceptAck)
	post(s, mux, wire.PathCommit, "keeper", s.acceptCommit)
	post(s, mux, wire.PathShare, "keeper", s.acceptShare)
	post(s, mux, wire.PathReport, "collector", s.acceptReport)
	post(s, mux, wire.PathBundles, "collector", s.acceptBundles)
	post(s, mux, wire.PathRefusal, "", s.acceptRefusal)
	return s.checkVersion(s.limit(mux))
}

// readBody reads a size-limited JSON body. A body that declares itself too
// large is refused unread. Otherwise it is read once into a buffer of its
// declared size (no doubling growth) and dropped as soon as it is decoded,
// so a body costs the server its size plus its decoded form, once.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, into any) *rejection {
	limit := s.opts.MaxBodyBytes
	if r.ContentLength > limit {
		return refuse(reasonTooLarge, "body of %d bytes exceeds %d bytes", r.ContentLength, limit)
	}
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength) + bytes.MinRead)
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit))
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return refuse(reasonTooLarge, "body exceeds %d bytes", limit)
	}
	if err != nil {
		return refuse(reasonMalformed, "reading body: %v", err)
	}
	// Strictly: trailing data, unknown fields or keys that differ only in
	// case could make this server and a later reader see different messages.
	if err := strictjson.Unmarshal(buf.Bytes(), into); err != nil {
		return refuse(reasonMalformed, "body is not a signed message: %v", err)
	}
	return nil
}

// post registers the handler of one kind of posted message, m (a signed
// message, or a list of them), from a node of the given role ("" for any).
// accept runs with the lock held on the current round and returns a result,
// a *rejection or an *internalError (see respond).
func post[T any](s *Server, mux *http.ServeMux, path, role string, accept func(r *roundState, peer string, m T) (result, error)) {
	mux.HandleFunc("POST "+path, func(w http.ResponseWriter, req *http.Request) {
		res, err := func() (result, error) {
			peer := transport.PeerFingerprint(req)
			if role != "" && s.allowed[peer] != role {
				return 0, refuse(reasonWrongRole, "%s is a %s; only a %s may post %s", peer, s.allowed[peer], role, path)
			}
			var m T
			if rej := s.readBody(w, req, &m); rej != nil {
				return 0, rej
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			r := s.st.Current
			if r == nil {
				return 0, refuse(reasonWrongRound, "no round is running")
			}
			return accept(r, peer, m)
		}()
		s.respond(w, req, res, err)
	})
}

// saved persists the small state an accepted message changed, so the
// sender hears "stored" only once the message is durable.
func (s *Server) saved() (result, error) {
	if err := s.touch(); err != nil {
		return 0, err
	}
	return stored, nil
}

// held answers an identical copy of a message in the small state. If
// saving the first copy failed, this is the sender's retry, and it retries
// the save too.
func (s *Server) held() (result, error) {
	if !s.unsaved {
		return alreadyHeld, nil
	}
	if err := s.save(); err != nil {
		return 0, err
	}
	return stored, nil
}

// open verifies a signed message from peer and checks its round. A
// message that is not of the kind, names no key or whose body does not
// decode is malformed; one whose signature does not verify, or that
// another node signed, is a bad signature.
func open(r *roundState, peer string, m identity.Signed, kind string, body any, hash func() string) *rejection {
	fp, err := m.VerifyAny(kind)
	switch {
	case errors.Is(err, identity.ErrMalformed):
		return refuse(reasonMalformed, "%v", err)
	case err != nil:
		return refuse(reasonBadSignature, "%v", err)
	case fp != peer:
		return refuse(reasonBadSignature, "%s signed by %s, sent by %s", kind, fp, peer)
	}
	if err := strictjson.Unmarshal(m.Body, body); err != nil {
		return refuse(reasonMalformed, "%s body: %v", kind, err)
	}
	if h := hash(); h != r.Hash {
		return refuse(reasonWrongRound, "message is for round %.16s…, the current round is %.16s…", h, r.Hash)
	}
	return nil
}

// openFromKeeper is open for the messages only the round's keepers send;
// it also returns the sending keeper's place in the round.
func openFromKeeper(r *roundState, peer string, m identity.Signed, kind string, body any, hash func() string) (round.KeeperSpec, *rejection) {
	k, ok := r.cfg.Keeper(peer)
	if !ok {
		return k, refuse(reasonNotInRound, "%s is not a keeper of this round", peer)
	}
	return k, open(r, peer, m, kind, body, hash)
}

func inPhase(r *roundState, phases ...string) *rejection {
	if slices.Contains(phases, r.Phase) {
		return nil
	}
	return refuse(reasonWrongPhase, "round is in phase %s", r.Phase)
}

func (s *Server) acceptRoundKey(r *roundState, peer string, m identity.Signed) (result, error) {
	var k wire.RoundKey
	if _, rej := openFromKeeper(r, peer, m, wire.KindRoundKey, &k, func() string { return k.ConfigHash }); rej != nil {
		return 0, rej
	}
	if prev, ok := r.RoundKeys[peer]; ok {
		if bytes.Equal(prev.Body, m.Body) {
			return s.held()
		}
		return 0, refuse(reasonDuplicate, "keeper already published a different round key")
	}
	if rej := inPhase(r, round.PhaseAnnounced); rej != nil {
		return 0, rej
	}
	if k.Keeper != peer || len(k.PublicKey) != 32 {
		return 0, refuse(reasonMalformed, "round key must name its keeper and hold a 32-byte X25519 key")
	}
	r.RoundKeys[peer] = m
	return s.saved()
}

func (s *Server) acceptRefusal(r *roundState, peer string, m identity.Signed) (result, error) {
	role := s.allowed[peer]
	var ref wire.Refusal
	if rej := open(r, peer, m, wire.KindRefusal, &ref, func() string { return ref.ConfigHash }); rej != nil {
		return 0, rej
	}
	_, isKeeper := r.cfg.Keeper(peer)
	_, isCollector := r.cfg.Collector(peer)
	switch {
	case !isKeeper && !isCollector:
		return 0, refuse(reasonNotInRound, "%s takes no part in this round", peer)
	case ref.Node != peer || ref.Reason == "":
		return 0, refuse(reasonMalformed, "refusal must name its node and a reason")
	case len(ref.Reason) > maxReason:
		return 0, refuse(reasonMalformed, "refusal reason longer than %d bytes", maxReason)
	}
	// One refusal per node per round: a node that changes its reason would
	// otherwise rewrite (and fsync) the state on every post.
	if prev, ok := r.Refusals[peer]; ok {
		if prev == ref.Reason {
			return s.held()
		}
		return 0, refuse(reasonDuplicate, "node already refused this round for another reason")
	}
	// A collector in the proposed S is summed into the agreement the
	// keepers commit to; a refusal now cannot take it out.
	if isCollector && r.Agreement != nil {
		var ag wire.AgreementMsg
		if _, err := wire.OpenBody(*r.Agreement, wire.KindAgreement, "", &ag); err != nil {
			return 0, failed(opOther, fmt.Errorf("reading the round's own agreement: %w", err))
		}
		if slices.Contains(ag.Collectors, peer) {
			return 0, refuse(reasonWrongPhase, "collector is in the proposed agreement's set; it can no longer refuse the round")
		}
	}
	s.metrics.refusals.WithLabelValues(role).Inc()
	s.log.Warn("node refused the round", "role", role, "node", peer, "reason", ref.Reason)
	r.Refusals[peer] = ref.Reason
	return s.saved()
}

func (s *Server) acceptAck(r *roundState, peer string, m identity.Signed) (result, error) {
	var a wire.Ack
	if _, rej := openFromKeeper(r, peer, m, wire.KindAck, &a, func() string { return a.ConfigHash }); rej != nil {
		return 0, rej
	}
	if rej := inPhase(r, round.PhaseSetup, round.PhaseCollecting, round.PhaseReporting); rej != nil {
		return 0, rej
	}
	if a.Keeper != peer {
		return 0, refuse(reasonMalformed, "ack names keeper %s", a.Keeper)
	}
	for _, fp := range a.Collectors {
		if !r.Joined[fp] {
			return 0, refuse(reasonNotJoined, "acknowledges collector %s, which sent no bundles", fp)
		}
	}
	acked := slices.Sorted(slices.Values(a.Collectors))
	if prev, ok := r.Acks[peer]; ok && slices.Equal(prev, acked) {
		return s.held()
	}
	r.Acks[peer] = acked
	return s.saved()
}

func (s *Server) acceptReport(r *roundState, peer string, m identity.Signed) (result, error) {
	var rep wire.Report
	if rej := open(r, peer, m, wire.KindReport, &rep, func() string { return rep.ConfigHash }); rej != nil {
		return 0, rej
	}
	if prev, ok := r.Reports[peer]; ok {
		if bytes.Equal(prev.Body, m.Body) {
			// Reports live in the journal, which held no unsaved change.
			return alreadyHeld, nil
		}
		return 0, refuse(reasonDuplicate, "collector already sent a different report")
	}
	// The clock tick that ends the window may lag a prompt report.
	windowOver := r.Phase == round.PhaseCollecting && !time.Now().Before(r.cfg.End)
	if rej := inPhase(r, round.PhaseReporting); rej != nil && !windowOver {
		return 0, rej
	}
	if !r.Joined[peer] {
		return 0, refuse(reasonNotJoined, "collector sent no share bundles this round")
	}
	if rep.Collector != peer {
		return 0, refuse(reasonMalformed, "report names collector %s", rep.Collector)
	}
	if err := field.CheckCounters("report", rep.Values, r.cfg.NumCounters()); err != nil {
		return 0, refuse(reasonMalformed, "%v", err)
	}
	if err := commit.CheckMasks(rep.Masks, len(rep.Values)); err != nil {
		return 0, refuse(reasonMalformed, "report: %v", err)
	}
	if len(rep.Gaps) > maxGaps {
		return 0, refuse(reasonMalformed, "report lists %d gaps, at most %d", len(rep.Gaps), maxGaps)
	}
	for _, g := range rep.Gaps {
		if g.End.Before(g.Start) || g.Start.Before(r.cfg.Start) || g.End.After(r.cfg.End) {
			return 0, refuse(reasonMalformed, "report gap %s–%s is not inside the window", g.Start, g.End)
		}
	}
	// The commitment goes to the keepers and into the outcome; it must be
	// this collector's, for this round. Whether it opens to the values is
	// checked for all reports at once when S is chosen.
	var rc wire.ReportCommitment
	if _, err := wire.OpenBody(rep.Commitment, wire.KindCommitment, peer, &rc); err != nil {
		return 0, refuse(reasonBadSignature, "report commitment: %v", err)
	}
	if rc.ConfigHash != r.Hash || rc.Collector != peer {
		return 0, refuse(reasonWrongRound, "report commitment was made for another round or collector")
	}
	e := journalEntry{Collector: peer, Report: &m}
	if err := appendJournal(s.opts.DataDir, r, e); err != nil {
		return 0, failed(opJournalWrite, fmt.Errorf("storing the report of %s: %w", peer, err))
	}
	r.apply(e)
	s.metrics.progress(s.st)
	return stored, nil
}

func (s *Server) acceptCommit(r *roundState, peer string, m identity.Signed) (result, error) {
	var c wire.Commit
	if _, rej := openFromKeeper(r, peer, m, wire.KindCommit, &c, func() string { return c.ConfigHash }); rej != nil {
		return 0, rej
	}
	if rej := inPhase(r, round.PhaseAgreeing, round.PhaseReleasing); rej != nil {
		return 0, rej
	}
	if c.Keeper != peer || c.Agreement != r.Digest {
		return 0, refuse(reasonWrongRound, "commit is for another agreement")
	}
	if bytes.Equal(r.Commits[peer].Body, m.Body) {
		return s.held()
	}
	r.Commits[peer] = m
	return s.saved()
}

func (s *Server) acceptShare(r *roundState, peer string, m identity.Signed) (result, error) {
	var a wire.AggregateShareMsg
	k, rej := openFromKeeper(r, peer, m, wire.KindAggregateShare, &a, func() string { return a.ConfigHash })
	if rej != nil {
		return 0, rej
	}
	if rej := inPhase(r, round.PhaseReleasing); rej != nil {
		return 0, rej
	}
	switch {
	case a.Keeper != peer || a.X != k.X:
		return 0, refuse(reasonMalformed, "share names keeper %s x=%d", a.Keeper, a.X)
	case a.Agreement != r.Digest:
		return 0, refuse(reasonWrongRound, "share is for another agreement")
	case r.Commits[peer].Body == nil:
		return 0, refuse(reasonWrongPhase, "keeper has not committed")
	}
	if err := field.CheckCounters("aggregate share", a.Values, r.cfg.NumCounters()); err != nil {
		return 0, refuse(reasonMalformed, "%v", err)
	}
	if bytes.Equal(r.Shares[peer].Body, m.Body) {
		return s.held()
	}
	r.Shares[peer] = m
	return s.saved()
}

// acceptBundles takes a collector's sealed bundles, one per keeper that
// published a round key, all or nothing.
func (s *Server) acceptBundles(r *roundState, peer string, list []identity.Signed) (result, error) {
	if rej := inPhase(r, round.PhaseSetup, round.PhaseCollecting); rej != nil {
		return 0, rej
	}
	if _, ok := r.cfg.Collector(peer); !ok {
		return 0, refuse(reasonNotInRound, "%s is not a collector of this round", peer)
	}
	byKeeper := map[string]identity.Signed{}
	for _, m := range list {
		var b wire.SealedBundle
		if rej := open(r, peer, m, wire.KindShareBundle, &b, func() string { return b.ConfigHash }); rej != nil {
			return 0, rej
		}
		if b.Collector != peer {
			return 0, refuse(reasonMalformed, "bundle names collector %s", b.Collector)
		}
		if _, ok := r.RoundKeys[b.Keeper]; !ok {
			return 0, refuse(reasonMalformed, "bundle for %s, which has no round key", b.Keeper)
		}
		if want := wire.SealedLen(r.cfg.NumCounters()); len(b.Ciphertext) != want {
			return 0, refuse(reasonMalformed, "bundle for %s is %d bytes, the round's is %d", b.Keeper, len(b.Ciphertext), want)
		}
		byKeeper[b.Keeper] = m
	}
	if len(byKeeper) != len(r.RoundKeys) {
		return 0, refuse(reasonMalformed, "%d bundles for %d keepers with round keys", len(byKeeper), len(r.RoundKeys))
	}
	if r.Joined[peer] {
		if r.holdsBundles(byKeeper) {
			return alreadyHeld, nil
		}
		return 0, refuse(reasonDuplicate, "collector already sent different bundles this round")
	}
	e := journalEntry{Collector: peer, Bundles: byKeeper}
	if err := appendJournal(s.opts.DataDir, r, e); err != nil {
		return 0, failed(opJournalWrite, fmt.Errorf("storing the bundles of %s: %w", peer, err))
	}
	r.apply(e)
	s.wake()
	return stored, nil
}

// holdsBundles reports whether the round holds every one of the bundles.
func (r *roundState) holdsBundles(byKeeper map[string]identity.Signed) bool {
	for k, m := range byKeeper {
		if !slices.ContainsFunc(r.Bundles[k], func(h identity.Signed) bool { return bytes.Equal(h.Body, m.Body) }) {
			return false
		}
	}
	return true
}

// maxBundlesPerAnswer and maxBundleBytes bound one GET of bundles, well
// inside what a keeper reads in one answer.
const (
	maxBundlesPerAnswer = 500
	maxBundleBytes      = 16 << 20
)

func (s *Server) handleGetBundles(w http.ResponseWriter, req *http.Request) {
	peer := transport.PeerFingerprint(req)
	if s.allowed[peer] != "keeper" {
		s.respond(w, req, 0, refuse(reasonWrongRole, "%s is a %s; only a keeper may fetch bundles", peer, s.allowed[peer]))
		return
	}
	from, err := strconv.Atoi(req.URL.Query().Get("from"))
	if err != nil || from < 0 {
		s.respond(w, req, 0, refuse(reasonMalformed, "from must be a non-negative integer"))
		return
	}
	s.mu.Lock()
	var out []identity.Signed
	if r := s.st.Current; r != nil && from < len(r.Bundles[peer]) {
		size := 0
		for _, m := range r.Bundles[peer][from:] {
			size += len(m.Body) * 4 / 3 // base64 in JSON
			if len(out) > 0 && (len(out) == maxBundlesPerAnswer || size > maxBundleBytes) {
				break
			}
			out = append(out, m)
		}
	}
	s.mu.Unlock()
	writeJSON(w, out)
}

// handleRound is the long poll: it answers when the state version passes
// since, or after MaxLongPollS seconds with the state as it is.
func (s *Server) handleRound(w http.ResponseWriter, req *http.Request) {
	peer := transport.PeerFingerprint(req)
	since, _ := strconv.ParseUint(req.URL.Query().Get("since"), 10, 64)
	collector := s.allowed[peer] == "collector"
	timer := time.NewTimer(wire.MaxLongPollS * time.Second)
	defer timer.Stop()
	for {
		s.mu.Lock()
		version, ch := s.st.Version, s.changed
		if collector {
			version, ch = s.st.PhaseVersion, s.phaseChanged
		}
		if version > since {
			v := s.view(peer)
			s.mu.Unlock()
			writeJSON(w, v)
			return
		}
		s.mu.Unlock()
		select {
		case <-ch:
		case <-timer.C:
			s.mu.Lock()
			v := s.view(peer)
			s.mu.Unlock()
			writeJSON(w, v)
			return
		case <-req.Context().Done():
			return
		}
	}
}

// view is the round as one node sees it; called with s.mu held.
func (s *Server) view(peer string) wire.RoundView {
	v := wire.RoundView{Version: s.st.Version, Finished: s.finished()}
	if s.allowed[peer] == "collector" {
		v.Version = s.st.PhaseVersion
	}
	r := s.st.Current
	if r == nil {
		return v
	}
	ann := r.Announce
	v.ConfigHash, v.Phase, v.Announce, v.Failure = r.Hash, r.Phase, &ann, r.Failure
	for _, k := range r.cfg.Keepers {
		if m, ok := r.RoundKeys[k.Fingerprint]; ok {
			v.RoundKeys = append(v.RoundKeys, m)
		}
		if m, ok := r.Commits[k.Fingerprint]; ok && r.Phase != round.PhaseAgreeing {
			v.Commits = append(v.Commits, m)
		}
	}
	v.Agreement = r.Agreement
	v.Bundles = len(r.Bundles[peer])
	v.Joined = r.Joined[peer]
	_, v.Reported = r.Reports[peer]
	_, v.Shared = r.Shares[peer]
	return v
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// publicHandler serves what anyone may read: metrics and published outcomes.
func (s *Server) publicHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	s.resultsAPI(mux)
	page := site.Open(filepath.Join(s.opts.DataDir, "outcomes")).Handler(s.live)
	mux.Handle("GET /{$}", page)
	mux.Handle("GET /csv/", page)
	return mux
}

// live is the round in progress as the results page shows it.
func (s *Server) live() *site.Live {
	st := s.Status()
	return &site.Live{Series: st.Series, Round: st.Round, Phase: st.Phase, Joined: st.CollectorsJoined, Reported: st.Reported,
		Committed: st.Committed, Failure: st.Failure, NotAnnounced: st.NotAnnounced, Refusals: st.Refusals}
}
