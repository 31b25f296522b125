package source

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/privstats/privstats/internal/wait"
	"github.com/privstats/privstats/torctl"
)

// A trace is a text file of control-port event lines, one a line, each
// optionally preceded by the Unix time it happened, with a fraction:
//
//	# comments and blank lines are skipped
//	1795316008.199000 650 BW 155 593
//	650 ORCONN 198.51.100.23:41234 NEW ID=101
//	# gap 1795316009.000000 1795316012.500000
//
// A "# gap START END" comment, which Record writes, replays as a gap.

// maxTraceLine bounds one line of a trace, like torctl's line limit.
const maxTraceLine = 64 << 10

// Trace replays the trace file at path at the given speed. Run returns
// once the file is exhausted; a line that is neither blank, a comment nor
// an event (with or without a valid timestamp) stops it with an error
// naming file:line.
func Trace(path string, speed Speed) Source {
	return &trace{path: path, speed: speed}
}

type trace struct {
	path  string
	speed Speed
}

func (t *trace) Run(ctx context.Context, _ *Windows, emit func(time.Time, []byte), gap func(start, end time.Time)) error {
	f, err := os.Open(t.path)
	if err != nil {
		return fmt.Errorf("trace: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), maxTraceLine+2)

	// In Recorded mode, recorded time first maps to wall time start.
	var first, start time.Time
	wall := func(rec time.Time) time.Time {
		if first.IsZero() {
			first, start = rec, time.Now()
		}
		return start.Add(rec.Sub(first))
	}
	var tl traceLine
	n := 0
	for sc.Scan() {
		n++
		if n&1023 == 0 && ctx.Err() != nil {
			return nil
		}
		skip, err := parseTraceLine(sc.Bytes(), &tl)
		if err != nil {
			return fmt.Errorf("%s:%d: %w", t.path, n, err)
		}
		if skip {
			continue
		}
		if tl.isGap {
			s, e := tl.at, tl.end
			if t.speed == Recorded {
				s, e = wall(s), wall(e)
				if !wait.Sleep(ctx, time.Until(e)) {
					return nil
				}
			}
			gap(s, e)
			continue
		}
		at := tl.at
		switch {
		case t.speed == Recorded:
			if tl.timed && !wait.Sleep(ctx, time.Until(wall(tl.at))) {
				return nil
			}
			at = time.Now()
		case !tl.timed:
			at = time.Now()
		}
		if ctx.Err() != nil {
			return nil
		}
		emit(at, tl.event)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("%s:%d: line longer than %d bytes", t.path, n+1, maxTraceLine)
		}
		return fmt.Errorf("trace %s: %w", t.path, err)
	}
	return nil
}

// traceLine is one parsed line of a trace.
type traceLine struct {
	at    time.Time
	end   time.Time // of a gap
	timed bool
	isGap bool
	event []byte
}

// parseTraceLine parses one line; skip is set for blank lines and
// comments other than gaps.
func parseTraceLine(b []byte, tl *traceLine) (skip bool, err error) {
	tl.timed, tl.isGap, tl.event = false, false, nil
	b = bytes.TrimRight(b, "\r")
	b = bytes.TrimLeft(b, " \t")
	if len(b) == 0 {
		return true, nil
	}
	if b[0] == '#' {
		rest, ok := bytes.CutPrefix(b, []byte("# gap "))
		if !ok {
			return true, nil
		}
		f := bytes.Fields(rest)
		var ok1, ok2 bool
		if len(f) == 2 {
			tl.at, ok1 = torctl.ParseUnixTime(f[0])
			tl.end, ok2 = torctl.ParseUnixTime(f[1])
		}
		if !ok1 || !ok2 || tl.end.Before(tl.at) {
			return false, fmt.Errorf("bad gap comment %q (want # gap START END, Unix times)", clip(b))
		}
		tl.isGap = true
		return false, nil
	}
	if isEventLine(b) {
		tl.event = b
		return false, nil
	}
	ts, rest, _ := bytes.Cut(b, []byte{' '})
	at, ok := torctl.ParseUnixTime(ts)
	if !ok {
		return false, fmt.Errorf("bad timestamp %q: want Unix seconds with an optional fraction, like 1795316008.199, before the event", clip(ts))
	}
	rest = bytes.TrimLeft(rest, " ")
	if !isEventLine(rest) {
		return false, fmt.Errorf("want an event line (650 …) after the timestamp, got %q", clip(rest))
	}
	tl.at, tl.timed, tl.event = at, true, rest
	return false, nil
}

// isEventLine reports whether b is a control-port event line.
func isEventLine(b []byte) bool {
	return len(b) > 4 && b[0] == '6' && b[1] == '5' && b[2] == '0' && (b[3] == ' ' || b[3] == '-' || b[3] == '+')
}

// appendUnixTime writes t as a trace timestamp, to the microsecond.
func appendUnixTime(dst []byte, t time.Time) []byte {
	us := t.UnixMicro()
	dst = strconv.AppendInt(dst, us/1e6, 10)
	frac := us % 1e6
	dst = append(dst, '.')
	for d := int64(1e5); d > 0; d /= 10 {
		dst = append(dst, byte('0'+frac/d%10))
	}
	return dst
}

func clip(b []byte) []byte {
	if len(b) > 60 {
		return append(b[:60:60], "…"...)
	}
	return b
}

// Record returns a source that runs src and writes every event it emits,
// with its time, to w as a trace (and every gap as a "# gap" comment),
// before passing it on. Replaying the trace with Trace gives the same
// events and gaps. The trace holds the relay's raw events: keep it as
// private as the relay itself.
func Record(w io.Writer, src Source) Source {
	return &recorder{w: w, src: src}
}

type recorder struct {
	w   io.Writer
	src Source
}

// recordFlushEvery bounds how long recorded lines wait in the buffer.
const recordFlushEvery = time.Second

func (r *recorder) Run(ctx context.Context, w *Windows, emit func(time.Time, []byte), gap func(start, end time.Time)) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	bw := bufio.NewWriter(r.w)
	var (
		mu        sync.Mutex
		buf       []byte
		werr      error
		lastFlush = time.Now()
	)
	write := func(b []byte, flush bool) {
		if werr != nil {
			return
		}
		if _, werr = bw.Write(b); werr == nil && (flush || time.Since(lastFlush) >= recordFlushEvery) {
			werr = bw.Flush()
			lastFlush = time.Now()
		}
		if werr != nil {
			cancel(werr)
		}
	}
	err := r.src.Run(ctx, w, func(at time.Time, line []byte) {
		mu.Lock()
		buf = appendUnixTime(buf[:0], at)
		buf = append(buf, ' ')
		start := len(buf)
		buf = append(buf, line...)
		// A line break inside an event would split it in the trace.
		for i := start; i < len(buf); i++ {
			if buf[i] == '\n' || buf[i] == '\r' {
				buf[i] = ' '
			}
		}
		buf = append(buf, '\n')
		write(buf, false)
		mu.Unlock()
		emit(at, line)
	}, func(start, end time.Time) {
		mu.Lock()
		buf = append(buf[:0], "# gap "...)
		buf = appendUnixTime(buf, start)
		buf = append(buf, ' ')
		buf = appendUnixTime(buf, end)
		buf = append(buf, '\n')
		write(buf, true)
		mu.Unlock()
		gap(start, end)
	})
	mu.Lock()
	defer mu.Unlock()
	if werr == nil {
		werr = bw.Flush()
	}
	if werr != nil {
		return fmt.Errorf("recording trace: %w", werr)
	}
	return err
}
