package torctl

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// AuthMethod is a control-port authentication method as PROTOCOLINFO
// names it.
type AuthMethod string

// Authentication methods, in the order Authenticate prefers them.
const (
	// AuthSafeCookie proves knowledge of the cookie file without sending
	// it, and checks that tor knows it too (control-spec 3.24).
	AuthSafeCookie AuthMethod = "SAFECOOKIE"
	// AuthCookie sends the cookie file's contents. Deprecated by tor: a
	// fake "tor" could use it to read any 32-byte file we can read.
	AuthCookie AuthMethod = "COOKIE"
	// AuthHashedPassword sends the password tor's HashedControlPassword
	// was made from.
	AuthHashedPassword AuthMethod = "HASHEDPASSWORD"
	// AuthNull: tor asks for nothing.
	AuthNull AuthMethod = "NULL"
)

var authPreference = []AuthMethod{AuthSafeCookie, AuthCookie, AuthHashedPassword, AuthNull}

// AuthOptions says how a controller may authenticate.
type AuthOptions struct {
	// Password for HASHEDPASSWORD; that method is skipped when empty.
	Password string
	// CookiePath overrides the cookie file tor names in PROTOCOLINFO.
	CookiePath string
	// Allowed lists the methods the caller accepts; nil allows all four.
	Allowed []AuthMethod
}

func (o *AuthOptions) allows(m AuthMethod) bool {
	if o.Allowed == nil {
		return true
	}
	for _, a := range o.Allowed {
		if strings.EqualFold(string(a), string(m)) {
			return true
		}
	}
	return false
}

// HMAC keys of SAFECOOKIE (control-spec 3.24).
const (
	safeCookieServerKey = "Tor safe cookie authentication server-to-controller hash"
	safeCookieClientKey = "Tor safe cookie authentication controller-to-server hash"
)

// Authenticate authenticates with the best method that tor offers and
// opts allows: SAFECOOKIE, then COOKIE, then HASHEDPASSWORD, then NULL.
// A cookie method whose cookie file cannot be read is skipped for the
// next one; once a method has been tried on the wire there is no
// fallback, since tor closes the connection after a failed AUTHENTICATE.
// It returns the method it used.
func (c *Conn) Authenticate(ctx context.Context, opts AuthOptions) (AuthMethod, error) {
	pi, err := c.ProtocolInfo(ctx)
	if err != nil {
		return "", err
	}
	offered := func(m AuthMethod) bool {
		for _, o := range pi.AuthMethods {
			if o == m {
				return true
			}
		}
		return false
	}
	var skipped []error
	for _, m := range authPreference {
		if !offered(m) || !opts.allows(m) {
			continue
		}
		switch m {
		case AuthSafeCookie, AuthCookie:
			path := opts.CookiePath
			if path == "" {
				path = pi.CookieFile
			}
			cookie, err := readCookie(path)
			if err != nil {
				skipped = append(skipped, fmt.Errorf("%s: %w", m, err))
				continue
			}
			if m == AuthSafeCookie {
				err = c.authSafeCookie(ctx, cookie, path)
			} else {
				err = c.authenticate(ctx, m, hex.EncodeToString(cookie))
			}
			clear(cookie)
			return m, err
		case AuthHashedPassword:
			if opts.Password == "" {
				skipped = append(skipped, errors.New("HASHEDPASSWORD: no password configured"))
				continue
			}
			// Hex avoids every quoting question about the password.
			return m, c.authenticate(ctx, m, hex.EncodeToString([]byte(opts.Password)))
		case AuthNull:
			return m, c.authenticate(ctx, m, "")
		}
	}
	return "", &NoAuthMethodError{Offered: pi.AuthMethods, Allowed: opts.Allowed, Skipped: skipped}
}

// NoAuthMethodError says that no method tor offers could be used. It
// unwraps to why each usable-looking method was skipped, so that
// errors.Is(err, fs.ErrPermission) finds an unreadable cookie file.
type NoAuthMethodError struct {
	Offered []AuthMethod
	Allowed []AuthMethod // nil: all were allowed
	Skipped []error
}

func (e *NoAuthMethodError) Error() string {
	msg := fmt.Sprintf("torctl: no usable authentication method: tor offers %v", e.Offered)
	if e.Allowed != nil {
		msg += fmt.Sprintf(", we allow %v", e.Allowed)
	}
	if len(e.Skipped) > 0 {
		parts := make([]string, len(e.Skipped))
		for i, s := range e.Skipped {
			parts[i] = s.Error()
		}
		msg += "; skipped " + strings.Join(parts, "; ")
	}
	return msg
}

func (e *NoAuthMethodError) Unwrap() []error { return e.Skipped }

// AuthError says that tor refused our credentials (a wrong cookie or
// password), or that the SAFECOOKIE server hash showed the control port
// does not know the cookie. Retrying will not help until the
// configuration changes.
type AuthError struct {
	Method AuthMethod
	Err    error
}

func (e *AuthError) Error() string { return e.Err.Error() }
func (e *AuthError) Unwrap() error { return e.Err }

func (c *Conn) authenticate(ctx context.Context, m AuthMethod, token string) error {
	cmd := "AUTHENTICATE"
	if token != "" {
		cmd += " " + token
	}
	if _, err := c.Do(ctx, cmd); err != nil {
		err = fmt.Errorf("torctl: %s authentication failed: %w", m, err)
		var re *ReplyError
		if errors.As(err, &re) {
			err = &AuthError{Method: m, Err: err}
		}
		return err
	}
	return nil
}

func (c *Conn) authSafeCookie(ctx context.Context, cookie []byte, path string) error {
	clientNonce := make([]byte, 32)
	rand.Read(clientNonce)
	rep, err := c.Do(ctx, "AUTHCHALLENGE SAFECOOKIE "+hex.EncodeToString(clientNonce))
	if err != nil {
		return fmt.Errorf("torctl: SAFECOOKIE challenge failed: %w", err)
	}
	text := string(rep.Lines[len(rep.Lines)-1].Text)
	a, err := ParseArgs(text)
	if err != nil || len(a.Positional) == 0 || a.Positional[0] != "AUTHCHALLENGE" {
		c.abort(errors.New("torctl: malformed AUTHCHALLENGE reply"))
		return fmt.Errorf("torctl: malformed AUTHCHALLENGE reply %q", clip([]byte(text)))
	}
	serverHash, err1 := hexArg(a, "SERVERHASH")
	serverNonce, err2 := hexArg(a, "SERVERNONCE")
	if err := errors.Join(err1, err2); err != nil {
		c.abort(err)
		return err
	}
	msg := make([]byte, 0, len(cookie)+64)
	msg = append(append(append(msg, cookie...), clientNonce...), serverNonce...)
	defer clear(msg)
	if !hmac.Equal(serverHash, safeCookieHMAC(safeCookieServerKey, msg)) {
		// Whoever answered does not know the cookie: do not go on talking.
		c.abort(errors.New("torctl: SAFECOOKIE server hash mismatch"))
		return &AuthError{Method: AuthSafeCookie, Err: fmt.Errorf("torctl: SAFECOOKIE: the server's hash does not match cookie file %s; "+
			"the control port may not belong to the tor that wrote it", path)}
	}
	return c.authenticate(ctx, AuthSafeCookie, hex.EncodeToString(safeCookieHMAC(safeCookieClientKey, msg)))
}

func safeCookieHMAC(key string, msg []byte) []byte {
	h := hmac.New(sha256.New, []byte(key))
	h.Write(msg)
	return h.Sum(nil)
}

func hexArg(a *Args, key string) ([]byte, error) {
	v, ok := a.Get(key)
	if !ok {
		return nil, fmt.Errorf("torctl: AUTHCHALLENGE reply has no %s", key)
	}
	b, err := hex.DecodeString(v)
	if err != nil || len(b) != 32 {
		return nil, fmt.Errorf("torctl: AUTHCHALLENGE %s is not 32 bytes of hex", key)
	}
	return b, nil
}

// readCookie reads a control auth cookie, which control-spec requires to
// be exactly 32 bytes: anything else is refused rather than sent to tor.
func readCookie(path string) ([]byte, error) {
	if path == "" {
		return nil, errors.New("tor named no cookie file and none was configured")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, 33)
	n, err := io.ReadFull(f, buf)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return nil, fmt.Errorf("reading cookie file %s: %w", path, err)
	}
	if n != 32 {
		clear(buf)
		return nil, fmt.Errorf("cookie file %s is not 32 bytes long", path)
	}
	return buf[:32], nil
}
