package tornet

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// fakeSOCKS accepts one connection, checks the greeting, records the
// CONNECT request and answers with status; on success it then echoes.
func fakeSOCKS(t *testing.T, status byte) (addr string, request <-chan []byte) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	got := make(chan []byte, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		greeting := make([]byte, 3)
		if _, err := io.ReadFull(c, greeting); err != nil || !bytes.Equal(greeting, []byte{5, 1, 0}) {
			return
		}
		c.Write([]byte{5, 0})
		head := make([]byte, 5) // version, command, reserved, type, name length
		if _, err := io.ReadFull(c, head); err != nil {
			return
		}
		rest := make([]byte, int(head[4])+2)
		if _, err := io.ReadFull(c, rest); err != nil {
			return
		}
		got <- append(head, rest...)
		// Bound address 0.0.0.0:0, as tor answers.
		c.Write([]byte{5, status, 0, 1, 0, 0, 0, 0, 0, 0})
		if status == 0 {
			io.Copy(c, c)
		}
	}()
	return l.Addr().String(), got
}

func TestSOCKSConnectSendsDomainName(t *testing.T) {
	const onion = "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcd.onion"
	for _, host := range []string{onion, "127.0.0.1"} {
		proxy, request := fakeSOCKS(t, 0)
		conn, err := dialSOCKS(t.Context(), proxy, net.JoinHostPort(host, "80"))
		if err != nil {
			t.Fatalf("%s: %v", host, err)
		}
		want := append([]byte{5, 1, 0, 3, byte(len(host))}, host...)
		want = append(want, 0, 80)
		if got := <-request; !bytes.Equal(got, want) {
			t.Errorf("%s: CONNECT request\n got % x\nwant % x", host, got, want)
		}
		// After the reply the connection is a plain byte stream.
		conn.Write([]byte("ping"))
		echo := make([]byte, 4)
		if _, err := io.ReadFull(conn, echo); err != nil || string(echo) != "ping" {
			t.Errorf("%s: echo %q, %v", host, echo, err)
		}
		conn.Close()
	}
}

func TestSOCKSReportsTorExtendedErrors(t *testing.T) {
	proxy, _ := fakeSOCKS(t, 0xF0)
	_, err := dialSOCKS(t.Context(), proxy, "example.onion:80")
	var se socksError
	if !errors.As(err, &se) || se != 0xF0 {
		t.Fatalf("got %v, want socksError 0xF0", err)
	}
	if want := "onion service descriptor not found"; !bytes.Contains([]byte(err.Error()), []byte(want)) {
		t.Errorf("error %q does not say %q", err, want)
	}
}

func TestSOCKSHonoursContext(t *testing.T) {
	// A proxy that accepts and never answers.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			defer c.Close()
			io.Copy(io.Discard, c)
		}
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err = dialSOCKS(ctx, l.Addr().String(), "example.onion:80")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want the handshake to end with the context", err)
	}
}
