package torctl

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// wantReply is a reply written the way control-spec 2.3 draws it.
type wantReply struct {
	code  int
	lines []string // text of each line
	data  map[int]string
}

func checkReply(t *testing.T, got *Reply, want wantReply) {
	t.Helper()
	if got.Code != want.code || len(got.Lines) != len(want.lines) {
		t.Fatalf("reply %d with %d lines, want %d with %d: %q", got.Code, len(got.Lines), want.code, len(want.lines), got.Text())
	}
	for i, l := range got.Lines {
		if string(l.Text) != want.lines[i] {
			t.Errorf("line %d = %q, want %q", i, l.Text, want.lines[i])
		}
		d, ok := want.data[i]
		if l.HasData != ok || string(l.Data) != d {
			t.Errorf("line %d data = %v %q, want %v %q", i, l.HasData, l.Data, ok, d)
		}
	}
}

func TestReaderRecordedTranscripts(t *testing.T) {
	for _, lineEnd := range []string{"CRLF", "LF"} {
		t.Run(lineEnd, func(t *testing.T) {
			in := readTestdata(t, "replies/interleaved.txt") + readTestdata(t, "replies/getinfo.txt")
			if lineEnd == "CRLF" {
				in = crlf(in)
			}
			r := NewReader(strings.NewReader(in))
			for _, want := range []wantReply{
				{650, []string{"BW 155 593"}, nil},
				{650, []string{"CIRC 1000 EXTENDED moria1,moria2 0xBEEF", "EXTRAMAGIC=99", "ANONYMITY=high"}, nil},
				{650, []string{"NS", "OK"}, map[int]string{0: "r moria1 lpXfw1/+uGEym58asExGOXAgzjE 2024-03-01 12:00:00 128.31.0.34 9101 9131\ns Fast Running Stable V2Dir Valid"}},
				{250, []string{"SOCKSPORT=9050", "ORPORT=0"}, nil},
				{552, []string{`Unrecognized event "TB_EMPTY"`}, nil},
				{650, []string{"CONN_BW ID=5 TYPE=EXIT READ=1234 WRITTEN=567"}, nil},
				{250, []string{"ns/all=", "OK"}, map[int]string{0: ""}},
				{250, []string{"version=0.4.8.12", "fingerprint=relay1 0EB7C8AAD759B26D37B857E7080FD2B138B75A1C", "config-text=", "OK"},
					map[int]string{2: "ControlPort 9051\nCookieAuthentication 1\n.a line that began with a dot"}},
			} {
				rep, err := r.ReadReply()
				if err != nil {
					t.Fatalf("after line %d: %v", r.Line(), err)
				}
				checkReply(t, rep, want)
			}
			if _, err := r.ReadReply(); err != io.EOF {
				t.Errorf("at the end: %v, want io.EOF", err)
			}
		})
	}
}

func TestReplyErr(t *testing.T) {
	r := NewReader(strings.NewReader("552 Unrecognized key \"x\"\r\n250 OK\r\n"))
	rep, _ := r.ReadReply()
	var re *ReplyError
	if !errors.As(rep.Err(), &re) || re.Code != 552 || re.Text != `Unrecognized key "x"` {
		t.Errorf("Err = %v", rep.Err())
	}
	rep, _ = r.ReadReply()
	if rep.Err() != nil {
		t.Errorf("250 OK: Err = %v", rep.Err())
	}
}

func TestReaderMalformed(t *testing.T) {
	tests := []struct {
		name, in string
		line     int
		msg      string
	}{
		{"short line", "250\r\n", 1, "too short"},
		{"empty line", "\r\n", 1, "too short"},
		{"letters for a code", "25O OK\r\n", 1, "3-digit status code"},
		{"bad separator", "250*OK\r\n", 1, `unexpected "*"`},
		{"code changes mid reply", "250-a\r\n251 b\r\n", 2, "status code 251 in the middle of a 250 reply"},
		{"event inside a reply", "250-a\r\n650 BW 1 2\r\n250 OK\r\n", 2, "650 in the middle of a 250 reply"},
		{"eof mid reply", "250-a\r\n", 1, "closed in the middle of a reply"},
		{"eof mid line", "250-a\r\n250 O", 2, "closed in the middle of a line"},
		{"eof in data", "250+a=\r\nxyz\r\n", 2, "inside a data block"},
		{"long line", "250 " + strings.Repeat("x", 100) + "\r\n", 1, "longer than 64 bytes"},
		{"long data line", "250+a=\r\n" + strings.Repeat("x", 100) + "\r\n.\r\n250 OK\r\n", 2, "longer than 64 bytes"},
		{"large reply", strings.Repeat("250-"+strings.Repeat("y", 60)+"\r\n", 20) + "250 OK\r\n", 5, "larger than 256 bytes"},
		{"large data", "250+a=\r\n" + strings.Repeat(strings.Repeat("z", 60)+"\r\n", 20) + ".\r\n250 OK\r\n", 6, "larger than 256 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(strings.NewReader(tt.in))
			r.MaxLineBytes, r.MaxReplyBytes = 64, 256
			_, err := r.ReadReply()
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want a ProtocolError", err)
			}
			if pe.Line != tt.line || !strings.Contains(pe.Msg, tt.msg) {
				t.Errorf("err = %v, want line %d and %q", err, tt.line, tt.msg)
			}
			if !strings.HasPrefix(err.Error(), "torctl: line ") {
				t.Errorf("error %q does not name the line", err)
			}
		})
	}
}

func TestReaderLongLinesAcrossBuffer(t *testing.T) {
	long := strings.Repeat("a", 10000) // more than the 4 KiB bufio buffer
	r := NewReader(strings.NewReader("250-" + long + "\r\n250+k=\r\n" + long + "\r\n.\r\n250 OK\r\n"))
	rep, err := r.ReadReply()
	if err != nil {
		t.Fatal(err)
	}
	if string(rep.Lines[0].Text) != long || string(rep.Lines[1].Data) != long {
		t.Error("long line garbled")
	}
}

func TestReaderDotUnescaping(t *testing.T) {
	in := "250+k=\r\n..\r\n...\r\n.x\r\n\r\nplain\r\n.\r\n250 OK\r\n"
	rep, err := NewReader(strings.NewReader(in)).ReadReply()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(rep.Lines[0].Data), ".\n..\nx\n\nplain"; got != want {
		t.Errorf("data = %q, want %q", got, want)
	}
}

func TestReplyClone(t *testing.T) {
	r := NewReader(strings.NewReader("250-a=1\r\n250+b=\r\nline\r\n.\r\n250 OK\r\n251 next\r\n"))
	var rep Reply
	if err := r.ReadReplyInto(&rep); err != nil {
		t.Fatal(err)
	}
	c := rep.Clone()
	if err := r.ReadReplyInto(&rep); err != nil { // reuses the buffer
		t.Fatal(err)
	}
	checkReply(t, c, wantReply{250, []string{"a=1", "b=", "OK"}, map[int]string{1: "line"}})
}

// repeatReader serves the same bytes forever.
type repeatReader struct {
	data []byte
	off  int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.data[r.off:])
		n += c
		r.off = (r.off + c) % len(r.data)
	}
	return n, nil
}

func TestReadReplyIntoDoesNotAllocate(t *testing.T) {
	stream := crlf(strings.Join(eventLines(t), "\n") + "\n")
	r := NewReader(&repeatReader{data: []byte(stream)})
	var rep Reply
	for range 100 { // warm up buffers
		if err := r.ReadReplyInto(&rep); err != nil {
			t.Fatal(err)
		}
	}
	allocs := testing.AllocsPerRun(1000, func() {
		if err := r.ReadReplyInto(&rep); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("ReadReplyInto allocates %v times per event", allocs)
	}
}

// encodeReply writes rep back in wire format, dot-escaping data.
func encodeReply(rep *Reply) []byte {
	var b bytes.Buffer
	code := []byte{byte('0' + rep.Code/100), byte('0' + rep.Code/10%10), byte('0' + rep.Code%10)}
	for i, l := range rep.Lines {
		b.Write(code)
		switch {
		case i == len(rep.Lines)-1:
			b.WriteByte(' ')
		case l.HasData:
			b.WriteByte('+')
		default:
			b.WriteByte('-')
		}
		b.Write(l.Text)
		b.WriteString("\r\n")
		if l.HasData {
			if len(l.Data) > 0 {
				for _, dl := range bytes.Split(l.Data, []byte("\n")) {
					if len(dl) > 0 && dl[0] == '.' {
						b.WriteByte('.')
					}
					b.Write(dl)
					b.WriteString("\r\n")
				}
			}
			b.WriteString(".\r\n")
		}
	}
	return b.Bytes()
}

// A line out of step with the protocol may be an event's text, and an
// event carries the relay's traffic (CONN_BW READ=…): the error, which the
// collector logs, shows what kind of line it was, never its figures.
func TestReaderMalformedShowsNoFigures(t *testing.T) {
	for in, figure := range map[string]string{
		"CONN_BW ID=7 TYPE=OR READ=987654 WRITTEN=123\r\n": "987654",
		"READ=987654\r\n":                     "987654",
		"98\r\n":                              "98",
		"9876543 x\r\n":                       "987",
		"HTTP/1.1 400 Bad Request 987654\r\n": "400",
	} {
		_, err := NewReader(strings.NewReader(in)).ReadReply()
		var pe *ProtocolError
		if !errors.As(err, &pe) {
			t.Fatalf("%q: err = %v, want a ProtocolError", in, err)
		}
		if strings.Contains(err.Error(), figure) {
			t.Errorf("%q: error %q shows %s from the line", in, err, figure)
		}
	}
	// What the line was is still told: an HTTP server is not tor.
	_, err := NewReader(strings.NewReader("HTTP/1.1 400 Bad Request\r\n")).ReadReply()
	if err == nil || !strings.Contains(err.Error(), "HTTP/#.# ### Bad") {
		t.Errorf("err = %v, want the line's start with its digits masked", err)
	}
}
