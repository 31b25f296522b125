package transport

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// listener completes every TLS handshake itself, within a timeout, before
// Accept hands the connection over. http.Server would do the handshake
// too, but it answers plain HTTP silently and only logs the other
// failures as text; here each refused handshake is reported with its
// cause, so that a server can count and rate-limit them.
type listener struct {
	inner    net.Listener
	conf     *tls.Config
	timeout  time.Duration
	rejected func(remote net.Addr, err error)
	conns    chan net.Conn
	done     chan struct{}
	close    sync.Once
}

// Listen serves TLS with conf on inner. Each accepted connection has
// finished its handshake; one that did not within timeout, or failed, is
// closed and reported to rejected (when set) with an error wrapping
// ErrUnknownPeer, ErrNoCertificate, ErrPlainHTTP, ErrHandshakeTimeout or
// ErrHandshake. A client that spoke plain HTTP is answered 400 first, so a
// person with curl learns why.
func Listen(inner net.Listener, conf *tls.Config, timeout time.Duration, rejected func(remote net.Addr, err error)) net.Listener {
	l := &listener{inner: inner, conf: conf, timeout: timeout, rejected: rejected,
		conns: make(chan net.Conn), done: make(chan struct{})}
	go l.acceptLoop()
	return l
}

func (l *listener) acceptLoop() {
	for {
		raw, err := l.inner.Accept()
		if errors.Is(err, net.ErrClosed) {
			l.Close()
			return
		}
		if err != nil {
			// Out of file descriptors and the like: wait, as
			// http.Server does, rather than spin.
			select {
			case <-time.After(50 * time.Millisecond):
				continue
			case <-l.done:
				return
			}
		}
		go l.handshake(raw)
	}
}

func (l *listener) handshake(raw net.Conn) {
	reported := false
	report := func(err error) {
		if !reported && l.rejected != nil {
			l.rejected(raw.RemoteAddr(), err)
		}
		reported = true
	}
	conf := l.conf
	if verify := conf.VerifyConnection; verify != nil {
		// A peer refused by the check is reported before crypto/tls
		// sends it the alert, so whoever counts refusals has counted it
		// by the time the peer knows.
		conf = conf.Clone()
		conf.VerifyConnection = func(cs tls.ConnectionState) error {
			err := verify(cs)
			if err != nil {
				report(err)
			}
			return err
		}
	}
	c := tls.Server(raw, conf)
	raw.SetDeadline(time.Now().Add(l.timeout))
	err := c.Handshake()
	if err == nil {
		raw.SetDeadline(time.Time{})
		select {
		case l.conns <- c:
		case <-l.done:
			c.Close()
		}
		return
	}
	defer raw.Close()
	if re, ok := errors.AsType[tls.RecordHeaderError](err); ok && re.Conn != nil && looksLikeHTTP(re.RecordHeader) {
		report(fmt.Errorf("%w (%q…)", ErrPlainHTTP, re.RecordHeader[:]))
		raw.Write([]byte("HTTP/1.0 400 Bad Request\r\n\r\nThis is a TLS port: use https:// with the node's identity key.\n"))
		return
	}
	report(classify(err, l.timeout))
}

// classify wraps a failed handshake's error in the cause it shows.
func classify(err error, timeout time.Duration) error {
	for _, known := range []error{ErrUnknownPeer, ErrNoCertificate} {
		if errors.Is(err, known) {
			return err
		}
	}
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return fmt.Errorf("%w after %s", ErrHandshakeTimeout, timeout)
	}
	return fmt.Errorf("%w: %w", ErrHandshake, err)
}

// looksLikeHTTP is whether the first five bytes of a connection are the
// start of an HTTP request.
func looksLikeHTTP(hdr [5]byte) bool {
	for _, m := range []string{"GET /", "HEAD ", "POST ", "PUT /", "OPTIO", "DELET", "PATCH", "CONNE"} {
		if bytes.Equal(hdr[:], []byte(m)) {
			return true
		}
	}
	return false
}

func (l *listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *listener) Close() error {
	err := net.ErrClosed
	l.close.Do(func() {
		close(l.done)
		err = l.inner.Close()
	})
	return err
}

func (l *listener) Addr() net.Addr { return l.inner.Addr() }
