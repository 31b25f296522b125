package source

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os/user"
	"strings"
	"syscall"

	"github.com/privstats/privstats/torctl"
)

// DebianControlSocket and DebianCookieFile are where Debian's tor package
// (tor-service-defaults-torrc) puts its control socket and its
// group-readable authentication cookie; DebianTorGroup is the group both
// belong to.
const (
	DebianControlSocket = "/run/tor/control"
	DebianCookieFile    = "/run/tor/control.authcookie"
	DebianTorGroup      = "debian-tor"
)

// ControlProblem explains a failure to reach or authenticate to tor's
// control port to the operator who has to fix it.
type ControlProblem struct {
	// Fix says what to change; "" when there is nothing to advise (a
	// passing network error).
	Fix string
	// Permanent means retrying will not help until the operator changes
	// something: the socket is missing or not ours to open, the cookie
	// cannot be read, tor refused the credentials.
	Permanent bool
}

// DiagnoseControl says what err, from dialling and authenticating to the
// control port at address (host:port or unix:/path), means and how to fix
// it. Its advice assumes Debian's layout where it has to guess, since that
// is where most relays run.
func DiagnoseControl(address string, err error) ControlProblem {
	sock, isUnix := strings.CutPrefix(address, "unix:")
	var noAuth *torctl.NoAuthMethodError
	var refused *torctl.AuthError
	switch {
	case errors.As(err, &noAuth):
		switch {
		case errors.Is(err, fs.ErrPermission):
			return ControlProblem{Permanent: true, Fix: fmt.Sprintf(
				"this user cannot read tor's authentication cookie: add it to tor's group (sudo adduser %s %s, then log in again or restart privstats) "+
					"and make the cookie group-readable with CookieAuthFileGroupReadable 1 in /etc/tor/torrc (Debian's tor does both for %s)",
				userName(), DebianTorGroup, DebianCookieFile)}
		case errors.Is(err, fs.ErrNotExist):
			return ControlProblem{Permanent: true, Fix: "the cookie file does not exist: leave source.control.cookie_file out to use the one tor names " +
				"(PROTOCOLINFO), or check that CookieAuthentication 1 is in /etc/tor/torrc"}
		}
		return ControlProblem{Permanent: true, Fix: fmt.Sprintf(
			"tor offers %v: allow one of them in source.control.allowed_auth (SAFECOOKIE is best), "+
				"or set CookieAuthentication 1 in /etc/tor/torrc", noAuth.Offered)}
	case errors.As(err, &refused):
		if refused.Method == torctl.AuthHashedPassword {
			return ControlProblem{Permanent: true, Fix: "tor refused the password: source.control.password must be the one " +
				"HashedControlPassword in /etc/tor/torrc was made from (tor --hash-password)"}
		}
		return ControlProblem{Permanent: true, Fix: "tor refused the cookie: source.control.cookie_file names another tor's cookie; " +
			"leave it out to use the one this tor names"}
	}
	var opErr *net.OpError
	if !errors.As(err, &opErr) || opErr.Op != "dial" {
		return ControlProblem{}
	}
	switch {
	case isUnix && errors.Is(err, fs.ErrNotExist):
		return ControlProblem{Permanent: true, Fix: fmt.Sprintf(
			"no control socket at %s: is tor running (systemctl status tor@default)? Debian's tor opens %s; "+
				"elsewhere add ControlSocket %s to torrc, or point source.control.address at tor's ControlPort",
			sock, DebianControlSocket, sock)}
	case isUnix && errors.Is(err, fs.ErrPermission):
		return ControlProblem{Permanent: true, Fix: fmt.Sprintf(
			"this user may not open %s: add it to tor's group (sudo adduser %s %s, then log in again or restart privstats) "+
				"and let the group write the socket with ControlSocketsGroupWritable 1 in /etc/tor/torrc (Debian's tor sets it)",
			sock, userName(), DebianTorGroup)}
	case errors.Is(err, syscall.ECONNREFUSED) && isUnix:
		return ControlProblem{Fix: "tor is not listening on its socket: is it running (systemctl status tor@default)?"}
	case errors.Is(err, syscall.ECONNREFUSED):
		return ControlProblem{Fix: fmt.Sprintf(
			"nothing listens on %s: is tor running? Add ControlPort %s to /etc/tor/torrc, or on Debian use address: unix:%s",
			address, address, DebianControlSocket)}
	}
	return ControlProblem{}
}

// userName is the name an operator would give adduser for this process.
func userName() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return "privstats"
}
