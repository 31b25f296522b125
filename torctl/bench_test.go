package torctl

import (
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// go test ./torctl -run '^$' -bench . -benchmem

func BenchmarkParse(b *testing.B) {
	for _, tt := range hotPathCases() {
		b.Run(tt.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				tt.parse()
			}
		})
	}
}

// BenchmarkReaderEvents reads a stream of relay events from memory.
func BenchmarkReaderEvents(b *testing.B) {
	stream := []byte(crlf(strings.Join(eventLines(b), "\n") + "\n"))
	r := NewReader(&repeatReader{data: stream})
	var rep Reply
	b.ReportAllocs()
	b.SetBytes(int64(len(stream) / len(eventLines(b))))
	for b.Loop() {
		if err := r.ReadReplyInto(&rep); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConnEventPath measures the whole path a collector uses: a Conn
// reads events from the socket, its handler classifies each one and
// parses it into a reused struct.
func BenchmarkConnEventPath(b *testing.B) {
	stream := []byte(crlf("650 BW 155 593\n" +
		"650 ORCONN $0EB7C8AAD759B26D37B857E7080FD2B138B75A1C~relay1 CLOSED REASON=DONE NCIRCS=3 ID=12\n" +
		"650 CONN_BW ID=5 TYPE=EXIT READ=1234 WRITTEN=567\n" +
		"650 STREAM 12 SUCCEEDED 3 127.0.0.1:80\n" +
		"650 CIRC 1 BUILT $6FB0700FCD1BC001536E474C67006DD8359970A0~guard1 BUILD_FLAGS=NEED_CAPACITY PURPOSE=GENERAL\n"))
	nc := &streamConn{r: &repeatReader{data: stream}}
	c := NewConn(nc)
	var (
		n      atomic.Int64
		bw     BWEvent
		orconn ORConnEvent
		connbw ConnBWEvent
		st     StreamEvent
		circ   CircEvent
		target = int64(b.N)
		done   = make(chan struct{})
	)
	b.ReportAllocs()
	b.ResetTimer()
	c.SetEventHandler(func(ev *Event) {
		var err error
		switch ev.Kind {
		case EventBW:
			err = ParseBW(ev.Line(), &bw)
		case EventORConn:
			err = ParseORConn(ev.Line(), &orconn)
		case EventConnBW:
			err = ParseConnBW(ev.Line(), &connbw)
		case EventStream:
			err = ParseStream(ev.Line(), &st)
		case EventCirc:
			err = ParseCirc(ev.Line(), &circ)
		}
		if err != nil {
			panic(err)
		}
		if n.Add(1) == target {
			close(done)
		}
	})
	nc.start()
	<-done
	b.StopTimer()
	c.Close()
}

// streamConn is a net.Conn whose reads come from r once started.
type streamConn struct {
	r       io.Reader
	started atomic.Bool
	closed  atomic.Bool
}

func (s *streamConn) start() { s.started.Store(true) }

func (s *streamConn) Read(p []byte) (int, error) {
	for !s.started.Load() {
		if s.closed.Load() {
			return 0, net.ErrClosed
		}
		time.Sleep(time.Millisecond)
	}
	if s.closed.Load() {
		return 0, net.ErrClosed
	}
	return s.r.Read(p)
}

func (s *streamConn) Write(p []byte) (int, error)      { return len(p), nil }
func (s *streamConn) Close() error                     { s.closed.Store(true); return nil }
func (s *streamConn) LocalAddr() net.Addr              { return &net.UnixAddr{Name: "bench", Net: "unix"} }
func (s *streamConn) RemoteAddr() net.Addr             { return &net.UnixAddr{Name: "bench", Net: "unix"} }
func (s *streamConn) SetDeadline(time.Time) error      { return nil }
func (s *streamConn) SetReadDeadline(time.Time) error  { return nil }
func (s *streamConn) SetWriteDeadline(time.Time) error { return nil }
