package config

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/privstats/privstats/policy"
	"github.com/privstats/privstats/source"
)

// Collector is collector.yaml, the configuration of a data collector
// running beside one Tor relay.
type Collector struct {
	// IdentityKey is the file of the collector's Ed25519 identity key.
	IdentityKey string `yaml:"identity_key"`
	// Tally is the tally server to connect to, pinned by fingerprint.
	Tally Peer `yaml:"tally"`
	// Keepers pins the share keepers: a round naming others, or carrying
	// round keys they did not sign, is refused.
	Keepers []string `yaml:"keepers"`
	// RelayFingerprint is the tor relay's own fingerprint (40 hex digits),
	// for operators' logs; optional. It is stored upper-case without "$".
	RelayFingerprint string `yaml:"relay_fingerprint"`
	// Source is where the collector's events come from.
	Source Source `yaml:"source"`
	// Record, when set, is a file the collector appends every control-port
	// event line to, for replay as a trace; it holds the relay's raw
	// events, so keep it as private as the relay itself.
	Record string `yaml:"record"`
	// DataDir holds the policy ledger; default ./privstats-collector.
	DataDir string `yaml:"data_dir"`
	// Policy is the collector's local privacy policy; default
	// policy.Defaults().
	Policy policy.Policy `yaml:"policy"`
	// HealthListen is the plain-HTTP address of the collector's health
	// /metrics (never counts); "" (the default) serves none.
	HealthListen string `yaml:"health_listen"`
	// LogFormat is "text" (the default: key=value lines) or "json" (one
	// JSON object a line, for journald or a log shipper).
	LogFormat string `yaml:"log_format"`
}

// Source is the collector's event source: exactly one of its fields is
// set, except that control and metrics_port may be set together (a live
// relay's two feeds, merged).
type Source struct {
	Control     *ControlSource     `yaml:"control"`
	MetricsPort *MetricsPortSource `yaml:"metrics_port"`
	Trace       *TraceSource       `yaml:"trace"`
	Synthetic   *SyntheticSource   `yaml:"synthetic"`
}

// ControlSource reads events from the relay's control port.
type ControlSource struct {
	// Address is host:port or unix:/path/to/socket; default 127.0.0.1:9051.
	Address string `yaml:"address"`
	// Password is for HASHEDPASSWORD authentication.
	Password string `yaml:"password"`
	// CookieFile overrides the cookie file tor names in PROTOCOLINFO.
	CookieFile string `yaml:"cookie_file"`
	// AllowedAuth limits the authentication methods tried, by the names
	// tor's PROTOCOLINFO gives them (SAFECOOKIE, COOKIE, HASHEDPASSWORD,
	// NULL); empty allows all of them. Stored upper-case.
	AllowedAuth []string `yaml:"allowed_auth"`
}

// Network returns the network and address to dial: "unix" and the socket
// path, or "tcp" and host:port.
func (s *ControlSource) Network() (network, address string) {
	if p, ok := strings.CutPrefix(s.Address, "unix:"); ok {
		return "unix", p
	}
	return "tcp", s.Address
}

// MetricsPortSource scrapes tor's MetricsPort; a round counts the increase
// of its counters over the window.
type MetricsPortSource struct {
	// URL is the MetricsPort's address, e.g. http://127.0.0.1:9035/metrics.
	URL string `yaml:"url"`
	// Interval is the time between scrapes between window edges, where
	// the source reads as well; default 10s.
	Interval policy.Duration `yaml:"interval"`
}

// TraceSource replays recorded control-port event lines.
type TraceSource struct {
	Path string `yaml:"path"`
	// Speed is "recorded" (the default: events keep their recorded
	// spacing) or "fast" (as fast as they can be read).
	Speed string `yaml:"speed"`
}

// SyntheticSource generates a made-up workload for demos, tests and scale
// runs.
type SyntheticSource struct {
	// Rate is the mean number of events per second.
	Rate float64 `yaml:"rate"`
	// Seed makes the workload repeatable; unset draws one at random.
	Seed *uint64 `yaml:"seed"`
}

// Trace speeds.
const (
	SpeedRecorded = "recorded"
	SpeedFast     = "fast"
)

// LoadCollector reads and checks a collector.yaml.
func LoadCollector(path string) (*Collector, error) { return loadAs[Collector](path) }

// LoadCollectorSource reads a collector.yaml for `privstats collect
// --check`, which needs only the event source: every key and type is
// checked as LoadCollector does, but of the values only source and
// log_format, so that a file fresh from `privstats init collector`, whose
// tally server and keepers are still to be filled in, can be checked.
func LoadCollectorSource(path string) (*Collector, error) {
	dc := new(Collector)
	err := load(path, dc, func(c *checker, dir string) {
		dc.Source.complete(c, dir)
		c.logFormat(dc.LogFormat)
	})
	if err != nil {
		return nil, err
	}
	return dc, nil
}

func (dc *Collector) setDefaults() {
	*dc = Collector{DataDir: "./privstats-collector", Policy: policy.Defaults(), LogFormat: LogText}
}

var relayFingerprintRE = regexp.MustCompile(`^[0-9A-F]{40}$`)

func (dc *Collector) complete(c *checker, dir string) {
	dc.IdentityKey = resolve(dir, dc.IdentityKey)
	dc.DataDir = resolve(dir, dc.DataDir)
	dc.Record = resolve(dir, dc.Record)

	c.pins(dc.IdentityKey, dc.Tally, dc.Keepers, "the share keepers' fingerprints, which pin them")
	if dc.RelayFingerprint != "" {
		dc.RelayFingerprint = strings.ToUpper(strings.TrimPrefix(dc.RelayFingerprint, "$"))
		if !relayFingerprintRE.MatchString(dc.RelayFingerprint) {
			c.errorf("relay_fingerprint", "%q is not a relay fingerprint (40 hex digits, as in tor's fingerprint file)", dc.RelayFingerprint)
		}
	}
	dc.Source.complete(c, dir)
	c.local(dc.DataDir, dc.Policy, dc.HealthListen)
	c.logFormat(dc.LogFormat)
}

func (s *Source) complete(c *checker, dir string) {
	var set []string
	for name, isSet := range map[string]bool{
		"control": s.Control != nil, "metrics_port": s.MetricsPort != nil,
		"trace": s.Trace != nil, "synthetic": s.Synthetic != nil,
	} {
		if isSet {
			set = append(set, name)
		}
	}
	slices.Sort(set)
	switch len(set) {
	case 0:
		c.errorf("source", "required: exactly one of control, metrics_port, trace or synthetic")
		return
	case 1:
	case 2:
		if s.Control == nil || s.MetricsPort == nil {
			c.errorf("source", "has %s; give exactly one source (only control and metrics_port may be combined)", strings.Join(set, " and "))
			return
		}
	default:
		c.errorf("source", "has %s; give exactly one source (only control and metrics_port may be combined)", strings.Join(set, " and "))
		return
	}

	if s.Control != nil {
		s.Control.complete(c, dir)
	}
	switch {
	case s.Control != nil && s.MetricsPort == nil:
	case s.MetricsPort != nil:
		m := s.MetricsPort
		u, err := url.Parse(m.URL)
		switch {
		case m.URL == "":
			c.errorf("source.metrics_port.url", "required (tor's MetricsPort, e.g. http://127.0.0.1:9035/metrics)")
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			c.errorf("source.metrics_port.url", "%q is not an http:// URL (e.g. http://127.0.0.1:9035/metrics)", m.URL)
		}
		if !c.given("source.metrics_port.interval") {
			m.Interval = policy.Duration(source.DefaultMetricsInterval)
		}
		c.positiveDuration("source.metrics_port.interval", m.Interval, "time between scrapes, e.g. 10s")
	case s.Trace != nil:
		tr := s.Trace
		tr.Path = resolve(dir, tr.Path)
		c.required("source.trace.path", tr.Path, "a file of recorded control-port lines")
		if tr.Speed == "" && !c.given("source.trace.speed") {
			tr.Speed = SpeedRecorded
		}
		if tr.Speed != SpeedRecorded && tr.Speed != SpeedFast {
			c.errorf("source.trace.speed", "%q is not a speed (%s or %s)", tr.Speed, SpeedRecorded, SpeedFast)
		}
	case s.Synthetic != nil:
		c.positiveNumber("source.synthetic.rate", s.Synthetic.Rate, "events per second")
	}
}

// authMethods are the control-port authentication methods of tor's
// control-spec, as PROTOCOLINFO names them.
var authMethods = []string{"SAFECOOKIE", "COOKIE", "HASHEDPASSWORD", "NULL"}

func (s *ControlSource) complete(c *checker, dir string) {
	const path = "source.control"
	if s.Address == "" && !c.given(path+".address") {
		s.Address = source.DefaultControlAddress
	}
	if sock, ok := strings.CutPrefix(s.Address, "unix:"); ok {
		if sock == "" {
			c.errorf(path+".address", "unix: needs a socket path (e.g. unix:/run/tor/control)")
		}
		s.Address = "unix:" + resolve(dir, sock)
	} else {
		c.hostPort(path+".address", s.Address, 1)
	}
	s.CookieFile = resolve(dir, s.CookieFile)
	for i, m := range s.AllowedAuth {
		m = strings.ToUpper(m)
		s.AllowedAuth[i] = m
		p := fmt.Sprintf("%s.allowed_auth[%d]", path, i)
		switch {
		case !slices.Contains(authMethods, m):
			c.errorf(p, "%q is not an authentication method (SAFECOOKIE, COOKIE, HASHEDPASSWORD or NULL)", m)
		case m == "HASHEDPASSWORD" && s.Password == "":
			c.errorf(p, "HASHEDPASSWORD needs password: set too")
		}
	}
}
