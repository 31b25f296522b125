package tally

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"os"
	"slices"

	"github.com/privstats/privstats/aggregator/wire"
	"github.com/privstats/privstats/identity"
)

// The journal is binary: each entry is a record
//
//	magic "PSJ\x01" (4) ‖ payload length (4, big-endian) ‖ CRC-32C of the payload (4) ‖ payload
//
// and the payload is one of
//
//	'B' ‖ collector (32) ‖ n (1) ‖ n × (keeper (32) ‖ envelope length (4) ‖ signed bundle envelope)
//	'R' ‖ collector (32) ‖ envelope length (4) ‖ signed report envelope
//	'A' ‖ keeper (32) ‖ n (4) ‖ n × collector (32)
//
// with the signed messages in their binary envelopes (wire.AppendSigned),
// so that the journal holds a bundle in its ciphertext plus a few hundred
// bytes, not in base64.

var journalMagic = []byte("PSJ\x01")

const recordHeader = 12

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// encodeEntry is the record of one journal entry.
func encodeEntry(e journalEntry) ([]byte, error) {
	out := append([]byte(nil), journalMagic...)
	out = append(out, 0, 0, 0, 0, 0, 0, 0, 0)
	var err error
	switch {
	case e.Bundles != nil:
		out = append(out, 'B')
		if out, err = appendFP(out, e.Collector); err != nil {
			return nil, err
		}
		// In a fixed order, so that an entry has one encoding.
		keepers := make([]string, 0, len(e.Bundles))
		for k := range e.Bundles {
			keepers = append(keepers, k)
		}
		slices.Sort(keepers)
		out = append(out, byte(len(keepers)))
		for _, k := range keepers {
			if out, err = appendFP(out, k); err != nil {
				return nil, err
			}
			if out, err = appendEnvelope(out, e.Bundles[k]); err != nil {
				return nil, err
			}
		}
	case e.Report != nil:
		out = append(out, 'R')
		if out, err = appendFP(out, e.Collector); err != nil {
			return nil, err
		}
		if out, err = appendEnvelope(out, *e.Report); err != nil {
			return nil, err
		}
	case e.Keeper != "":
		out = append(out, 'A')
		if out, err = appendFP(out, e.Keeper); err != nil {
			return nil, err
		}
		out = binary.BigEndian.AppendUint32(out, uint32(len(e.Acked)))
		for _, fp := range e.Acked {
			if out, err = appendFP(out, fp); err != nil {
				return nil, err
			}
		}
	default:
		return nil, errors.New("empty journal entry")
	}
	payload := out[recordHeader:]
	binary.BigEndian.PutUint32(out[4:], uint32(len(payload)))
	binary.BigEndian.PutUint32(out[8:], crc32.Checksum(payload, crcTable))
	return out, nil
}

func appendFP(out []byte, fp string) ([]byte, error) {
	if len(fp) != 64 {
		return nil, fmt.Errorf("journal: fingerprint %q is not 64 hex digits", fp)
	}
	return hex.AppendDecode(out, []byte(fp))
}

func appendEnvelope(out []byte, m identity.Signed) ([]byte, error) {
	env, err := wire.AppendSigned(nil, m)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	out = binary.BigEndian.AppendUint32(out, uint32(len(env)))
	return append(out, env...), nil
}

// payloadReader consumes a record's payload; the first failure sticks.
type payloadReader struct {
	b   []byte
	err error
}

func (r *payloadReader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.err = fmt.Errorf("entry ends %d bytes short", n-len(r.b))
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func (r *payloadReader) fp() string { return hex.EncodeToString(r.take(32)) }

func (r *payloadReader) u32() int {
	if b := r.take(4); b != nil {
		return int(binary.BigEndian.Uint32(b))
	}
	return 0
}

func (r *payloadReader) envelope() identity.Signed {
	b := r.take(r.u32())
	if r.err != nil {
		return identity.Signed{}
	}
	m, err := wire.ParseSigned(b)
	if err != nil {
		r.err = err
	}
	return m
}

// decodeEntry decodes a record's payload strictly.
func decodeEntry(payload []byte) (journalEntry, error) {
	r := &payloadReader{b: payload}
	var e journalEntry
	kind := r.take(1)
	switch {
	case kind == nil:
	case kind[0] == 'B':
		e.Collector = r.fp()
		var n int
		if b := r.take(1); b != nil {
			n = int(b[0])
		}
		e.Bundles = make(map[string]identity.Signed, n)
		for range n {
			k := r.fp()
			e.Bundles[k] = r.envelope()
		}
	case kind[0] == 'R':
		e.Collector = r.fp()
		m := r.envelope()
		e.Report = &m
	case kind[0] == 'A':
		e.Keeper = r.fp()
		n := r.u32()
		if r.err == nil && n > len(r.b)/32 {
			r.err = fmt.Errorf("ack of %d collectors in %d bytes", n, len(r.b))
		}
		for range n {
			e.Acked = append(e.Acked, r.fp())
		}
	default:
		r.err = fmt.Errorf("unknown entry type %q", kind[0])
	}
	if r.err == nil && len(r.b) > 0 {
		r.err = fmt.Errorf("%d bytes after the entry", len(r.b))
	}
	return e, r.err
}

// record returns the payload of the record at b[0:], or why it is not a
// whole, intact record.
func record(b []byte) ([]byte, error) {
	if len(b) < recordHeader {
		return nil, fmt.Errorf("%d bytes, shorter than a record's header", len(b))
	}
	if !bytes.Equal(b[:4], journalMagic) {
		return nil, errors.New("no record starts here")
	}
	n := int64(binary.BigEndian.Uint32(b[4:]))
	if n == 0 || n > int64(len(b)-recordHeader) {
		return nil, fmt.Errorf("record of %d bytes, %d left in the file", n, len(b)-recordHeader)
	}
	payload := b[recordHeader : recordHeader+n]
	if crc32.Checksum(payload, crcTable) != binary.BigEndian.Uint32(b[8:]) {
		return nil, errors.New("record fails its checksum")
	}
	return payload, nil
}

// intactAfter reports whether an intact record starts anywhere in b: if
// one does, what came before it is damage, not a torn append.
func intactAfter(b []byte) bool {
	for i := 0; ; {
		j := bytes.Index(b[i:], journalMagic)
		if j < 0 {
			return false
		}
		if _, err := record(b[i+j:]); err == nil {
			return true
		}
		i += j + 1
	}
}

// loadJournal replays a round's journal. An append that a crash tore (its
// fsync never returned, so its sender never heard "stored" and retries)
// leaves a record cut short or, on file systems that grow a file before
// writing its data, filled with zeros: a record that is not intact with no
// intact record after it. That tail is cut off here, durably and before
// anything else is appended; otherwise the next entry would follow the
// fragment and the journal would be unreadable after the next restart. A
// record that is not intact but followed by an intact one, or an intact
// one that does not decode, is not a crash's doing and is refused.
func loadJournal(path string, r *roundState, log *slog.Logger) error {
	r.journalEnd = 0
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	off := 0
	for off < len(b) {
		payload, err := record(b[off:])
		if err != nil {
			if intactAfter(b[off+1:]) {
				return fmt.Errorf("%s: damaged journal entry at byte %d (%v); move the file aside to drop this round's bundles and reports", path, off, err)
			}
			break
		}
		e, err := decodeEntry(payload)
		if err != nil {
			return fmt.Errorf("%s: damaged journal entry at byte %d (%v); move the file aside to drop this round's bundles and reports", path, off, err)
		}
		r.apply(e)
		off += recordHeader + len(payload)
	}
	if torn := len(b) - off; torn > 0 {
		if err := cutJournal(path, int64(off)); err != nil {
			return err
		}
		log.Warn("cut a torn entry off the round's journal (a crash while appending; its sender retries)", "journal", path, "kept_bytes", off, "cut_bytes", torn)
	}
	r.journalEnd = int64(off)
	return nil
}
