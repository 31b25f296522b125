// Package logbuf is a log sink that components write to while a test reads
// it: slog.New(slog.NewTextHandler(&buf, nil)). It is for tests and the
// demo's checks, not for production logging.
package logbuf

import (
	"bytes"
	"strings"
	"sync"
)

// Buffer is safe for concurrent writes and reads.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// String returns everything written so far.
func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Tail returns the last n lines written, for a failure message.
func (l *Buffer) Tail(n int) string {
	lines := strings.Split(strings.TrimSpace(l.String()), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
