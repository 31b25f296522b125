package wire

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/privstats/privstats/aggregator/commit"
	"github.com/privstats/privstats/identity"
	"github.com/privstats/privstats/internal/vectortest"
)

// A sealed bundle on the wire, in its binary envelope inside the binary
// list a collector posts, is within 5% + 1 KiB of its ciphertext, at every
// round size from one counter to the most a round may have; so is a
// report of the values and masks it must carry (8 and 5 bytes a counter).
func TestBinaryMessagesAreCompact(t *testing.T) {
	c, k := vectortest.Identity("collector-1"), vectortest.Identity("keeper-1")
	hash := vectortest.ConfigHash()
	for _, n := range []int{1, 129, 1000, 100000} {
		ct := make([]byte, SealedLen(n))
		rand.Read(ct)
		m, err := SignBody(c, KindShareBundle, SealedBundle{ConfigHash: hash, Collector: c.Fingerprint, Keeper: k.Fingerprint, Ciphertext: ct})
		if err != nil {
			t.Fatal(err)
		}
		wire, err := AppendSignedList(nil, []identity.Signed{m})
		if err != nil {
			t.Fatal(err)
		}
		if limit := len(ct) + len(ct)/20 + 1024; len(wire) > limit {
			t.Errorf("%d counters: a bundle of %d ciphertext bytes takes %d on the wire, more than %d", n, len(ct), len(wire), limit)
		}
		values, masks := make([]uint64, n), make([]uint64, n)
		rc, err := SignBody(c, KindCommitment, ReportCommitment{ConfigHash: hash, Collector: c.Fingerprint})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := SignBody(c, KindReport, Report{ConfigHash: hash, Collector: c.Fingerprint, Values: values, Masks: masks, Commitment: rc})
		if err != nil {
			t.Fatal(err)
		}
		wire, err = AppendSigned(nil, rep)
		if err != nil {
			t.Fatal(err)
		}
		payload := (8 + commit.MaskBits/8) * n
		if limit := payload + payload/20 + 1024; len(wire) > limit {
			t.Errorf("%d counters: a report of %d payload bytes takes %d on the wire, more than %d", n, payload, len(wire), limit)
		}
	}
}

// Bundles and reports survive the binary envelope and their binary bodies
// exactly: what is read is what was signed, and it opens to the same
// message.
func TestBinaryRoundTrip(t *testing.T) {
	c := vectortest.Identity("collector-1")
	hash := vectortest.ConfigHash()
	rc, err := SignBody(c, KindCommitment, ReportCommitment{ConfigHash: hash, Collector: c.Fingerprint})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 11, 22, 2, 0, 0, 0, time.UTC)
	want := Report{ConfigHash: hash, Collector: c.Fingerprint, Values: []uint64{1, 2, 3}, Masks: []uint64{0, 1, commit.MaskBound - 1},
		Blinding: commit.Scalar{1}, Commitment: rc, Gaps: []Gap{{Start: start, End: start.Add(time.Minute)}}}
	m, err := SignBody(c, KindReport, want)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := AppendSignedList(nil, []identity.Signed{m, rc})
	if err != nil {
		t.Fatal(err)
	}
	list, err := ReadSignedList(bytes.NewReader(enc), int64(len(enc)), 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || !reflect.DeepEqual(list[0], m) || !reflect.DeepEqual(list[1], rc) {
		t.Fatalf("read %+v, want the two messages written", list)
	}
	var got Report
	if _, err := OpenBody(list[0], KindReport, c.Fingerprint, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("report opens to %+v, want %+v", got, want)
	}
}

// A reader of binary messages is bounded by its limit before it
// allocates: a declared body or list larger than the limit, a list longer
// than allowed, a message with bytes left inside its declared length, and
// a stream cut short are refused.
func TestBinaryReadersRefuse(t *testing.T) {
	c := vectortest.Identity("collector-1")
	m := c.Sign(KindShareBundle, []byte("body"))
	one, err := AppendSigned(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	huge := slices.Clone(one)
	binary.BigEndian.PutUint32(huge[len(one)-len(m.Body)-4:], 1<<31)
	list, err := AppendSignedList(nil, []identity.Signed{m, m})
	if err != nil {
		t.Fatal(err)
	}
	padded := slices.Clone(list)
	binary.BigEndian.PutUint32(padded[4:], uint32(len(one)+1))
	padded = slices.Insert(padded, 8+len(one), 0)
	for name, tc := range map[string]struct {
		read func() error
		want string
	}{
		"body over the limit": {func() error { _, err := ReadSigned(bytes.NewReader(huge), 1<<20); return err }, "exceeds the limit"},
		"cut short":           {func() error { _, err := ReadSigned(bytes.NewReader(one[:len(one)-1]), 1<<20); return err }, "EOF"},
		"list too long":       {func() error { _, err := ReadSignedList(bytes.NewReader(list), 1<<20, 1); return err }, "at most 1"},
		"list over the limit": {func() error { _, err := ReadSignedList(bytes.NewReader(list), int64(len(list)-1), 2); return err }, "exceeds the limit"},
		"bytes after a message": {func() error {
			_, err := ReadSignedList(bytes.NewReader(padded), int64(len(padded)), 2)
			return err
		}, "after the message"},
		"trailing data": {func() error { _, err := ParseSigned(append(slices.Clone(one), 0)); return err }, "trailing"},
	} {
		if err := tc.read(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", name, err, tc.want)
		}
	}
}

// S travels as a bitmap over the config's collectors: it lists its members
// in the config's order whatever order they were given in, takes ⌈n/8⌉
// bytes, and has one encoding: a set of the wrong length, with a bit past
// the last collector, naming a collector twice or one not permitted is
// refused.
func TestMembersBitmap(t *testing.T) {
	var permitted []string
	for i := range 11 {
		permitted = append(permitted, strings.Repeat(string(rune('a'+i)), 64))
	}
	var ag AgreementMsg
	if err := ag.SetCollectors(permitted, []string{permitted[9], permitted[0], permitted[3]}); err != nil {
		t.Fatal(err)
	}
	if want := []string{permitted[0], permitted[3], permitted[9]}; !slices.Equal(ag.Collectors, want) || len(ag.Members) != 2 {
		t.Fatalf("S = %v in %d bytes, want %v in 2", ag.Collectors, len(ag.Members), want)
	}
	var back AgreementMsg
	back.Members = slices.Clone(ag.Members)
	if err := back.Resolve(permitted); err != nil || !slices.Equal(back.Collectors, ag.Collectors) {
		t.Fatalf("resolved %v (%v), want %v", back.Collectors, err, ag.Collectors)
	}
	for name, m := range map[string]Members{
		"too short":           ag.Members[:1],
		"too long":            append(slices.Clone(ag.Members), 0),
		"a bit past the last": {ag.Members[0], ag.Members[1] | 0x80},
	} {
		if _, err := m.Fingerprints(permitted); err == nil {
			t.Errorf("%s: resolved", name)
		}
	}
	if err := new(AgreementMsg).SetCollectors(permitted, []string{permitted[1], permitted[1]}); err == nil {
		t.Error("a collector twice in S was accepted")
	}
	if err := new(AgreementMsg).SetCollectors(permitted, []string{strings.Repeat("z", 64)}); err == nil {
		t.Error("a collector not permitted was accepted in S")
	}
}
