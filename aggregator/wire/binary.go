package wire

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/privstats/privstats/aggregator/commit"
	"github.com/privstats/privstats/identity"
)

// Share bundles and reports are the messages whose size grows with the
// counters, so their signed bodies and the envelopes they travel in are
// binary (docs/protocol.md, "Binary messages"): a sealed bundle on the wire
// is its ciphertext plus a fixed 217 bytes, where JSON with base64 inside
// base64 made it 1.85 times the ciphertext at 1,000 counters. Everything
// else stays JSON.

// ErrTooLarge is wrapped by the readers' errors for a message that
// declares more bytes than their limit allows; it is refused unread.
var ErrTooLarge = errors.New("exceeds the limit")

// ContentBinary is the content type of binary messages on the wire.
const ContentBinary = "application/octet-stream"

// binaryBody is a message body signed in its binary form (SignBody).
type binaryBody interface {
	appendBinary(b []byte) ([]byte, error)
}

// binaryDecoder decodes a binary body strictly (OpenBody).
type binaryDecoder interface {
	decodeBinary(b []byte) error
}

// appendHex32 appends a 64-hex-digit value (a config hash, a fingerprint)
// as its 32 bytes.
func appendHex32(b []byte, what, h string) ([]byte, error) {
	if len(h) != 64 {
		return nil, fmt.Errorf("%s %q is not 64 hex digits", what, h)
	}
	out, err := hex.AppendDecode(b, []byte(h))
	if err != nil {
		return nil, fmt.Errorf("%s %q is not hex: %w", what, h, err)
	}
	return out, nil
}

// reader consumes a binary body front to back; the first failure sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.err = fmt.Errorf("%s: %d bytes left, %d needed", what, len(r.b), n)
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) hex32(what string) string {
	return hex.EncodeToString(r.take(32, what))
}

func (r *reader) u32(what string) int {
	b := r.take(4, what)
	if b == nil {
		return 0
	}
	return int(binary.BigEndian.Uint32(b))
}

func (r *reader) u64(what string) uint64 {
	b := r.take(8, what)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint64(b)
}

// done fails on bytes left over: a body has one encoding.
func (r *reader) done(what string) error {
	if r.err == nil && len(r.b) > 0 {
		r.err = fmt.Errorf("%s: %d bytes of trailing data", what, len(r.b))
	}
	return r.err
}

// The binary SealedBundle: config hash (32 bytes) ‖ collector (32) ‖
// keeper (32) ‖ ciphertext length (4, big-endian) ‖ ciphertext.
func (b SealedBundle) appendBinary(out []byte) ([]byte, error) {
	var err error
	if out, err = appendHex32(out, "config hash", b.ConfigHash); err != nil {
		return nil, err
	}
	if out, err = appendHex32(out, "collector", b.Collector); err != nil {
		return nil, err
	}
	if out, err = appendHex32(out, "keeper", b.Keeper); err != nil {
		return nil, err
	}
	out = binary.BigEndian.AppendUint32(out, uint32(len(b.Ciphertext)))
	return append(out, b.Ciphertext...), nil
}

func (b *SealedBundle) decodeBinary(in []byte) error {
	r := &reader{b: in}
	b.ConfigHash = r.hex32("config hash")
	b.Collector = r.hex32("collector")
	b.Keeper = r.hex32("keeper")
	b.Ciphertext = r.take(r.u32("ciphertext length"), "ciphertext")
	return r.done("share bundle")
}

// maskBytes is the size of one mask: masks are below 2^40.
const maskBytes = commit.MaskBits / 8

// The binary Report: config hash (32) ‖ collector (32) ‖ n (4) ‖ n values
// (8 bytes little-endian each) ‖ n masks (5 bytes little-endian each) ‖
// blinding (32) ‖ the signed commitment in the binary envelope, its length
// first (4) ‖ the number of gaps (4) ‖ each gap's start and end (8 bytes
// each, signed nanoseconds since 1970 UTC, big-endian).
func (rep Report) appendBinary(out []byte) ([]byte, error) {
	var err error
	if out, err = appendHex32(out, "config hash", rep.ConfigHash); err != nil {
		return nil, err
	}
	if out, err = appendHex32(out, "collector", rep.Collector); err != nil {
		return nil, err
	}
	if len(rep.Masks) != len(rep.Values) {
		return nil, fmt.Errorf("report has %d masks for %d values", len(rep.Masks), len(rep.Values))
	}
	out = binary.BigEndian.AppendUint32(out, uint32(len(rep.Values)))
	for _, v := range rep.Values {
		out = binary.LittleEndian.AppendUint64(out, v)
	}
	for _, m := range rep.Masks {
		if m >= commit.MaskBound {
			return nil, errors.New("report mask is not below 2^40")
		}
		var buf [8]byte
		binary.LittleEndian.PutUint64(buf[:], m)
		out = append(out, buf[:maskBytes]...)
	}
	out = append(out, rep.Blinding[:]...)
	var cm []byte
	// A report without a commitment encodes as one of length 0, which
	// the tally server refuses as unsigned.
	if c := rep.Commitment; c.Kind != "" || c.Signer != "" || len(c.Body) > 0 || len(c.Signature) > 0 {
		if cm, err = AppendSigned(nil, rep.Commitment); err != nil {
			return nil, fmt.Errorf("report commitment: %w", err)
		}
	}
	out = binary.BigEndian.AppendUint32(out, uint32(len(cm)))
	out = append(out, cm...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(rep.Gaps)))
	for _, g := range rep.Gaps {
		out = binary.BigEndian.AppendUint64(out, uint64(g.Start.UnixNano()))
		out = binary.BigEndian.AppendUint64(out, uint64(g.End.UnixNano()))
	}
	return out, nil
}

func (rep *Report) decodeBinary(in []byte) error {
	r := &reader{b: in}
	rep.ConfigHash = r.hex32("config hash")
	rep.Collector = r.hex32("collector")
	n := r.u32("counters")
	// Each counter takes 13 bytes: refuse a count the body cannot hold
	// before allocating for it.
	if r.err == nil && n > len(r.b)/(8+maskBytes) {
		return fmt.Errorf("report: %d counters do not fit in %d bytes", n, len(r.b))
	}
	rep.Values = make([]uint64, n)
	for i := range rep.Values {
		rep.Values[i] = r.u64("values")
	}
	rep.Masks = make([]uint64, n)
	for i := range rep.Masks {
		var buf [8]byte
		copy(buf[:], r.take(maskBytes, "masks"))
		rep.Masks[i] = binary.LittleEndian.Uint64(buf[:])
	}
	copy(rep.Blinding[:], r.take(32, "blinding"))
	cm := r.take(r.u32("commitment length"), "commitment")
	rep.Commitment = identity.Signed{}
	if r.err == nil && len(cm) > 0 {
		var err error
		if rep.Commitment, err = ParseSigned(cm); err != nil {
			return fmt.Errorf("report commitment: %w", err)
		}
	}
	gaps := r.u32("gaps")
	if r.err == nil && gaps > len(r.b)/16 {
		return fmt.Errorf("report: %d gaps do not fit in %d bytes", gaps, len(r.b))
	}
	rep.Gaps = nil
	for range gaps {
		start, end := int64(r.u64be("gap start")), int64(r.u64be("gap end"))
		rep.Gaps = append(rep.Gaps, Gap{Start: time.Unix(0, start).UTC(), End: time.Unix(0, end).UTC()})
	}
	return r.done("report")
}

func (r *reader) u64be(what string) uint64 {
	b := r.take(8, what)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

// The binary envelope of a signed message: kind length (1 byte) ‖ kind ‖
// signer's Ed25519 public key (32) ‖ signature (64) ‖ body length (4,
// big-endian) ‖ body. It carries exactly the fields of identity.Signed.
// maxKindLen bounds a kind; every kind of this package is shorter.
const maxKindLen = 64

// AppendSigned appends the binary envelope of m.
func AppendSigned(out []byte, m identity.Signed) ([]byte, error) {
	if len(m.Kind) == 0 || len(m.Kind) > maxKindLen {
		return nil, fmt.Errorf("message kind %q is not 1 to %d bytes", m.Kind, maxKindLen)
	}
	if len(m.Signature) != 64 {
		return nil, fmt.Errorf("%s: signature of %d bytes, want 64", m.Kind, len(m.Signature))
	}
	out = append(out, byte(len(m.Kind)))
	out = append(out, m.Kind...)
	out, err := appendHex32(out, "signer", m.Signer)
	if err != nil {
		return nil, err
	}
	out = append(out, m.Signature...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(m.Body)))
	return append(out, m.Body...), nil
}

// ParseSigned decodes exactly one binary envelope.
func ParseSigned(b []byte) (identity.Signed, error) {
	r := &reader{b: b}
	m := parseEnvelope(r)
	return m, r.done("signed message")
}

func parseEnvelope(r *reader) identity.Signed {
	var kl int
	if k := r.take(1, "kind length"); k != nil {
		kl = int(k[0])
	}
	if r.err == nil && (kl == 0 || kl > maxKindLen) {
		r.err = fmt.Errorf("kind of %d bytes", kl)
	}
	var m identity.Signed
	m.Kind = string(r.take(kl, "kind"))
	m.Signer = r.hex32("signer")
	m.Signature = r.take(64, "signature")
	m.Body = r.take(r.u32("body length"), "body")
	return m
}

// ReadSigned reads one binary envelope from a stream of at most limit
// bytes, allocating no more than the envelope declares and refusing a
// declared body larger than limit before reading it.
func ReadSigned(in io.Reader, limit int64) (identity.Signed, error) {
	var m identity.Signed
	var kl [1]byte
	if _, err := io.ReadFull(in, kl[:]); err != nil {
		return m, fmt.Errorf("signed message: %w", err)
	}
	if kl[0] == 0 || kl[0] > maxKindLen {
		return m, fmt.Errorf("signed message: kind of %d bytes", kl[0])
	}
	head := make([]byte, int(kl[0])+32+64+4)
	if _, err := io.ReadFull(in, head); err != nil {
		return m, fmt.Errorf("signed message: %w", err)
	}
	n := int64(binary.BigEndian.Uint32(head[len(head)-4:]))
	if n > limit-int64(len(head))-1 {
		return m, fmt.Errorf("signed message: body of %d bytes: %w of %d bytes", n, ErrTooLarge, limit)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(in, body); err != nil {
		return m, fmt.Errorf("signed message: body: %w", err)
	}
	k := int(kl[0])
	return identity.Signed{Kind: string(head[:k]), Signer: hex.EncodeToString(head[k : k+32]),
		Signature: head[k+32 : k+96 : k+96], Body: body}, nil
}

// AppendSignedList appends a list of binary envelopes: their number (4
// bytes, big-endian), then each envelope after its length (4).
func AppendSignedList(out []byte, list []identity.Signed) ([]byte, error) {
	out = binary.BigEndian.AppendUint32(out, uint32(len(list)))
	for _, m := range list {
		at := len(out)
		out = append(out, 0, 0, 0, 0)
		var err error
		if out, err = AppendSigned(out, m); err != nil {
			return nil, err
		}
		binary.BigEndian.PutUint32(out[at:], uint32(len(out)-at-4))
	}
	return out, nil
}

// ReadSignedList reads a list written by AppendSignedList from a stream of
// at most limit bytes, holding at most max messages.
func ReadSignedList(in io.Reader, limit int64, max int) ([]identity.Signed, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(in, hdr[:]); err != nil {
		return nil, fmt.Errorf("message list: %w", err)
	}
	n := int(binary.BigEndian.Uint32(hdr[:]))
	if n > max {
		return nil, fmt.Errorf("message list of %d messages, at most %d", n, max)
	}
	left := limit - 4
	out := make([]identity.Signed, 0, min(n, 1024))
	for i := range n {
		if _, err := io.ReadFull(in, hdr[:]); err != nil {
			return nil, fmt.Errorf("message %d of the list: %w", i+1, err)
		}
		size := int64(binary.BigEndian.Uint32(hdr[:]))
		if left -= 4; size > left {
			return nil, fmt.Errorf("message %d of the list: %d bytes: %w of %d bytes", i+1, size, ErrTooLarge, limit)
		}
		lr := &io.LimitedReader{R: in, N: size}
		m, err := ReadSigned(lr, size)
		if err != nil {
			return nil, fmt.Errorf("message %d of the list: %w", i+1, err)
		}
		if lr.N != 0 {
			return nil, fmt.Errorf("message %d of the list: %d bytes after the message", i+1, lr.N)
		}
		left -= size
		out = append(out, m)
	}
	return out, nil
}

// ExpectEnd fails unless in holds nothing more: a body holds one encoding.
func ExpectEnd(in io.Reader) error {
	var one [1]byte
	n, err := io.ReadFull(in, one[:])
	switch {
	case n > 0:
		return errors.New("trailing data after the message")
	case err == io.EOF:
		return nil
	}
	return err
}
