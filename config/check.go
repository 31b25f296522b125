package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/privstats/privstats/aggregator/round"
	"github.com/privstats/privstats/policy"
)

// Peer is a node this one connects to: where it is, and the identity
// fingerprint its TLS certificate must carry.
type Peer struct {
	// Address is host:port.
	Address     string `yaml:"address"`
	Fingerprint string `yaml:"fingerprint"`
}

const fingerprintHint = "a fingerprint is 64 lower-case hex digits, the SHA-256 of the node's Ed25519 public key, as privstats keygen prints it"

func (c *checker) required(path, value, hint string) bool {
	if value == "" {
		c.errorf(path, "required (%s)", hint)
		return false
	}
	return true
}

func (c *checker) fingerprint(path, fp string) bool {
	if err := round.CheckFingerprint(fp); err != nil {
		c.errorf(path, "%v (%s)", err, fingerprintHint)
		return false
	}
	return true
}

// fingerprintList checks a list of fingerprints and that none repeats.
func (c *checker) fingerprintList(path string, fps []string) {
	seen := map[string]int{}
	for i, fp := range fps {
		p := fmt.Sprintf("%s[%d]", path, i)
		if !c.fingerprint(p, fp) {
			continue
		}
		if j, ok := seen[fp]; ok {
			c.errorf(p, "%s is listed twice (also %s[%d])", fp, path, j)
		}
		seen[fp] = i
	}
}

// listenAddress checks a host:port to listen on; port 0 picks a free port.
func (c *checker) listenAddress(path, addr string) {
	c.hostPort(path, addr, 0)
}

// peerAddress checks a host:port to connect to.
func (c *checker) peerAddress(path, addr string) {
	if c.required(path, addr, "host:port of the tally server, e.g. tally.example.org:8443") {
		c.hostPort(path, addr, 1)
	}
}

func (c *checker) hostPort(path, addr string, minPort int) {
	if strings.Contains(addr, "://") {
		c.errorf(path, "%q is a URL; write host:port (e.g. 127.0.0.1:8443)", addr)
		return
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		c.errorf(path, "%q is not host:port (e.g. 127.0.0.1:8443)", addr)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < minPort || n > 65535 {
		c.errorf(path, "port %q of %q must be a number from %d to 65535", port, addr, minPort)
	}
}

func (c *checker) peer(path string, p Peer) {
	if !c.given(path) {
		c.errorf(path, "required (address: host:port and fingerprint: of the tally server)")
		return
	}
	c.peerAddress(path+".address", p.Address)
	if c.required(path+".fingerprint", p.Fingerprint, "the tally server's fingerprint, which pins its TLS certificate") {
		c.fingerprint(path+".fingerprint", p.Fingerprint)
	}
}

// pins checks what a keeper or collector runs under and trusts: its
// identity key, and the tally server and keepers it pins (keepersHint says
// what the keeper list must hold).
func (c *checker) pins(identityKey string, tally Peer, keepers []string, keepersHint string) {
	c.required("identity_key", identityKey, "the file privstats keygen wrote")
	c.peer("tally", tally)
	if len(keepers) == 0 {
		c.errorf("keepers", "required (%s)", keepersHint)
	}
	c.fingerprintList("keepers", keepers)
}

// local checks what a keeper or collector keeps to itself: its policy
// ledger's directory, its policy and its health address.
func (c *checker) local(dataDir string, p policy.Policy, healthListen string) {
	c.required("data_dir", dataDir, "a directory for the policy ledger")
	c.policy("policy", p)
	if healthListen != "" {
		c.listenAddress("health_listen", healthListen)
	}
}

// Log formats of log_format.
const (
	LogText = "text"
	LogJSON = "json"
)

func (c *checker) logFormat(f string) {
	if f != LogText && f != LogJSON {
		c.errorf("log_format", "%q is not a log format (text or json)", f)
	}
}

func (c *checker) positiveDuration(path string, d policy.Duration, hint string) {
	if d <= 0 {
		if c.given(path) {
			c.errorf(path, "%s must be longer than 0 (%s)", d, hint)
		} else {
			c.errorf(path, "required (%s)", hint)
		}
	}
}

// probability checks a δ: above 0 (the Gaussian mechanism needs some) and
// below 1.
func (c *checker) probability(path string, x float64) {
	if !(x > 0 && x < 1) {
		c.errorf(path, "%v must be between 0 and 1, exclusive (a failure probability such as 1e-3)", x)
	}
}

func (c *checker) positiveNumber(path string, x float64, hint string) {
	if !(x > 0) || math.IsInf(x, 0) {
		c.errorf(path, "%v must be a positive number (%s)", x, hint)
	}
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)

// name checks a statistic or series name: it appears in file names, metric
// labels and log lines, so it is kept to letters, digits and _ . -.
func (c *checker) name(path, name, hint string) bool {
	if !c.required(path, name, hint) {
		return false
	}
	if !nameRE.MatchString(name) {
		c.errorf(path, "%q may hold only letters, digits, _, . and -, and not start with . or -", name)
		return false
	}
	return true
}

// policy reports each invalid setting of a policy at its line.
func (c *checker) policy(path string, p policy.Policy) {
	err := p.Validate()
	if err == nil {
		return
	}
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var fe *policy.FieldError
		if errors.As(e, &fe) {
			c.errorf(join(path, fe.Field), "%s", fe.Problem)
		} else {
			c.errorf(path, "%v", e)
		}
	}
}

// resolve makes a path given relative to the config file's directory
// absolute; "" stays "" (not set).
func resolve(dir, path string) string {
	if path == "" || filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(dir, path)
}
