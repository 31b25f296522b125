package loadtest

import (
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// proxy forwards TCP connections on loopback to the tally server and counts
// the bytes each way: everything on the wire (TLS records, HTTP headers,
// bodies), so the figure is what the tally server's network would carry.
// The tally server runs as its own process and cannot be instrumented, and
// its peers' clients are internal to them; a forwarder in between sees
// every byte without changing anyone. Copying is TCP to TCP, which Go does
// with splice(2), so the forwarding costs the load generator little CPU.
type proxy struct {
	ln     net.Listener
	target string
	// In is client → tally server, Out tally server → client.
	in, out atomic.Int64

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newProxy(target string) (*proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Go(p.serve)
	return p, nil
}

// Addr is where clients connect.
func (p *proxy) Addr() string { return p.ln.Addr().String() }

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Go(func() { p.forward(c) })
	}
}

func (p *proxy) track(c net.Conn, add bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !add {
		delete(p.conns, c)
		return true
	}
	if p.conns == nil {
		return false // closed
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *proxy) forward(c net.Conn) {
	defer c.Close()
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer s.Close()
	if !p.track(c, true) || !p.track(s, true) {
		return
	}
	defer p.track(c, false)
	defer p.track(s, false)
	var wg sync.WaitGroup
	wg.Go(func() {
		n, _ := io.Copy(s, c)
		p.in.Add(n)
		s.(*net.TCPConn).CloseWrite()
	})
	n, _ := io.Copy(c, s)
	p.out.Add(n)
	c.(*net.TCPConn).CloseWrite()
	wg.Wait()
}

// Close stops accepting, cuts every connection still open and waits for
// the copies, so that the counts are final.
func (p *proxy) Close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}

// wireCounter counts the bytes on the TCP connections it dials, each way,
// as the proxy does, for clients in this process: the simulated collectors.
// A proxy costs two more open files per connection, and 7,000 collectors
// through one would pass the common limit of 20,000 (rlimit.go).
type wireCounter struct {
	// in is client → tally server, out tally server → client.
	in, out atomic.Int64
}

// Dial is a transport.Dialer.
func (w *wireCounter) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &countedConn{Conn: c, w: w}, nil
}

// countedConn adds what passes through it to its wireCounter.
type countedConn struct {
	net.Conn
	w *wireCounter
}

func (c *countedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.w.out.Add(int64(n))
	return n, err
}

func (c *countedConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.w.in.Add(int64(n))
	return n, err
}
