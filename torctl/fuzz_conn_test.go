package torctl

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// Fuzz targets for what a collector reads from tor while connecting and
// authenticating. To fuzz one:
//
//	go test ./torctl -run '^$' -fuzz '^FuzzParseProtocolInfo$'

// FuzzParseProtocolInfo reads an arbitrary PROTOCOLINFO reply. What it
// accepts names methods in upper case, none empty, and comes from a reply
// that has an AUTH line with METHODS.
func FuzzParseProtocolInfo(f *testing.F) {
	s := readTestdata(f, "replies/protocolinfo.txt")
	f.Add([]byte(s))
	f.Add([]byte(crlf(s)))
	f.Add([]byte("250-PROTOCOLINFO x\r\n250 OK\r\n"))
	f.Add([]byte("250-AUTH METHODS=null,,SafeCookie COOKIEFILE=\"a\\\"b\"\r\n250-VERSION Tor=\"0.4.9\r\n250 OK\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(bytes.NewReader(in))
		r.MaxLineBytes, r.MaxReplyBytes = 512, 4096
		rep, err := r.ReadReply()
		if err != nil {
			return
		}
		pi, err := parseProtocolInfo(rep)
		if err != nil {
			return
		}
		sawMethods := false
		for _, l := range rep.Lines {
			if rest, ok := strings.CutPrefix(string(l.Text), "AUTH "); ok && strings.Contains(rest, "METHODS=") {
				sawMethods = true
			}
		}
		if !sawMethods {
			t.Fatalf("accepted a reply without AUTH METHODS: %s", describe(rep))
		}
		for _, m := range pi.AuthMethods {
			if m == "" || string(m) != strings.ToUpper(string(m)) || strings.Contains(string(m), ",") {
				t.Fatalf("method %q from %s", m, describe(rep))
			}
		}
	})
}

// FuzzParseKeywords checks ParseKeywords against ParseArgs: the same
// positional arguments, and each keyword's value as Args.Get gives it.
func FuzzParseKeywords(f *testing.F) {
	f.Add(`AUTHCHALLENGE SERVERHASH=0a0b SERVERNONCE=0c0d`)
	f.Add(`K=1 K=2 "q d" $AB=nick Tor="0.4.8.12"`)
	f.Add(`K="a\"b" =x K=`)
	f.Fuzz(func(t *testing.T, s string) {
		pos, kv, err := ParseKeywords(s)
		a, aerr := ParseArgs(s)
		if (err == nil) != (aerr == nil) {
			t.Fatalf("ParseKeywords error %v, ParseArgs error %v", err, aerr)
		}
		if err != nil {
			return
		}
		if !slices.Equal(pos, a.Positional) {
			t.Fatalf("positional %q, ParseArgs gives %q", pos, a.Positional)
		}
		keys := map[string]bool{}
		for _, k := range a.Keywords {
			keys[k.Key] = true
		}
		if len(kv) != len(keys) {
			t.Fatalf("%d keywords, ParseArgs gives %d distinct", len(kv), len(keys))
		}
		for k, v := range kv {
			if got, ok := a.Get(k); !ok || got != v {
				t.Fatalf("keyword %s = %q, Args.Get gives %q, %v", k, v, got, ok)
			}
		}
	})
}

// fakeControl is a control port that answers each command line with
// answer's bytes (nil hangs up) and records the lines. With once, it hangs
// up after its first answer, so that a reply left incomplete ends the
// connection instead of waiting for more.
type fakeControl struct {
	once  bool
	mu    sync.Mutex
	lines []string
}

func (fc *fakeControl) serve(nc net.Conn, answer func(line string) []byte) {
	defer nc.Close()
	br := bufio.NewReader(nc)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		fc.mu.Lock()
		fc.lines = append(fc.lines, line)
		fc.mu.Unlock()
		out := answer(line)
		if out == nil {
			return
		}
		if _, err := nc.Write(out); err != nil || fc.once {
			return
		}
	}
}

func (fc *fakeControl) sent() []string {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return slices.Clone(fc.lines)
}

// withFakeControl runs a Conn against a fake control port until do returns.
func withFakeControl(once bool, answer func(line string) []byte, do func(c *Conn)) *fakeControl {
	client, server := net.Pipe()
	fc := &fakeControl{once: once}
	done := make(chan struct{})
	go func() { fc.serve(server, answer); close(done) }()
	c := NewConn(client)
	do(c)
	c.Close()
	server.Close()
	<-done
	return fc
}

// FuzzAuthChallenge authenticates with SAFECOOKIE against a control port
// that answers AUTHCHALLENGE with arbitrary text. Without the cookie the
// fuzzer cannot make the server hash, so Authenticate must fail and never
// send AUTHENTICATE. With genuine set, the port puts the genuine hash and
// its nonce among the fuzzed arguments: then whatever is sent must be the
// genuine client hash, so no arrangement of arguments makes the client
// prove the cookie over a nonce the hash was not checked for.
func FuzzAuthChallenge(f *testing.F) {
	f.Add("SERVERHASH=00 SERVERNONCE=00", false)
	f.Add("SERVERHASH="+strings.Repeat("ab", 32)+" SERVERNONCE="+strings.Repeat("cd", 32), false)
	f.Add("", true)
	f.Add("SERVERNONCE="+strings.Repeat("00", 32), true)
	f.Add("X=\"unterminated", true)
	cookie := bytes.Repeat([]byte{0x5a}, 32)
	path := filepath.Join(f.TempDir(), "control_auth_cookie")
	if err := os.WriteFile(path, cookie, 0o600); err != nil {
		f.Fatal(err)
	}
	serverNonce := bytes.Repeat([]byte{0xc3}, 32)
	protocolInfo := []byte("250-PROTOCOLINFO 1\r\n250-AUTH METHODS=SAFECOOKIE COOKIEFILE=" + QuoteString(path) + "\r\n250 OK\r\n")
	f.Fuzz(func(t *testing.T, args string, genuine bool) {
		if strings.ContainsAny(args, "\r\n") {
			return // one reply line
		}
		var wantToken string
		answer := func(line string) []byte {
			switch {
			case line == "PROTOCOLINFO 1":
				return protocolInfo
			case strings.HasPrefix(line, "AUTHCHALLENGE SAFECOOKIE "):
				text := "AUTHCHALLENGE " + args
				if genuine {
					nonce, err := hex.DecodeString(strings.TrimPrefix(line, "AUTHCHALLENGE SAFECOOKIE "))
					if err != nil {
						t.Errorf("client nonce in %q: %v", line, err)
						return nil
					}
					msg := slices.Concat(cookie, nonce, serverNonce)
					wantToken = hex.EncodeToString(safeCookieHMAC(safeCookieClientKey, msg))
					text = "AUTHCHALLENGE SERVERHASH=" + hex.EncodeToString(safeCookieHMAC(safeCookieServerKey, msg)) +
						" SERVERNONCE=" + hex.EncodeToString(serverNonce) + " " + args
				}
				return []byte("250 " + text + "\r\n")
			default:
				return []byte("250 OK\r\n")
			}
		}
		var err error
		fc := withFakeControl(false, answer, func(c *Conn) {
			_, err = c.Authenticate(context.Background(), AuthOptions{Allowed: []AuthMethod{AuthSafeCookie}})
		})
		var sentAuth []string
		for _, l := range fc.sent() {
			if strings.HasPrefix(l, "AUTHENTICATE") {
				sentAuth = append(sentAuth, l)
			}
		}
		switch {
		case !genuine && (err == nil || len(sentAuth) > 0):
			t.Fatalf("challenge %q without the cookie: error %v, sent %q", args, err, sentAuth)
		case len(sentAuth) > 1 || len(sentAuth) == 1 && sentAuth[0] != "AUTHENTICATE "+wantToken:
			t.Fatalf("challenge %q: sent %q, want the genuine client hash", args, sentAuth)
		case err == nil && len(sentAuth) != 1:
			t.Fatalf("challenge %q: authenticated without AUTHENTICATE", args)
		case genuine && args == "" && err != nil:
			t.Fatalf("the genuine challenge alone fails: %v", err)
		}
	})
}

// FuzzCommandStatus answers GETINFO and SETEVENTS with arbitrary replies.
// A command succeeds exactly when its reply has a 2xx status; a refusal is
// a *ReplyError with the reply's code (552 to SETEVENTS an
// *UnrecognizedEventError); and every GETINFO value is one the reply gave
// for its key.
func FuzzCommandStatus(f *testing.F) {
	f.Add([]byte(readTestdata(f, "replies/getinfo.txt")), false)
	f.Add([]byte("552 Unrecognized event \"TB_EMPTY\"\r\n"), true)
	f.Add([]byte("250 OK\r\n"), true)
	f.Add([]byte("551 Internal error\r\n"), false)
	f.Add([]byte("250-version=0.4.8.12\r\n250+config-text=\r\nA 1\r\n.\r\n250 OK\r\n"), false)
	f.Add([]byte("250 version=1\r\n"), false)
	f.Fuzz(func(t *testing.T, reply []byte, setEvents bool) {
		// The Conn's answer is the first reply other than an event that a
		// Reader reads from the same bytes.
		r := NewReader(bytes.NewReader(reply))
		want, rerr := r.ReadReply()
		for rerr == nil && want.IsEvent() {
			want, rerr = r.ReadReply()
		}
		answer := func(string) []byte { return reply }
		var err error
		var values map[string]string
		withFakeControl(true, answer, func(c *Conn) {
			if setEvents {
				err = c.SetEvents(context.Background(), "BW")
			} else {
				values, err = c.GetInfo(context.Background(), "version", "config-text")
			}
		})
		if rerr != nil {
			if err == nil {
				t.Fatalf("%q is no reply, yet the command succeeded", reply)
			}
			return
		}
		ok2xx := want.Code >= 200 && want.Code < 300
		var re *ReplyError
		var ue *UnrecognizedEventError
		switch {
		case !ok2xx && setEvents && want.Code == 552:
			if !errors.As(err, &ue) {
				t.Fatalf("552 to SETEVENTS gave %v", err)
			}
		case !ok2xx:
			if !errors.As(err, &re) || re.Code != want.Code {
				t.Fatalf("status %d gave error %v", want.Code, err)
			}
		case setEvents:
			if err != nil {
				t.Fatalf("status %d to SETEVENTS gave %v", want.Code, err)
			}
		case err == nil:
			given := map[string][]string{}
			for _, l := range want.Lines {
				k, v, _ := strings.Cut(string(l.Text), "=")
				if l.HasData {
					v = string(l.Data)
				}
				given[k] = append(given[k], v)
			}
			for _, k := range slices.Sorted(maps.Keys(values)) {
				if !slices.Contains(given[k], values[k]) {
					t.Fatalf("GETINFO %s = %q, which the reply %q does not give", k, values[k], reply)
				}
			}
		}
	})
}

// FuzzGetConf answers GETCONF with an arbitrary reply. GetConf succeeds
// only on a 2xx reply, with the value of a line of that reply that names
// the key asked for (in any case); a refusal is a *ReplyError with the
// reply's code.
func FuzzGetConf(f *testing.F) {
	f.Add([]byte("250 TestingTorNetwork=1\r\n"))
	f.Add([]byte("250 TestingTorNetwork\r\n"))
	f.Add([]byte("250-ORPort=9001\r\n250 testingtornetwork=0\r\n"))
	f.Add([]byte("250 OK\r\n"))
	f.Add([]byte("552 Unrecognized configuration key \"TestingTorNetwork\"\r\n"))
	f.Add([]byte("650 BW 1 2\r\n250 TestingTorNetwork=1\r\n"))
	f.Add([]byte("250+TestingTorNetwork=\r\n1\r\n.\r\n250 OK\r\n"))
	const key = "TestingTorNetwork"
	f.Fuzz(func(t *testing.T, reply []byte) {
		r := NewReader(bytes.NewReader(reply))
		want, rerr := r.ReadReply()
		for rerr == nil && want.IsEvent() {
			want, rerr = r.ReadReply()
		}
		var got string
		var err error
		withFakeControl(true, func(string) []byte { return reply }, func(c *Conn) {
			got, err = c.GetConf(context.Background(), key)
		})
		switch {
		case rerr != nil:
			if err == nil {
				t.Fatalf("%q is no reply, yet GETCONF gave %q", reply, got)
			}
		case want.Code < 200 || want.Code >= 300:
			var re *ReplyError
			if !errors.As(err, &re) || re.Code != want.Code {
				t.Fatalf("status %d gave %q, %v", want.Code, got, err)
			}
		case err == nil:
			for _, l := range want.Lines {
				if k, v, _ := strings.Cut(string(l.Text), "="); strings.EqualFold(k, key) && v == got {
					return
				}
			}
			t.Fatalf("GETCONF gave %q, which no line of %s gives %s", got, describe(want), key)
		}
	})
}
