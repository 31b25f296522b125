package tornet

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
)

// HTTPGet fetches url through the client's SocksPort, on a new stream each
// time, and returns how many body bytes it read. A status other than 200 is
// an error (with the bytes read so far).
func (n *Network) HTTPGet(ctx context.Context, url string) (int64, error) {
	status, read, err := n.get(ctx, url)
	if err == nil && status != http.StatusOK {
		err = fmt.Errorf("GET %s: %s", url, http.StatusText(status))
	}
	return read, err
}

// get fetches url through the client and returns the response status and
// how many body bytes it read.
func (n *Network) get(ctx context.Context, url string) (int, int64, error) {
	proxy := n.Client().SocksAddr
	transport := &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return dialSOCKS(ctx, proxy, addr)
		},
		// One stream per request, so traffic counts are predictable.
		DisableKeepAlives: true,
	}
	defer transport.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, 0, err
	}
	resp, err := (&http.Client{Transport: transport}).Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	read, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return resp.StatusCode, read, fmt.Errorf("GET %s: reading body: %w", url, err)
	}
	return resp.StatusCode, read, nil
}

// dialSOCKS opens a connection to addr (host:port) through the SOCKS5 proxy
// with a CONNECT request (RFC 1928, no authentication). The host always goes
// as a domain name, which tor resolves at the exit, recognises as .onion, or
// parses as an IP address.
func dialSOCKS(ctx context.Context, proxy, addr string) (net.Conn, error) {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("socks: bad port in %q", addr)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", proxy)
	if err != nil {
		return nil, fmt.Errorf("socks %s: %w", proxy, err)
	}
	// Unblock the handshake when ctx ends; afterwards the HTTP client
	// owns the connection and its deadlines.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	err = socksHandshake(conn, host, uint16(port))
	if !stop() {
		err = errors.Join(err, ctx.Err())
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("socks %s CONNECT %s: %w", proxy, addr, err)
	}
	return conn, nil
}

func socksHandshake(rw io.ReadWriter, host string, port uint16) error {
	// Greeting: version 5, one method, "no authentication".
	if _, err := rw.Write([]byte{5, 1, 0}); err != nil {
		return err
	}
	var choice [2]byte
	if _, err := io.ReadFull(rw, choice[:]); err != nil {
		return err
	}
	if choice[0] != 5 || choice[1] != 0 {
		return fmt.Errorf("proxy wants version %d method %d, not 5 (no authentication)", choice[0], choice[1])
	}

	if len(host) > 255 {
		return fmt.Errorf("host name longer than 255 bytes")
	}
	// version, CONNECT, reserved, domain name
	req := append([]byte{5, 1, 0, 3, byte(len(host))}, host...)
	req = binary.BigEndian.AppendUint16(req, port)
	if _, err := rw.Write(req); err != nil {
		return err
	}

	// Reply: version, status, reserved, bound address type, address, port.
	var head [4]byte
	if _, err := io.ReadFull(rw, head[:]); err != nil {
		return err
	}
	if head[0] != 5 {
		return fmt.Errorf("reply version %d, want 5", head[0])
	}
	if head[1] != 0 {
		return socksError(head[1])
	}
	var skip int
	switch head[3] {
	case 1:
		skip = 4
	case 4:
		skip = 16
	case 3:
		var l [1]byte
		if _, err := io.ReadFull(rw, l[:]); err != nil {
			return err
		}
		skip = int(l[0])
	default:
		return fmt.Errorf("reply address type %d", head[3])
	}
	_, err := io.ReadFull(rw, make([]byte, skip+2))
	return err
}

// socksError is a SOCKS5 reply status other than success: RFC 1928's and
// tor's ExtendedErrors for onion services (tor's socks-extensions.txt).
type socksError byte

func (e socksError) Error() string {
	msg, ok := map[socksError]string{
		0x01: "general failure",
		0x02: "not allowed by ruleset (exit policy)",
		0x03: "network unreachable",
		0x04: "host unreachable",
		0x05: "connection refused",
		0x06: "TTL expired (circuit or stream timed out)",
		0x07: "command not supported",
		0x08: "address type not supported",
		0xF0: "onion service descriptor not found",
		0xF1: "onion service descriptor invalid",
		0xF2: "onion service introduction failed",
		0xF3: "onion service rendezvous failed",
		0xF4: "onion service client authorization missing",
		0xF5: "onion service client authorization wrong",
		0xF6: "onion address invalid",
		0xF7: "onion service introduction timed out",
	}[e]
	if !ok {
		msg = "unknown status"
	}
	return fmt.Sprintf("proxy refused: %s (0x%02X)", msg, byte(e))
}
