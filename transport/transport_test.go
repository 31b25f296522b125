package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/privstats/privstats/identity"
)

// serve runs an HTTPS server with ServerConfig that answers 200 to any
// admitted client and tells who it was.
func serve(t *testing.T, server *identity.Identity, allowed ...string) (string, chan string) {
	t.Helper()
	return serveWith(t, server, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`"` + PeerFingerprint(r) + `"`))
	}), allowed...)
}

// serveWith is serve with another handler.
func serveWith(t *testing.T, server *identity.Identity, h http.Handler, allowed ...string) (string, chan string) {
	t.Helper()
	refused := make(chan string, 10)
	conf, err := ServerConfig(server, func(fp string) bool {
		for _, a := range allowed {
			if a == fp {
				return true
			}
		}
		return false
	}, func(fp string, err error) { refused <- fp })
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(tls.NewListener(ln, conf))
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), refused
}

func newID(t *testing.T) *identity.Identity {
	id, err := identity.New()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestPinnedMutualTLS(t *testing.T) {
	server, client, stranger := newID(t), newID(t), newID(t)
	addr, refused := serve(t, server, client.Fingerprint)

	c, _ := NewClient(client, addr, server.Fingerprint, 5*time.Second)
	var who string
	if _, err := c.Do(context.Background(), http.MethodGet, "/", nil, &who); err != nil {
		t.Fatal(err)
	}
	if who != client.Fingerprint {
		t.Fatalf("server saw %q, want the client's fingerprint", who)
	}

	s, _ := NewClient(stranger, addr, server.Fingerprint, 5*time.Second)
	if _, err := s.Do(context.Background(), http.MethodGet, "/", nil, nil); err == nil {
		t.Fatal("a client outside the allowlist was served")
	}
	select {
	case fp := <-refused:
		if fp != stranger.Fingerprint {
			t.Fatalf("refusal reported for %s, want the stranger", fp)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the refused handshake was not reported")
	}

	wrongPin, _ := NewClient(client, addr, stranger.Fingerprint, 5*time.Second)
	if _, err := wrongPin.Do(context.Background(), http.MethodGet, "/", nil, nil); err == nil || !strings.Contains(err.Error(), "pinned") {
		t.Fatalf("client accepted a server that is not the pinned one: %v", err)
	}
}

func TestOnlyTLS13(t *testing.T) {
	server, client := newID(t), newID(t)
	addr, _ := serve(t, server, client.Fingerprint)
	conf, _ := ClientConfig(client, server.Fingerprint)
	conf.MinVersion, conf.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	conn, err := tls.Dial("tcp", addr, conf)
	if err == nil {
		conn.Close()
		t.Fatal("a TLS 1.2 handshake succeeded")
	}
}

func TestClientWithoutCertificateIsRefused(t *testing.T) {
	server, client := newID(t), newID(t)
	addr, _ := serve(t, server, client.Fingerprint)
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
	if err == nil {
		// TLS 1.3 reports a refused client certificate on first read.
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = conn.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
		if err == nil {
			_, err = conn.Read(make([]byte, 1))
		}
		conn.Close()
	}
	if err == nil {
		t.Fatal("a client without a certificate was served")
	}
}

func TestStatusErrorsCarryTheServersMessage(t *testing.T) {
	server, client := newID(t), newID(t)
	conf, _ := ServerConfig(server, func(string) bool { return true }, nil)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "wrong_round: message is for another round", http.StatusConflict)
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(tls.NewListener(ln, conf))
	defer srv.Close()
	c, _ := NewClient(client, ln.Addr().String(), server.Fingerprint, 5*time.Second)
	_, err := c.Do(context.Background(), http.MethodPost, "/", map[string]int{"x": 1}, nil)
	var se *StatusError
	if !errors.As(err, &se) || se.Code != http.StatusConflict || !strings.Contains(se.Message, "another round") {
		t.Fatalf("err = %v, want a 409 StatusError with the server's message", err)
	}
}

func TestSetHeaderGoesOnEveryRequest(t *testing.T) {
	server, client := newID(t), newID(t)
	addr, _ := serveWith(t, server, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`"` + r.Header.Get("Privstats-Version") + " " + r.Header.Get("Content-Type") + `"`))
	}), client.Fingerprint)
	c, _ := NewClient(client, addr, server.Fingerprint, 5*time.Second)
	c.SetHeader("Privstats-Version", "7")
	for _, in := range []any{nil, map[string]int{"x": 1}} {
		var got string
		if _, err := c.Do(context.Background(), http.MethodPost, "/", in, &got); err != nil {
			t.Fatal(err)
		}
		want := "7 "
		if in != nil {
			want += "application/json"
		}
		if got != want {
			t.Errorf("server saw headers %q, want %q", got, want)
		}
	}
}
