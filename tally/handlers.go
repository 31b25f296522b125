package tally

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/aggregator/wire"
	"github.com/privstats/privstats/identity"
	"github.com/privstats/privstats/transport"
)

// Reasons a request is refused; each is a label of
// privstats_rejected_requests_total, so operators can see why data went missing.
const (
	reasonUnknownKey   = "unknown_key"
	reasonWrongRole    = "wrong_role"
	reasonBadSignature = "bad_signature"
	reasonWrongRound   = "wrong_round"
	reasonWrongPhase   = "wrong_phase"
	reasonMalformed    = "malformed"
	reasonTooLarge     = "body_too_large"
	reasonDuplicate    = "duplicate"
	reasonNotJoined    = "not_joined"
	reasonWrongVersion = "wrong_version"
)

// maxReason bounds a refusal's reason: it is stored, logged and published.
const maxReason = 1024

// maxGaps bounds the gaps one report may list.
const maxGaps = 1000

var rejectReasons = []string{reasonUnknownKey, reasonWrongRole, reasonBadSignature, reasonWrongRound,
	reasonWrongPhase, reasonMalformed, reasonTooLarge, reasonDuplicate, reasonNotJoined, reasonWrongVersion}

func (s *Server) reject(reason string) { s.metrics.rejected.WithLabelValues(reason).Inc() }

// rejection is a refused request: an HTTP status, a metric reason and a
// message for the sender.
type rejection struct {
	code   int
	reason string
	msg    string
}

func (e *rejection) Error() string { return e.reason + ": " + e.msg }

// errStored marks a message already made durable in the round's journal.
var errStored = &rejection{}

func refuse(code int, reason, format string, args ...any) *rejection {
	return &rejection{code: code, reason: reason, msg: fmt.Sprintf(format, args...)}
}

func (s *Server) apiHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+wire.PathRound, s.handleRound)
	mux.HandleFunc("GET "+wire.PathBundles, s.handleGetBundles)
	s.post(mux, wire.PathRoundKey, "keeper", s.acceptRoundKey)
	s.post(mux, wire.PathAck, "keeper", s.acceptAck)
	s.post(mux, wire.PathCommit, "keeper", s.acceptCommit)
	s.post(mux, wire.PathShare, "keeper", s.acceptShare)
	s.post(mux, wire.PathReport, "collector", s.acceptReport)
	s.post(mux, wire.PathRefusal, "", s.acceptRefusal)
	// accept functions return errStored when they wrote to the journal
	// themselves and there is no small state to save.
	mux.HandleFunc("POST "+wire.PathBundles, s.handleBundles)
	return s.checkVersion(mux)
}

// readBody reads a size-limited JSON body.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, into any) *rejection {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return refuse(http.StatusRequestEntityTooLarge, reasonTooLarge, "body exceeds %d bytes", s.opts.MaxBodyBytes)
	}
	if err != nil {
		return refuse(http.StatusBadRequest, reasonMalformed, "reading body: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		return refuse(http.StatusBadRequest, reasonMalformed, "body is not a signed message: %v", err)
	}
	return nil
}

func (s *Server) answer(w http.ResponseWriter, peer string, rej *rejection) {
	if rej == nil {
		w.WriteHeader(http.StatusOK)
		return
	}
	s.reject(rej.reason)
	s.log.Warn("request refused", "peer", peer, "reason", rej.reason, "detail", rej.msg)
	http.Error(w, rej.Error(), rej.code)
}

// post registers a handler for one signed message from a node of the given
// role ("" for any). The handler runs with the lock held on the current round.
func (s *Server) post(mux *http.ServeMux, path, role string, accept func(r *roundState, peer string, m identity.Signed) *rejection) {
	mux.HandleFunc("POST "+path, func(w http.ResponseWriter, req *http.Request) {
		peer := transport.PeerFingerprint(req)
		if role != "" && s.allowed[peer] != role {
			s.answer(w, peer, refuse(http.StatusForbidden, reasonWrongRole, "%s is not a %s", peer, role))
			return
		}
		var m identity.Signed
		if rej := s.readBody(w, req, &m); rej != nil {
			s.answer(w, peer, rej)
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		r := s.st.Current
		if r == nil {
			s.answer(w, peer, refuse(http.StatusConflict, reasonWrongRound, "no round is running"))
			return
		}
		rej := accept(r, peer, m)
		if rej == errStored {
			rej = nil
			s.metrics.progress(r)
		} else if rej == nil {
			if err := s.touch(); err != nil {
				s.log.Error("saving state", "err", err)
				http.Error(w, "tally server could not save state", http.StatusInternalServerError)
				return
			}
		}
		s.answer(w, peer, rej)
	})
}

// open verifies a signed message from peer and checks its round.
func open(r *roundState, peer string, m identity.Signed, kind string, body any, hash func() string) *rejection {
	if _, err := wire.OpenBody(m, kind, peer, body); err != nil {
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) {
			return refuse(http.StatusBadRequest, reasonMalformed, "%v", err)
		}
		return refuse(http.StatusBadRequest, reasonBadSignature, "%v", err)
	}
	if h := hash(); h != r.Hash {
		return refuse(http.StatusConflict, reasonWrongRound, "message is for round %.16s…, the current round is %.16s…", h, r.Hash)
	}
	return nil
}

func inPhase(r *roundState, phases ...string) *rejection {
	if slices.Contains(phases, r.Phase) {
		return nil
	}
	return refuse(http.StatusConflict, reasonWrongPhase, "round is in phase %s", r.Phase)
}

func (s *Server) acceptRoundKey(r *roundState, peer string, m identity.Signed) *rejection {
	if _, ok := r.cfg.Keeper(peer); !ok {
		return refuse(http.StatusForbidden, reasonWrongRole, "%s is not a keeper of this round", peer)
	}
	var k wire.RoundKey
	if rej := open(r, peer, m, wire.KindRoundKey, &k, func() string { return k.ConfigHash }); rej != nil {
		return rej
	}
	if prev, ok := r.RoundKeys[peer]; ok {
		if bytes.Equal(prev.Body, m.Body) {
			return nil
		}
		return refuse(http.StatusConflict, reasonDuplicate, "keeper already published a round key")
	}
	if rej := inPhase(r, round.PhaseAnnounced); rej != nil {
		return rej
	}
	if k.Keeper != peer || len(k.PublicKey) != 32 {
		return refuse(http.StatusBadRequest, reasonMalformed, "round key must name its keeper and hold a 32-byte X25519 key")
	}
	r.RoundKeys[peer] = m
	return nil
}

func (s *Server) acceptRefusal(r *roundState, peer string, m identity.Signed) *rejection {
	role := s.allowed[peer]
	var ref wire.Refusal
	if rej := open(r, peer, m, wire.KindRefusal, &ref, func() string { return ref.ConfigHash }); rej != nil {
		return rej
	}
	_, isKeeper := r.cfg.Keeper(peer)
	_, isCollector := r.cfg.Collector(peer)
	switch {
	case !isKeeper && !isCollector:
		return refuse(http.StatusForbidden, reasonWrongRole, "%s takes no part in this round", peer)
	case ref.Node != peer || ref.Reason == "":
		return refuse(http.StatusBadRequest, reasonMalformed, "refusal must name its node and a reason")
	case len(ref.Reason) > maxReason:
		return refuse(http.StatusBadRequest, reasonMalformed, "refusal reason longer than %d bytes", maxReason)
	}
	if _, ok := r.Refusals[peer]; !ok {
		s.metrics.refusals.WithLabelValues(role).Inc()
		s.log.Warn("node refused the round", "role", role, "node", peer, "reason", ref.Reason)
	}
	r.Refusals[peer] = ref.Reason
	return nil
}

func (s *Server) acceptAck(r *roundState, peer string, m identity.Signed) *rejection {
	if _, ok := r.cfg.Keeper(peer); !ok {
		return refuse(http.StatusForbidden, reasonWrongRole, "%s is not a keeper of this round", peer)
	}
	var a wire.Ack
	if rej := open(r, peer, m, wire.KindAck, &a, func() string { return a.ConfigHash }); rej != nil {
		return rej
	}
	if rej := inPhase(r, round.PhaseSetup, round.PhaseCollecting, round.PhaseReporting); rej != nil {
		return rej
	}
	if a.Keeper != peer {
		return refuse(http.StatusBadRequest, reasonMalformed, "ack names keeper %s", a.Keeper)
	}
	for _, fp := range a.Collectors {
		if !r.Joined[fp] {
			return refuse(http.StatusBadRequest, reasonNotJoined, "acknowledges collector %s, which sent no bundles", fp)
		}
	}
	r.Acks[peer] = slices.Sorted(slices.Values(a.Collectors))
	return nil
}

func (s *Server) acceptReport(r *roundState, peer string, m identity.Signed) *rejection {
	var rep wire.Report
	if rej := open(r, peer, m, wire.KindReport, &rep, func() string { return rep.ConfigHash }); rej != nil {
		return rej
	}
	if prev, ok := r.Reports[peer]; ok {
		if bytes.Equal(prev.Body, m.Body) {
			return nil
		}
		return refuse(http.StatusConflict, reasonDuplicate, "collector already reported")
	}
	// The clock tick that ends the window may lag a prompt report.
	windowOver := r.Phase == round.PhaseCollecting && !time.Now().Before(r.cfg.End)
	if rej := inPhase(r, round.PhaseReporting); rej != nil && !windowOver {
		return rej
	}
	if !r.Joined[peer] {
		return refuse(http.StatusConflict, reasonNotJoined, "collector sent no share bundles this round")
	}
	if rep.Collector != peer {
		return refuse(http.StatusBadRequest, reasonMalformed, "report names collector %s", rep.Collector)
	}
	if err := wire.CheckElements("report", rep.Values, r.cfg.NumCounters()); err != nil {
		return refuse(http.StatusBadRequest, reasonMalformed, "%v", err)
	}
	if len(rep.Gaps) > maxGaps {
		return refuse(http.StatusBadRequest, reasonMalformed, "report lists %d gaps, at most %d", len(rep.Gaps), maxGaps)
	}
	for _, g := range rep.Gaps {
		if g.End.Before(g.Start) || g.Start.Before(r.cfg.Start) || g.End.After(r.cfg.End) {
			return refuse(http.StatusBadRequest, reasonMalformed, "report gap %s–%s is not inside the window", g.Start, g.End)
		}
	}
	e := journalEntry{Collector: peer, Report: &m}
	if err := appendJournal(s.opts.DataDir, r, e); err != nil {
		s.log.Error("journal", "err", err)
		return refuse(http.StatusInternalServerError, reasonMalformed, "tally server could not store the report")
	}
	r.apply(e)
	return errStored
}

func (s *Server) acceptCommit(r *roundState, peer string, m identity.Signed) *rejection {
	if _, ok := r.cfg.Keeper(peer); !ok {
		return refuse(http.StatusForbidden, reasonWrongRole, "%s is not a keeper of this round", peer)
	}
	var c wire.Commit
	if rej := open(r, peer, m, wire.KindCommit, &c, func() string { return c.ConfigHash }); rej != nil {
		return rej
	}
	if rej := inPhase(r, round.PhaseAgreeing, round.PhaseReleasing); rej != nil {
		return rej
	}
	if c.Keeper != peer || c.Agreement != r.Digest {
		return refuse(http.StatusConflict, reasonWrongRound, "commit is for another agreement")
	}
	r.Commits[peer] = m
	return nil
}

func (s *Server) acceptShare(r *roundState, peer string, m identity.Signed) *rejection {
	if _, ok := r.cfg.Keeper(peer); !ok {
		return refuse(http.StatusForbidden, reasonWrongRole, "%s is not a keeper of this round", peer)
	}
	var a wire.AggregateShareMsg
	if rej := open(r, peer, m, wire.KindAggregateShare, &a, func() string { return a.ConfigHash }); rej != nil {
		return rej
	}
	if rej := inPhase(r, round.PhaseReleasing); rej != nil {
		return rej
	}
	k, _ := r.cfg.Keeper(peer)
	switch {
	case a.Keeper != peer || a.X != k.X:
		return refuse(http.StatusBadRequest, reasonMalformed, "share names keeper %s x=%d", a.Keeper, a.X)
	case a.Agreement != r.Digest:
		return refuse(http.StatusConflict, reasonWrongRound, "share is for another agreement")
	case r.Commits[peer].Body == nil:
		return refuse(http.StatusConflict, reasonWrongPhase, "keeper has not committed")
	}
	if err := wire.CheckElements("aggregate share", a.Values, r.cfg.NumCounters()); err != nil {
		return refuse(http.StatusBadRequest, reasonMalformed, "%v", err)
	}
	r.Shares[peer] = m
	return nil
}

// handleBundles accepts a collector's sealed bundles, one per keeper that
// published a round key, all or nothing.
func (s *Server) handleBundles(w http.ResponseWriter, req *http.Request) {
	peer := transport.PeerFingerprint(req)
	if s.allowed[peer] != "collector" {
		s.answer(w, peer, refuse(http.StatusForbidden, reasonWrongRole, "%s is not a collector", peer))
		return
	}
	var list []identity.Signed
	if rej := s.readBody(w, req, &list); rej != nil {
		s.answer(w, peer, rej)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.st.Current
	rej := func() *rejection {
		if r == nil {
			return refuse(http.StatusConflict, reasonWrongRound, "no round is running")
		}
		if rej := inPhase(r, round.PhaseSetup, round.PhaseCollecting); rej != nil {
			return rej
		}
		if _, ok := r.cfg.Collector(peer); !ok {
			return refuse(http.StatusForbidden, reasonWrongRole, "collector is not permitted in this round")
		}
		if r.Joined[peer] {
			return refuse(http.StatusConflict, reasonDuplicate, "collector already sent its bundles this round")
		}
		byKeeper := map[string]identity.Signed{}
		for _, m := range list {
			var b wire.SealedBundle
			if rej := open(r, peer, m, wire.KindShareBundle, &b, func() string { return b.ConfigHash }); rej != nil {
				return rej
			}
			if b.Collector != peer {
				return refuse(http.StatusBadRequest, reasonMalformed, "bundle names collector %s", b.Collector)
			}
			if _, ok := r.RoundKeys[b.Keeper]; !ok {
				return refuse(http.StatusBadRequest, reasonMalformed, "bundle for %s, which has no round key", b.Keeper)
			}
			if want := wire.SealedLen(r.cfg.NumCounters()); len(b.Ciphertext) != want {
				return refuse(http.StatusBadRequest, reasonMalformed, "bundle for %s is %d bytes, the round's is %d", b.Keeper, len(b.Ciphertext), want)
			}
			byKeeper[b.Keeper] = m
		}
		if len(byKeeper) != len(r.RoundKeys) {
			return refuse(http.StatusBadRequest, reasonMalformed, "%d bundles for %d keepers with round keys", len(byKeeper), len(r.RoundKeys))
		}
		e := journalEntry{Collector: peer, Bundles: byKeeper}
		if err := appendJournal(s.opts.DataDir, r, e); err != nil {
			s.log.Error("journal", "err", err)
			return refuse(http.StatusInternalServerError, reasonMalformed, "tally server could not store the bundles")
		}
		r.apply(e)
		return nil
	}()
	if rej == nil {
		s.wake()
	}
	s.answer(w, peer, rej)
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
		s.answer(w, peer, refuse(http.StatusForbidden, reasonWrongRole, "%s is not a keeper", peer))
		return
	}
	from, err := strconv.Atoi(req.URL.Query().Get("from"))
	if err != nil || from < 0 {
		s.answer(w, peer, refuse(http.StatusBadRequest, reasonMalformed, "from must be a non-negative integer"))
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
	mux.HandleFunc("GET /{$}", s.handlePage)
	return mux
}
