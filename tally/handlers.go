package tally

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/privstats/privstats/aggregator/commit"
	"github.com/privstats/privstats/aggregator/field"
	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/aggregator/shamir"
	"github.com/privstats/privstats/aggregator/wire"
	"github.com/privstats/privstats/identity"
	"github.com/privstats/privstats/internal/strictjson"
	"github.com/privstats/privstats/site"
	"github.com/privstats/privstats/transport"
)

// pathID names the last path element of the GETs by hash or digest.
const pathID = "id"

// maxReason bounds a refusal's reason: it is stored, logged and published.
const maxReason = 1024

// maxGaps bounds the gaps one report may list.
const maxGaps = 1000

func (s *Server) apiHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+wire.PathRound, s.handleRound)
	mux.HandleFunc("GET "+wire.PathBundles, s.handleGetBundles)
	mux.HandleFunc("GET "+wire.PathConfig+"{"+pathID+"}", s.handleConfig)
	mux.HandleFunc("GET "+wire.PathAgreement+"{"+pathID+"}", s.handleAgreement)
	post(s, mux, wire.PathRoundKey, "keeper", jsonBody(s), jsonExpansion, now(s.acceptRoundKey))
	post(s, mux, wire.PathAck, "keeper", jsonBody(s), jsonExpansion, s.acceptAck)
	post(s, mux, wire.PathCommit, "keeper", jsonBody(s), jsonExpansion, now(s.acceptCommit))
	post(s, mux, wire.PathShare, "keeper", jsonBody(s), jsonExpansion, now(s.acceptShare))
	post(s, mux, wire.PathReport, "collector", s.readSigned, binaryExpansion, s.acceptReport)
	post(s, mux, wire.PathBundles, "collector", s.readSignedList, binaryExpansion, s.acceptBundles)
	post(s, mux, wire.PathRefusal, "", jsonBody(s), jsonExpansion, now(s.acceptRefusal))
	return s.checkVersion(s.limit(mux))
}

// readJSON reads a size-limited JSON body (bodyReader).
func (s *Server) readJSON(w http.ResponseWriter, r *http.Request, into any) *rejection {
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

// jsonBody reads a posted JSON message with readJSON.
func jsonBody(s *Server) func(http.ResponseWriter, *http.Request, *identity.Signed) *rejection {
	return func(w http.ResponseWriter, r *http.Request, into *identity.Signed) *rejection {
		return s.readJSON(w, r, into)
	}
}

// readSigned reads a size-limited binary body holding one signed message
// (wire.ReadSigned), streaming: no more is allocated than the message
// declares, and a declared size over the limit is refused before it is
// read.
func (s *Server) readSigned(w http.ResponseWriter, r *http.Request, into *identity.Signed) *rejection {
	return s.readBinary(w, r, func(in io.Reader, limit int64) (err error) {
		*into, err = wire.ReadSigned(in, limit)
		return err
	})
}

// readSignedList reads a size-limited binary list of signed messages (a
// collector's bundles, one per keeper).
func (s *Server) readSignedList(w http.ResponseWriter, r *http.Request, into *[]identity.Signed) *rejection {
	return s.readBinary(w, r, func(in io.Reader, limit int64) (err error) {
		*into, err = wire.ReadSignedList(in, limit, shamir.MaxHolders)
		return err
	})
}

func (s *Server) readBinary(w http.ResponseWriter, r *http.Request, read func(io.Reader, int64) error) *rejection {
	limit := s.opts.MaxBodyBytes
	if r.ContentLength > limit {
		return refuse(reasonTooLarge, "body of %d bytes exceeds %d bytes", r.ContentLength, limit)
	}
	if ct := r.Header.Get("Content-Type"); ct != wire.ContentBinary {
		return refuse(reasonMalformed, "body of type %q, want %s", ct, wire.ContentBinary)
	}
	// A declared length bounds what the envelopes may declare, so that a
	// short body cannot make the reader allocate more than it was charged
	// (bodyBudget) for bytes that never come.
	declared := limit
	if r.ContentLength >= 0 {
		declared = r.ContentLength
	}
	in := http.MaxBytesReader(w, r.Body, limit)
	err := read(in, declared)
	if err == nil {
		err = wire.ExpectEnd(in)
	}
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok || errors.Is(err, wire.ErrTooLarge) {
		// A message declared larger than the body's Content-Length is
		// refused as one over the limit is: before it is read.
		return refuse(reasonTooLarge, "body exceeds %d bytes or declares more than it holds: %v", limit, err)
	}
	if err != nil {
		return refuse(reasonMalformed, "body is not a binary signed message: %v", err)
	}
	return nil
}

// acceptFunc accepts a posted message m from peer into round r, with the
// lock held. It returns a result, a *rejection or an *internalError (see
// respond); or, for a message that goes into the journal, a channel that
// tells whether its batch was stored (commitEntry), waited for without
// the lock.
type acceptFunc[T any] func(r *roundState, peer string, m T) (result, <-chan error, error)

// now adapts an accept function that settles a message at once.
func now[T any](accept func(r *roundState, peer string, m T) (result, error)) acceptFunc[T] {
	return func(r *roundState, peer string, m T) (result, <-chan error, error) {
		res, err := accept(r, peer, m)
		return res, nil, err
	}
}

// post registers the handler of one kind of posted message, m (a signed
// message, or a list of them), from a node of the given role ("" for any),
// read from the body by read.
func post[T any](s *Server, mux *http.ServeMux, path, role string, read func(http.ResponseWriter, *http.Request, *T) *rejection, expansion int64, accept acceptFunc[T]) {
	mux.HandleFunc("POST "+path, func(w http.ResponseWriter, req *http.Request) {
		res, err := func() (result, error) {
			peer := transport.PeerFingerprint(req)
			if role != "" && s.allowed[peer] != role {
				return 0, refuse(reasonWrongRole, "%s is a %s; only a %s may post %s", peer, s.allowed[peer], role, path)
			}
			// Keepers' posts are outside the budget, as they are outside
			// the global cap (limit): a flood of collectors must not
			// crowd out the round's critical path.
			if s.allowed[peer] != "keeper" {
				cost := bodyCost(req, s.opts.MaxBodyBytes, expansion)
				if rej := s.bodies.reserve(cost); rej != nil {
					w.Header().Set("Connection", "close")
					return 0, rej
				}
				defer s.bodies.release(cost)
			}
			var m T
			if rej := read(w, req, &m); rej != nil {
				return 0, rej
			}
			s.mu.Lock()
			r := s.st.Current
			if r == nil {
				s.mu.Unlock()
				return 0, refuse(reasonWrongRound, "no round is running")
			}
			res, wait, err := accept(r, peer, m)
			s.mu.Unlock()
			if wait == nil || err != nil {
				return res, err
			}
			// Answered only once durable: nothing acknowledged is lost.
			if err := <-wait; err != nil {
				return 0, failed(opJournalWrite, fmt.Errorf("storing the message of %s: %w", peer, err))
			}
			return stored, nil
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
	if err := wire.DecodeBody(m.Body, body); err != nil {
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
	_, isCollector := r.collectors[peer]
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
		if i := r.collectors[peer]; i/8 < len(ag.Members) && ag.Members[i/8]&(1<<(i%8)) != 0 {
			return 0, refuse(reasonWrongPhase, "collector is in the proposed agreement's set; it can no longer refuse the round")
		}
	}
	s.metrics.refusals.WithLabelValues(role).Inc()
	s.log.Warn("node refused the round", "role", role, "node", peer, "reason", ref.Reason)
	r.Refusals[peer] = ref.Reason
	return s.saved()
}

// acceptAck takes the collectors a keeper newly acknowledges: the tally
// server keeps each keeper's set, so a keeper sends each collector once
// (docs/protocol.md, "Setup").
func (s *Server) acceptAck(r *roundState, peer string, m identity.Signed) (result, <-chan error, error) {
	var a wire.Ack
	if _, rej := openFromKeeper(r, peer, m, wire.KindAck, &a, func() string { return a.ConfigHash }); rej != nil {
		return 0, nil, rej
	}
	if rej := inPhase(r, round.PhaseSetup, round.PhaseCollecting, round.PhaseReporting); rej != nil {
		return 0, nil, rej
	}
	if a.Keeper != peer {
		return 0, nil, refuse(reasonMalformed, "ack names keeper %s", a.Keeper)
	}
	if len(a.Collectors) > len(r.cfg.Collectors) {
		return 0, nil, refuse(reasonMalformed, "ack lists %d collectors, the round permits %d", len(a.Collectors), len(r.cfg.Collectors))
	}
	held := r.Acks[peer]
	var fresh []string
	seen := make(map[string]bool, len(a.Collectors))
	for _, fp := range a.Collectors {
		if !r.Joined[fp] {
			return 0, nil, refuse(reasonNotJoined, "acknowledges collector %s, which sent no bundles", fp)
		}
		if !held[fp] && !seen[fp] {
			fresh = append(fresh, fp)
		}
		seen[fp] = true
	}
	if len(fresh) == 0 {
		return alreadyHeld, nil, nil
	}
	wait, err := s.commitEntry(r, journalEntry{Keeper: peer, Acked: fresh})
	if err != nil {
		return 0, nil, failed(opJournalWrite, fmt.Errorf("storing the acknowledgements of %s: %w", peer, err))
	}
	return stored, wait, nil
}

func (s *Server) acceptReport(r *roundState, peer string, m identity.Signed) (result, <-chan error, error) {
	res, err := s.checkReport(r, peer, m)
	if err != nil || res != stored {
		return res, nil, err
	}
	wait, err := s.commitEntry(r, journalEntry{Collector: peer, Report: &m})
	if err != nil {
		return 0, nil, failed(opJournalWrite, fmt.Errorf("storing the report of %s: %w", peer, err))
	}
	return stored, wait, nil
}

// checkReport checks a collector's report; stored means it is new and
// goes into the journal.
func (s *Server) checkReport(r *roundState, peer string, m identity.Signed) (result, error) {
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
	if r.pending[peer] {
		return 0, refuse(reasonServerBusy, "the collector's previous message is still being stored; retry")
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
func (s *Server) acceptBundles(r *roundState, peer string, list []identity.Signed) (result, <-chan error, error) {
	if rej := inPhase(r, round.PhaseSetup, round.PhaseCollecting); rej != nil {
		return 0, nil, rej
	}
	if _, ok := r.collectors[peer]; !ok {
		return 0, nil, refuse(reasonNotInRound, "%s is not a collector of this round", peer)
	}
	byKeeper := map[string]identity.Signed{}
	for _, m := range list {
		var b wire.SealedBundle
		if rej := open(r, peer, m, wire.KindShareBundle, &b, func() string { return b.ConfigHash }); rej != nil {
			return 0, nil, rej
		}
		if b.Collector != peer {
			return 0, nil, refuse(reasonMalformed, "bundle names collector %s", b.Collector)
		}
		if _, ok := r.RoundKeys[b.Keeper]; !ok {
			return 0, nil, refuse(reasonMalformed, "bundle for %s, which has no round key", b.Keeper)
		}
		if want := wire.SealedLen(r.cfg.NumCounters()); len(b.Ciphertext) != want {
			return 0, nil, refuse(reasonMalformed, "bundle for %s is %d bytes, the round's is %d", b.Keeper, len(b.Ciphertext), want)
		}
		byKeeper[b.Keeper] = m
	}
	if len(byKeeper) != len(r.RoundKeys) {
		return 0, nil, refuse(reasonMalformed, "%d bundles for %d keepers with round keys", len(byKeeper), len(r.RoundKeys))
	}
	if r.Joined[peer] {
		if r.holdsBundles(peer, byKeeper) {
			return alreadyHeld, nil, nil
		}
		return 0, nil, refuse(reasonDuplicate, "collector already sent different bundles this round")
	}
	if r.pending[peer] {
		return 0, nil, refuse(reasonServerBusy, "the collector's previous message is still being stored; retry")
	}
	wait, err := s.commitEntry(r, journalEntry{Collector: peer, Bundles: byKeeper})
	if err != nil {
		return 0, nil, failed(opJournalWrite, fmt.Errorf("storing the bundles of %s: %w", peer, err))
	}
	return stored, wait, nil
}

// holdsBundles reports whether the round holds every one of the bundles
// as collector's.
func (r *roundState) holdsBundles(collector string, byKeeper map[string]identity.Signed) bool {
	at, ok := r.joinedAt[collector]
	if !ok {
		return false
	}
	for k, m := range byKeeper {
		held := r.Bundles[k]
		if at < 0 || at >= len(held) || !bytes.Equal(held[at].Body, m.Body) {
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
			size += len(m.Body)
			if len(out) > 0 && (len(out) == maxBundlesPerAnswer || size > maxBundleBytes) {
				break
			}
			out = append(out, m)
		}
	}
	s.mu.Unlock()
	body, err := wire.AppendSignedList(nil, out)
	if err != nil {
		s.respond(w, req, 0, failed(opOther, fmt.Errorf("encoding bundles: %w", err)))
		return
	}
	w.Header().Set("Content-Type", wire.ContentBinary)
	w.Write(body)
}

// handleConfig serves the current round's signed announcement, the round
// config, by its hash: nodes fetch it once a round and keep it, so that
// long polls carry only the hash.
func (s *Server) handleConfig(w http.ResponseWriter, req *http.Request) {
	s.serveSigned(w, req, "round", func(r *roundState, hash string) (*[]byte, *identity.Signed) {
		if r.Hash != hash {
			return nil, nil
		}
		return &r.announceJSON, &r.Announce
	})
}

// handleAgreement serves the current round's signed agreement by its
// digest: keepers fetch it once.
func (s *Server) handleAgreement(w http.ResponseWriter, req *http.Request) {
	s.serveSigned(w, req, "agreement", func(r *roundState, digest string) (*[]byte, *identity.Signed) {
		if r.Agreement == nil || r.Digest != digest {
			return nil, nil
		}
		return &r.agreementJSON, r.Agreement
	})
}

// serveSigned answers with the current round's signed message that find
// names by the request's last path element, encoded once into the cache
// find also returns and served from there to every node that asks.
func (s *Server) serveSigned(w http.ResponseWriter, req *http.Request, what string, find func(r *roundState, id string) (cache *[]byte, m *identity.Signed)) {
	id := req.PathValue(pathID)
	s.mu.Lock()
	var body []byte
	if r := s.st.Current; r != nil {
		if cache, m := find(r, id); m != nil {
			if *cache == nil {
				*cache, _ = json.Marshal(m)
			}
			body = *cache
		}
	}
	s.mu.Unlock()
	if body == nil {
		s.respond(w, req, 0, refuse(reasonWrongRound, "%s %.16s… is not the current round's", what, id))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
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

// view is the round as one node sees it; called with s.mu held. It names
// the config and the agreement by hash and digest only (handleConfig,
// handleAgreement) and shows a collector nothing of the keepers' business.
func (s *Server) view(peer string) wire.RoundView {
	v := wire.RoundView{Version: s.st.Version, Finished: s.finished()}
	collector := s.allowed[peer] == "collector"
	if collector {
		v.Version = s.st.PhaseVersion
	}
	r := s.st.Current
	if r == nil {
		return v
	}
	v.ConfigHash, v.Phase, v.Failure = r.Hash, r.Phase, r.Failure
	for _, k := range r.cfg.Keepers {
		if m, ok := r.RoundKeys[k.Fingerprint]; ok {
			v.RoundKeys = append(v.RoundKeys, m)
		}
		if m, ok := r.Commits[k.Fingerprint]; ok && r.Phase != round.PhaseAgreeing && !collector {
			v.Commits = append(v.Commits, m)
		}
	}
	if !collector {
		v.Agreement = r.Digest
	}
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
	s.published = site.Open(filepath.Join(s.opts.DataDir, "outcomes"))
	s.resultsAPI(mux)
	page := s.published.Handler(s.live)
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
