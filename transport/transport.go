// Package transport is the one way privstats nodes talk: HTTPS with TLS 1.3
// only, both sides presenting self-signed certificates made from their
// identity keys and pinning each other by fingerprint. Only the tally server
// listens; keepers and collectors are clients that long-poll it, so they work
// behind NAT and firewalls.
package transport

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/privstats/privstats/identity"
)

// peerFingerprint is the identity fingerprint of the leaf a peer presented.
func peerFingerprint(cs tls.ConnectionState) (string, error) {
	if len(cs.PeerCertificates) == 0 {
		return "", ErrNoCertificate
	}
	return identity.CertificateFingerprint(cs.PeerCertificates[0])
}

// Why a handshake was refused; the errors a Listener reports wrap one of
// these, or ErrHandshake for any other failure.
var (
	// ErrUnknownPeer: the peer's fingerprint is not allowed.
	ErrUnknownPeer = errors.New("peer fingerprint not allowed")
	// ErrNoCertificate: the peer presented no certificate.
	ErrNoCertificate = errors.New("peer presented no certificate")
	// ErrPlainHTTP: the client spoke plain HTTP to the TLS port.
	ErrPlainHTTP = errors.New("plain HTTP sent to the TLS port")
	// ErrHandshakeTimeout: the handshake did not finish in time.
	ErrHandshakeTimeout = errors.New("TLS handshake timed out")
	// ErrHandshake: the handshake failed otherwise (another TLS version,
	// a client that hung up, garbage).
	ErrHandshake = errors.New("TLS handshake failed")
)

// pinnedConfig is what both sides' configurations share: TLS 1.3 only, id's
// certificate presented, and every handshake, resumed or not (that is when
// VerifyConnection runs), decided by check from the fingerprint of the key
// the peer presented, or the error of reading it.
func pinnedConfig(id *identity.Identity, check func(fp string, err error) error) (*tls.Config, error) {
	cert, err := id.Certificate()
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:       tls.VersionTLS13,
		Certificates:     []tls.Certificate{cert},
		VerifyConnection: func(cs tls.ConnectionState) error { return check(peerFingerprint(cs)) },
	}, nil
}

// ServerConfig is the TLS configuration of the tally server: TLS 1.3 only, a
// client certificate required, and admitted only when allowed(fingerprint)
// says so. rejected, when set, is told about every refused handshake.
func ServerConfig(id *identity.Identity, allowed func(fp string) bool, rejected func(fp string, err error)) (*tls.Config, error) {
	c, err := pinnedConfig(id, func(fp string, err error) error {
		if err == nil && !allowed(fp) {
			err = fmt.Errorf("%w: %s", ErrUnknownPeer, fp)
		}
		if err != nil && rejected != nil {
			rejected(fp, err)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	// Requested rather than required, so that a client without one reaches
	// the check (which refuses it as ErrNoCertificate) and is reported like
	// any other refused peer; crypto/tls would refuse it before the check.
	c.ClientAuth = tls.RequestClientCert
	// Tickets would let a client skip the pin check on resumption.
	c.SessionTicketsDisabled = true
	return c, nil
}

// ClientConfig is the TLS configuration of a keeper or collector: TLS 1.3
// only, its own certificate presented, and the server accepted only if its
// key has the pinned fingerprint. Chains and names are not checked: the pin
// is the whole of the trust.
func ClientConfig(id *identity.Identity, serverFingerprint string) (*tls.Config, error) {
	c, err := pinnedConfig(id, func(fp string, err error) error {
		if err == nil && fp != serverFingerprint {
			err = fmt.Errorf("server key %s is not the pinned %s", fp, serverFingerprint)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	c.InsecureSkipVerify = true // replaced by the pin check
	return c, nil
}

// PeerFingerprint is the identity of the client of a request on a server
// configured with ServerConfig.
func PeerFingerprint(r *http.Request) string {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return ""
	}
	fp, err := identity.CertificateFingerprint(r.TLS.PeerCertificates[0])
	if err != nil {
		return ""
	}
	return fp
}

// Client is a keeper's or collector's connection to the tally server.
type Client struct {
	base   string
	http   *http.Client
	header http.Header
}

// SetHeader adds a header to every request the client sends from now on.
// Set headers before the client is shared between goroutines.
func (c *Client) SetHeader(key, value string) {
	if c.header == nil {
		c.header = http.Header{}
	}
	c.header.Set(key, value)
}

// NewClient returns a client for the tally server at addr (host:port) whose
// identity is pinned by serverFingerprint. timeout bounds each request,
// including long polls.
func NewClient(id *identity.Identity, addr, serverFingerprint string, timeout time.Duration) (*Client, error) {
	return NewClientDial(id, addr, serverFingerprint, timeout, nil)
}

// Dialer opens the TCP connection a client's TLS runs over.
type Dialer func(ctx context.Context, network, addr string) (net.Conn, error)

// NewClientDial is NewClient with the TCP connections opened by dial (nil:
// a plain dialer with a 10 s timeout). The load test passes one that counts
// the bytes on the wire (loadtest/proxy.go); TLS and pinning are unchanged.
func NewClientDial(id *identity.Identity, addr, serverFingerprint string, timeout time.Duration, dial Dialer) (*Client, error) {
	tlsConf, err := ClientConfig(id, serverFingerprint)
	if err != nil {
		return nil, err
	}
	if dial == nil {
		dial = (&net.Dialer{Timeout: 10 * time.Second}).DialContext
	}
	tr := &http.Transport{
		TLSClientConfig:     tlsConf,
		DialContext:         dial,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 4,
		ForceAttemptHTTP2:   true,
	}
	return &Client{base: "https://" + addr, http: &http.Client{Transport: tr, Timeout: timeout}}, nil
}

// StatusError is a non-2xx answer from the server.
type StatusError struct {
	Code    int
	Message string
}

func (e *StatusError) Error() string { return fmt.Sprintf("tally server: %d %s", e.Code, e.Message) }

// maxResponse bounds what a client reads from the server.
const maxResponse = 64 << 20

// Do sends in (JSON, or no body when nil) to path with the method and decodes
// the JSON answer into out (ignored when nil). A 204 leaves out untouched
// and reports false.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) (bool, error) {
	var body []byte
	contentType := ""
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return false, err
		}
		body, contentType = b, "application/json"
	}
	var read func(io.Reader) error
	if out != nil {
		read = func(r io.Reader) error {
			dec := json.NewDecoder(r)
			if err := dec.Decode(out); err != nil {
				return err
			}
			if dec.More() {
				return errors.New("trailing data after the JSON answer")
			}
			return nil
		}
	}
	return c.DoRaw(ctx, method, path, contentType, body, read)
}

// DoRaw sends body (none when contentType is empty) to path with the
// method and hands a successful answer, at most maxResponse bytes of it,
// to read (ignored when nil) as a stream. A 204 is not read and reports
// false.
func (c *Client) DoRaw(ctx context.Context, method, path, contentType string, body []byte, read func(io.Reader) error) (bool, error) {
	var in io.Reader
	if contentType != "" {
		in = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, in)
	if err != nil {
		return false, err
	}
	for k, vs := range c.header {
		req.Header[k] = vs
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNoContent {
		return false, nil
	}
	limited := io.LimitReader(resp.Body, maxResponse)
	if resp.StatusCode/100 != 2 {
		data, err := io.ReadAll(limited)
		if err != nil {
			return false, err
		}
		return false, &StatusError{Code: resp.StatusCode, Message: string(bytes.TrimSpace(data))}
	}
	if read != nil {
		if err := read(limited); err != nil {
			return false, fmt.Errorf("tally server answer to %s: %w", path, err)
		}
	}
	// Drain what is left, so the connection can be reused.
	io.Copy(io.Discard, limited)
	return true, nil
}

// CloseIdle closes idle connections (on shutdown).
func (c *Client) CloseIdle() { c.http.CloseIdleConnections() }
