package tally

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/privstats/privstats/transport"
)

// A message a node posts ends in one of three ways, each its own type so
// that none is passed off as another:
//
//   - accepted: a result (stored, or already held when an identical copy
//     was stored before), answered 200 with the result in the body;
//   - rejected: the message or its timing is at fault; a *rejection names
//     a reason from a closed set, is counted in
//     privstats_rejected_requests_total{reason} and answered with a 4xx
//     whose body names the reason;
//   - failed: the tally server is at fault (a disk write, say); an
//     *internalError is logged at ERROR, counted in
//     privstats_tally_internal_errors_total{op} and answered 500, so the
//     sender keeps its message and retries, and nothing is blamed on it.

// result is what became of an accepted message.
type result int

const (
	// stored: the message is new and durable (in state.json or the round's
	// journal) before the sender hears so.
	stored result = iota + 1
	// alreadyHeld: an identical copy was stored before, typically a retry
	// after a lost answer.
	alreadyHeld
)

func (r result) String() string {
	switch r {
	case stored:
		return "stored"
	case alreadyHeld:
		return "already held"
	}
	return fmt.Sprintf("result(%d)", int(r))
}

// acceptance is the body of the 200 answer to a posted message.
type acceptance struct {
	Result string `json:"result"`
}

// reason is why the tally server refused a request, a label value of
// privstats_rejected_requests_total. The set is closed (reasons) so the
// label stays bounded. The constants are untyped so tests can pass them
// where a label string is wanted.
type reason string

const (
	// reasonUnknownKey: a TLS handshake from a key that is not listed.
	reasonUnknownKey = "unknown_key"
	// reasonNoCertificate: a TLS handshake without a client certificate.
	reasonNoCertificate = "no_client_certificate"
	// reasonPlainHTTP: plain HTTP sent to the TLS port (answered 400).
	reasonPlainHTTP = "plain_http"
	// reasonHandshakeTimeout: a TLS handshake that did not finish within
	// Options.HandshakeTimeout.
	reasonHandshakeTimeout = "handshake_timeout"
	// reasonBadHandshake: any other failed TLS handshake (an older TLS
	// version, a client that hung up, garbage).
	reasonBadHandshake = "bad_handshake"
	// reasonTooManyRequests: the sender already has as many requests in
	// flight as one node may (Options.MaxInFlightPerPeer); an honest node,
	// which posts one message at a time, never does.
	reasonTooManyRequests = "too_many_requests"
	// reasonServerBusy: the server is reading as many bodies as it takes at
	// once (Options.MaxInFlight); answered 503, which nodes retry.
	reasonServerBusy = "server_busy"
	// reasonWrongRole: the sender's configured role may not post here (a
	// collector posting a keeper's message).
	reasonWrongRole = "wrong_role"
	// reasonNotInRound: the current round's config does not list the
	// sender in the role the message needs.
	reasonNotInRound = "not_in_round"
	// reasonBadSignature: the message is not signed by the sender.
	reasonBadSignature = "bad_signature"
	// reasonWrongRound: no round is running, or the message is for another
	// round or another agreement.
	reasonWrongRound = "wrong_round"
	// reasonWrongPhase: the round is not in a phase that takes the message.
	reasonWrongPhase = "wrong_phase"
	// reasonMalformed: the message does not parse or breaks a rule of its
	// kind (names another node, wrong length, out of range).
	reasonMalformed = "malformed"
	// reasonTooLarge: the body exceeds the server's max_body_bytes.
	reasonTooLarge = "body_too_large"
	// reasonDuplicate: the sender already sent a different message of a
	// kind it may send only once per round.
	reasonDuplicate = "duplicate"
	// reasonNotJoined: the message needs a collector whose bundles the
	// round holds, and it holds none.
	reasonNotJoined = "not_joined"
	// reasonWrongVersion: the sender speaks another protocol version
	// (wire.ProtocolVersion).
	reasonWrongVersion = "wrong_version"
)

var reasons = []reason{reasonUnknownKey, reasonNoCertificate, reasonPlainHTTP, reasonHandshakeTimeout, reasonBadHandshake,
	reasonWrongRole, reasonNotInRound, reasonBadSignature, reasonWrongRound, reasonWrongPhase, reasonMalformed, reasonTooLarge,
	reasonDuplicate, reasonNotJoined, reasonWrongVersion, reasonTooManyRequests, reasonServerBusy}

// handshakeReason is the reason a refused TLS handshake is counted under.
func handshakeReason(err error) reason {
	switch {
	case errors.Is(err, transport.ErrUnknownPeer):
		return reasonUnknownKey
	case errors.Is(err, transport.ErrNoCertificate):
		return reasonNoCertificate
	case errors.Is(err, transport.ErrPlainHTTP):
		return reasonPlainHTTP
	case errors.Is(err, transport.ErrHandshakeTimeout):
		return reasonHandshakeTimeout
	}
	return reasonBadHandshake
}

// status is the HTTP status a refusal for the reason is answered with.
// Senders act on the class: a collector takes 409 as "settled by the next
// round view" and other 4xx answers as final.
func (r reason) status() int {
	switch r {
	case reasonMalformed, reasonBadSignature, reasonWrongVersion:
		return http.StatusBadRequest
	case reasonWrongRole, reasonNotInRound, reasonUnknownKey, reasonNoCertificate, reasonPlainHTTP, reasonHandshakeTimeout, reasonBadHandshake:
		return http.StatusForbidden
	case reasonTooLarge:
		return http.StatusRequestEntityTooLarge
	case reasonTooManyRequests:
		return http.StatusTooManyRequests
	case reasonServerBusy:
		// Not a 4xx: collectors take those as final and drop the round.
		return http.StatusServiceUnavailable
	default: // wrong_round, wrong_phase, duplicate, not_joined: the round's state is in the way
		return http.StatusConflict
	}
}

// rejection is a refused request: the reason and a message for the sender.
type rejection struct {
	reason reason
	msg    string
}

func (e *rejection) Error() string { return string(e.reason) + ": " + e.msg }

func refuse(why reason, format string, args ...any) *rejection {
	return &rejection{reason: why, msg: fmt.Sprintf(format, args...)}
}

// op is what the tally server was doing when it failed, a label value of
// privstats_tally_internal_errors_total; the set is closed (ops).
type op string

const (
	opJournalWrite op = "journal_write" // appending bundles or a report to the round's journal
	opStateWrite   op = "state_write"   // saving state.json
	opLedgerWrite  op = "ledger_write"  // recording an announced round in the policy ledger
	opOutcomeWrite op = "outcome_write" // writing an outcome file
	opOther        op = "other"         // anything else that should not fail (see the log)
)

var ops = []op{opJournalWrite, opStateWrite, opLedgerWrite, opOutcomeWrite, opOther}

// internalError is a failure of the tally server itself, not of a request.
type internalError struct {
	op  op
	err error
}

func (e *internalError) Error() string { return string(e.op) + ": " + e.err.Error() }
func (e *internalError) Unwrap() error { return e.err }

func failed(o op, err error) *internalError { return &internalError{op: o, err: err} }

// opOf is the operation an error failed in; untyped errors count as other.
func opOf(err error) op {
	if ie, ok := errors.AsType[*internalError](err); ok {
		return ie.op
	}
	return opOther
}

// internalFailure logs and counts a failure of the tally server itself.
func (s *Server) internalFailure(err error, attrs ...any) {
	o := opOf(err)
	s.metrics.internal.WithLabelValues(string(o)).Inc()
	s.internalLog.warn(string(o), string(o), "tally server failure", append([]any{"op", o, "err", err}, attrs...)...)
}

// respond answers a posted message with its result, its rejection or the
// server's failure. err is nil, a *rejection or (anything else) a failure.
func (s *Server) respond(w http.ResponseWriter, req *http.Request, res result, err error) {
	peer := transport.PeerFingerprint(req)
	if err == nil {
		writeJSON(w, acceptance{Result: res.String()})
		return
	}
	if rej, ok := errors.AsType[*rejection](err); ok {
		s.metrics.rejected.WithLabelValues(string(rej.reason)).Inc()
		s.refusalLog.warn(peer, string(rej.reason), "request refused", "peer", peer, "path", req.URL.Path, "reason", rej.reason, "detail", rej.msg)
		http.Error(w, rej.Error(), rej.reason.status())
		return
	}
	s.internalFailure(err, "peer", peer, "path", req.URL.Path)
	// The detail (paths, OS errors) is for the operator's log, not the peer.
	http.Error(w, fmt.Sprintf("internal error (%s): the tally server did not store the message; send it again later", opOf(err)),
		http.StatusInternalServerError)
}
