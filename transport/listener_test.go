package transport

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestListenerReportsEveryRefusedHandshake opens, over loopback, one
// connection for each way a handshake fails and checks that the listener
// reports each with its cause, and that an admitted client is still served.
func TestListenerReportsEveryRefusedHandshake(t *testing.T) {
	server, client, stranger := newID(t), newID(t), newID(t)
	conf, err := ServerConfig(server, func(fp string) bool { return fp == client.Fingerprint }, nil)
	if err != nil {
		t.Fatal(err)
	}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := make(chan error, 10)
	ln := Listen(inner, conf, 300*time.Millisecond, func(_ net.Addr, err error) { refused <- err })
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`"` + PeerFingerprint(r) + `"`))
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	addr := ln.Addr().String()

	wantRefused := func(cause error) {
		t.Helper()
		select {
		case err := <-refused:
			if !errors.Is(err, cause) {
				t.Fatalf("handshake refused with %v, want %v", err, cause)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no refusal reported, want %v", cause)
		}
	}
	tlsTry := func(c *tls.Config) {
		t.Helper()
		conn, err := tls.Dial("tcp", addr, c)
		if err == nil {
			// TLS 1.3 reports a refused client certificate on first read.
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			conn.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
			_, err = conn.Read(make([]byte, 1))
			conn.Close()
		}
		if err == nil {
			t.Fatal("the handshake succeeded")
		}
	}

	strangerConf, _ := ClientConfig(stranger, server.Fingerprint)
	tlsTry(strangerConf)
	wantRefused(ErrUnknownPeer)

	tlsTry(&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
	wantRefused(ErrNoCertificate)

	old, _ := ClientConfig(client, server.Fingerprint)
	old.MinVersion, old.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	tlsTry(old)
	wantRefused(ErrHandshake)

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	conn.Write([]byte("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	conn.Close()
	if err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("plain HTTP answered %v, %v; want 400", resp, err)
	}
	wantRefused(ErrPlainHTTP)

	// A client that connects and says nothing.
	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	wantRefused(ErrHandshakeTimeout)

	c, _ := NewClient(client, addr, server.Fingerprint, 5*time.Second)
	var who string
	if _, err := c.Do(context.Background(), http.MethodGet, "/", nil, &who); err != nil || who != client.Fingerprint {
		t.Fatalf("admitted client: %q, %v", who, err)
	}
	select {
	case err := <-refused:
		t.Fatalf("an extra refusal was reported: %v", err)
	default:
	}
}
