package torctl

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Limits a [Reader] applies unless told otherwise.
const (
	// DefaultMaxLineBytes bounds one line of a reply, without its CRLF.
	// Event lines are well under 1 KiB; the longest lines tor sends are
	// single-line GETINFO values.
	DefaultMaxLineBytes = 64 << 10
	// DefaultMaxReplyBytes bounds one whole reply, data blocks included.
	// A full consensus ("GETINFO ns/all") is a few MiB.
	DefaultMaxReplyBytes = 32 << 20
)

// ReplyLine is one line of a reply, without its status code and separator.
type ReplyLine struct {
	// Text is the reply text after "250-", "250+" or "250 ".
	Text []byte
	// Data is the data block that follows a "+" line, with the
	// terminating "." line removed, leading dots unescaped and line ends
	// turned into "\n" (no trailing newline). It is nil unless HasData.
	Data []byte
	// HasData reports whether the line was a data line ("250+").
	HasData bool
}

// Reply is one reply from tor: every line shares the same status code.
// Replies with code 650 are asynchronous events.
type Reply struct {
	Code  int
	Lines []ReplyLine
}

// IsEvent reports whether r is an asynchronous event (code 650).
func (r *Reply) IsEvent() bool { return r.Code == 650 }

// Text returns the text of all lines joined by "\n".
func (r *Reply) Text() string {
	var b strings.Builder
	for i, l := range r.Lines {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.Write(l.Text)
	}
	return b.String()
}

// Err returns nil for a 2xx reply and a *ReplyError otherwise.
func (r *Reply) Err() error {
	if r.Code >= 200 && r.Code < 300 {
		return nil
	}
	msg := ""
	if len(r.Lines) > 0 {
		msg = string(r.Lines[len(r.Lines)-1].Text)
	}
	return &ReplyError{Code: r.Code, Text: msg}
}

// Clone returns a deep copy of r that shares no memory with it.
func (r *Reply) Clone() *Reply {
	n := 0
	for _, l := range r.Lines {
		n += len(l.Text) + len(l.Data)
	}
	buf := make([]byte, 0, n)
	c := &Reply{Code: r.Code, Lines: make([]ReplyLine, len(r.Lines))}
	for i, l := range r.Lines {
		s := len(buf)
		buf = append(buf, l.Text...)
		c.Lines[i].Text = buf[s:len(buf):len(buf)]
		if l.HasData {
			s = len(buf)
			buf = append(buf, l.Data...)
			c.Lines[i].Data = buf[s:len(buf):len(buf)]
			c.Lines[i].HasData = true
		}
	}
	return c
}

// ReplyError is a reply from tor with a status code other than 2xx.
type ReplyError struct {
	Code int
	Text string
}

func (e *ReplyError) Error() string {
	return fmt.Sprintf("tor replied %d %s", e.Code, e.Text)
}

// ProtocolError reports input that does not follow the control protocol.
// After one, the connection cannot be trusted to stay in step with tor and
// should be closed.
type ProtocolError struct {
	Line int // 1-based line number on the connection; 0 if unknown
	Msg  string
	Err  error // underlying cause, if any
}

func (e *ProtocolError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("torctl: line %d: %s", e.Line, e.Msg)
	}
	return "torctl: " + e.Msg
}

func (e *ProtocolError) Unwrap() error { return e.Err }

// A Reader reads replies from tor's side of a control connection.
//
// The zero value is not usable; use [NewReader]. Set the limits before
// the first read.
type Reader struct {
	// MaxLineBytes bounds one line; DefaultMaxLineBytes if zero.
	MaxLineBytes int
	// MaxReplyBytes bounds one reply, data included; DefaultMaxReplyBytes
	// if zero.
	MaxReplyBytes int

	br    *bufio.Reader
	line  int
	arena []byte      // text and data of the reply being read
	spans []lineSpans // offsets into arena, turned into slices at the end
}

// arenaKeepBytes is the largest reply buffer kept between replies.
const arenaKeepBytes = 1 << 20

type lineSpans struct {
	text, textEnd int
	data, dataEnd int
	hasData       bool
}

// NewReader returns a Reader reading from r. If r is a *bufio.Reader of
// at least 4 KiB it is used as is.
func NewReader(r io.Reader) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, 4096)}
}

// Line returns the number of lines read so far.
func (r *Reader) Line() int { return r.line }

// ReadReply reads one whole reply. The returned Reply is the caller's.
// At a clean end of input between replies it returns io.EOF.
func (r *Reader) ReadReply() (*Reply, error) {
	var rep Reply
	if err := r.ReadReplyInto(&rep); err != nil {
		return nil, err
	}
	return rep.Clone(), nil
}

// ReadReplyInto reads one whole reply into rep, reusing rep.Lines. The
// slices in rep point into the Reader's buffer and stay valid only until
// the next read: this is the allocation-free path for event streams.
// At a clean end of input between replies it returns io.EOF.
func (r *Reader) ReadReplyInto(rep *Reply) error {
	maxReply := r.MaxReplyBytes
	if maxReply <= 0 {
		maxReply = DefaultMaxReplyBytes
	}
	if cap(r.arena) > arenaKeepBytes {
		r.arena = nil // let a one-off large reply's buffer go
	}
	r.arena = r.arena[:0]
	r.spans = r.spans[:0]
	rep.Code = 0
	rep.Lines = rep.Lines[:0]
	for first := true; ; first = false {
		start := len(r.arena)
		end, err := r.readLine()
		if err != nil {
			if err == io.EOF {
				if first && end == start {
					return io.EOF
				}
				return &ProtocolError{Line: r.line, Msg: "connection closed in the middle of a reply", Err: io.ErrUnexpectedEOF}
			}
			return err
		}
		line := r.arena[start:end]
		if len(line) < 4 {
			return r.errorf("reply line %q is too short (want a 3-digit status code, a separator and text)", masked(line))
		}
		code, ok := statusCode(line)
		if !ok {
			return r.errorf("reply line %q does not start with a 3-digit status code", masked(line))
		}
		if first {
			rep.Code = code
		} else if code != rep.Code {
			return r.errorf("status code %03d in the middle of a %03d reply", code, rep.Code)
		}
		sp := lineSpans{text: start + 4, textEnd: end}
		switch line[3] {
		case ' ':
			r.spans = append(r.spans, sp)
			r.finish(rep)
			return nil
		case '-':
		case '+':
			sp.hasData = true
			sp.data, sp.dataEnd, err = r.readData(maxReply)
			if err != nil {
				return err
			}
		default:
			return r.errorf("unexpected %q after the status code (want ' ', '-' or '+')", masked(line[3:4]))
		}
		r.spans = append(r.spans, sp)
		if len(r.arena) > maxReply {
			return r.errorf("reply is larger than %d bytes", maxReply)
		}
	}
}

func (r *Reader) finish(rep *Reply) {
	for _, sp := range r.spans {
		l := ReplyLine{Text: r.arena[sp.text:sp.textEnd:sp.textEnd]}
		if sp.hasData {
			l.HasData = true
			l.Data = r.arena[sp.data:sp.dataEnd:sp.dataEnd]
		}
		rep.Lines = append(rep.Lines, l)
	}
}

// readData reads a CmdData block into the arena and returns its offsets.
func (r *Reader) readData(maxReply int) (start, end int, err error) {
	start = len(r.arena)
	for first := true; ; first = false {
		sep := len(r.arena)
		if !first {
			r.arena = append(r.arena, '\n')
		}
		ls := len(r.arena)
		le, err := r.readLine()
		if err != nil {
			if err == io.EOF {
				return 0, 0, &ProtocolError{Line: r.line, Msg: `connection closed inside a data block (no "." line)`, Err: io.ErrUnexpectedEOF}
			}
			return 0, 0, err
		}
		line := r.arena[ls:le]
		if len(line) == 1 && line[0] == '.' {
			r.arena = r.arena[:sep]
			return start, sep, nil
		}
		if len(line) > 0 && line[0] == '.' {
			// Leading dots are doubled on the wire (RFC 2821 4.5.2).
			copy(r.arena[ls:], r.arena[ls+1:le])
			r.arena = r.arena[:le-1]
		}
		if len(r.arena) > maxReply {
			return 0, 0, r.errorf("data block makes the reply larger than %d bytes", maxReply)
		}
	}
}

// readLine appends the next line, without its line end, to the arena and
// returns the arena length after it. A line may end in CRLF or, leniently,
// LF alone. At end of input with nothing read it returns io.EOF.
func (r *Reader) readLine() (int, error) {
	maxLine := r.MaxLineBytes
	if maxLine <= 0 {
		maxLine = DefaultMaxLineBytes
	}
	start := len(r.arena)
	for {
		chunk, err := r.br.ReadSlice('\n')
		if len(r.arena)-start+len(chunk) > maxLine+2 {
			r.line++
			return 0, r.errorf("line is longer than %d bytes", maxLine)
		}
		r.arena = append(r.arena, chunk...)
		switch {
		case err == nil:
			r.line++
			end := len(r.arena) - 1 // drop '\n'
			if end > start && r.arena[end-1] == '\r' {
				end--
			}
			if end-start > maxLine {
				return 0, r.errorf("line is longer than %d bytes", maxLine)
			}
			r.arena = r.arena[:end]
			return end, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == io.EOF:
			if len(r.arena) > start {
				r.line++
				r.arena = r.arena[:start]
				return len(r.arena), &ProtocolError{Line: r.line, Msg: "connection closed in the middle of a line", Err: io.ErrUnexpectedEOF}
			}
			return start, io.EOF
		default:
			return start, err
		}
	}
}

func (r *Reader) errorf(format string, args ...any) error {
	return &ProtocolError{Line: r.line, Msg: fmt.Sprintf(format, args...)}
}

func statusCode(line []byte) (int, bool) {
	code := 0
	for _, c := range line[:3] {
		if c < '0' || c > '9' {
			return 0, false
		}
		code = code*10 + int(c-'0')
	}
	return code, true
}

// clip shortens b for use in an error message.
// masked is the start of a line out of step with the protocol, for an
// error, with every digit shown as #: such a line may be an event's text,
// and events carry the relay's traffic figures, which no error or log may
// show. What is left still tells an HTTP server ("HTTP/#.# ### Bad …")
// or a shell from tor.
func masked(b []byte) []byte {
	out := bytes.Clone(clip(b))
	for i, c := range out {
		if '0' <= c && c <= '9' {
			out[i] = '#'
		}
	}
	return out
}

func clip(b []byte) []byte {
	const limit = 64
	if len(b) > limit {
		return append(bytes.Clone(b[:limit]), "..."...)
	}
	return b
}
