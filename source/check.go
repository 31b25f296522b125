package source

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/privstats/privstats/stats"
	"github.com/privstats/privstats/torctl"
)

// CheckOptions names the tor a collector would read: its control port, its
// MetricsPort, or both.
type CheckOptions struct {
	// Control is the control port to check; nil if not configured.
	Control *ControlOptions
	// MetricsURL is the MetricsPort to check; "" if not configured.
	MetricsURL string
	// Client fetches MetricsURL; nil for a client with a 10 s timeout.
	Client *http.Client
}

// CheckReport is what Check found out about a tor.
type CheckReport struct {
	Control     *ControlReport     // nil if not configured
	MetricsPort *MetricsPortReport // nil if not configured
	// Statistics says, for every statistic of the catalogue, whether this
	// tor can feed it and why not.
	Statistics []StatisticSupport
}

// ControlReport is what tor's control port told Check.
type ControlReport struct {
	Address    string
	TorVersion string
	AuthMethod torctl.AuthMethod
	// CookieFile is the cookie used, for SAFECOOKIE or COOKIE.
	CookieFile string
	// RelayFingerprint is GETINFO fingerprint; "" when tor is not a relay.
	RelayFingerprint string
	// Events are those of the catalogue's events this tor accepted;
	// Unrecognized those it does not know.
	Events, Unrecognized []string
	// TestingTorNetwork is tor's setting of that name, the only one under
	// which stock tor emits CONN_BW.
	TestingTorNetwork bool
}

// PrivCount reports whether tor knows PrivCount-patched tor's events.
func (r *ControlReport) PrivCount() bool {
	return slices.ContainsFunc(r.Events, func(e string) bool { return strings.HasPrefix(e, "PRIVCOUNT_") })
}

// MetricsPortReport is what tor's MetricsPort served Check.
type MetricsPortReport struct {
	URL string
	// Families are the metric families it exports, sorted.
	Families []string
}

// StatisticSupport says whether this tor can feed one statistic.
type StatisticSupport struct {
	Name   string
	Source string // stats.SourceControl, …
	Fed    bool
	// Why says why not, in words an operator can act on; "" when Fed.
	Why string
}

// CheckError is a failure of Check: which part of tor could not be used,
// why, and what the operator should change.
type CheckError struct {
	Part string // "control port unix:/run/tor/control", "MetricsPort http://…"
	Err  error
	Fix  string // "" when there is no advice beyond the error
}

func (e *CheckError) Error() string { return e.Part + ": " + e.Err.Error() }
func (e *CheckError) Unwrap() error { return e.Err }

// Check connects to tor as a collector would, authenticates, asks which of
// the catalogue's events tor knows and reads its MetricsPort once, then
// says which statistics this tor can feed. It subscribes to nothing for
// longer than the check and reads no counts: the report holds tor's
// version and which event names and metric families exist, never a value.
func Check(ctx context.Context, opts CheckOptions) (*CheckReport, error) {
	if opts.Control == nil && opts.MetricsURL == "" {
		return nil, errors.New("source: nothing to check: configure source.control or source.metrics_port")
	}
	rep := &CheckReport{}
	if opts.Control != nil {
		cr, err := checkControl(ctx, *opts.Control)
		if err != nil {
			return nil, err
		}
		rep.Control = cr
	}
	if opts.MetricsURL != "" {
		mr, err := checkMetricsPort(ctx, opts.MetricsURL, opts.Client)
		if err != nil {
			return nil, err
		}
		rep.MetricsPort = mr
	}
	for _, st := range stats.Catalogue() {
		rep.Statistics = append(rep.Statistics, rep.supports(st))
	}
	return rep, nil
}

// checkTimeout bounds each part of the check when ctx has no deadline.
const checkTimeout = 15 * time.Second

func checkControl(ctx context.Context, o ControlOptions) (*ControlReport, error) {
	network, addr := controlNetwork(o.Address)
	if o.Address == "" {
		o.Address = DefaultControlAddress
	}
	fail := func(err error) (*ControlReport, error) {
		return nil, &CheckError{Part: "control port " + o.Address, Err: err, Fix: DiagnoseControl(o.Address, err).Fix}
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	c, err := torctl.Dial(ctx, network, addr)
	if err != nil {
		return fail(err)
	}
	defer c.Close()
	pi, err := c.ProtocolInfo(ctx)
	if err != nil {
		return fail(err)
	}
	r := &ControlReport{Address: o.Address, TorVersion: pi.TorVersion}
	if r.AuthMethod, err = c.Authenticate(ctx, torctl.AuthOptions{Password: o.Password, CookiePath: o.CookieFile, Allowed: o.AllowedAuth}); err != nil {
		return fail(err)
	}
	if r.AuthMethod == torctl.AuthSafeCookie || r.AuthMethod == torctl.AuthCookie {
		r.CookieFile = cmp.Or(o.CookieFile, pi.CookieFile)
	}
	if info, err := c.GetInfo(ctx, "version"); err == nil && info["version"] != "" {
		r.TorVersion = info["version"]
	}
	// A tor that is not a relay answers 551; the check still stands. Tor
	// answers the bare fingerprint; the fingerprint file it mirrors also
	// has the nickname first.
	if info, err := c.GetInfo(ctx, "fingerprint"); err == nil {
		if f := strings.Fields(info["fingerprint"]); len(f) > 0 {
			r.RelayFingerprint = f[len(f)-1]
		}
	}
	if v, err := c.GetConf(ctx, "TestingTorNetwork"); err == nil {
		r.TestingTorNetwork = v == "1"
	}
	events := o.Events
	if events == nil {
		events = stats.ControlEvents()
	}
	if r.Events, r.Unrecognized, err = c.SetKnownEvents(ctx, events...); err != nil {
		return fail(err)
	}
	return r, nil
}

func checkMetricsPort(ctx context.Context, url string, client *http.Client) (*MetricsPortReport, error) {
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	fams, err := (&metricsPortSampler{url: url, client: client}).scrape(ctx)
	if err != nil {
		return nil, &CheckError{Part: "MetricsPort " + url, Err: err, Fix: metricsPortFix(err)}
	}
	r := &MetricsPortReport{URL: url}
	for name := range fams {
		r.Families = append(r.Families, name)
	}
	slices.Sort(r.Families)
	return r, nil
}

// metricsPortFix advises on a failed MetricsPort read. Tor closes a
// connection from an address its MetricsPortPolicy does not accept without
// a word, which the client sees as an EOF or a reset.
func metricsPortFix(err error) string {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "nothing listens there: add MetricsPort 127.0.0.1:9035 and MetricsPortPolicy accept 127.0.0.1 to /etc/tor/torrc " +
			"(and set source.metrics_port.url to match), then restart tor"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		return "tor hung up: its MetricsPortPolicy does not accept this address; add MetricsPortPolicy accept 127.0.0.1 " +
			"(the address privstats connects from) to /etc/tor/torrc and restart tor"
	}
	return ""
}

// supports says whether this report's tor can feed st, and why not.
func (r *CheckReport) supports(st stats.Statistic) StatisticSupport {
	s := StatisticSupport{Name: st.Name, Source: st.Source}
	if st.Source == stats.SourceMetricsPort {
		switch {
		case r.MetricsPort == nil:
			s.Why = "reads tor's MetricsPort, which is not configured (source.metrics_port)"
		case !slices.Contains(r.MetricsPort.Families, st.Metric):
			s.Why = fmt.Sprintf("this tor's MetricsPort does not export %s (tor 0.4.8 or later, running as a relay, does)", st.Metric)
		default:
			s.Fed = true
		}
		return s
	}
	c := r.Control
	if c == nil {
		s.Why = "reads tor's control port, which is not configured (source.control)"
		return s
	}
	for _, e := range st.Events {
		if slices.Contains(c.Events, e) {
			continue
		}
		switch {
		case st.Source == stats.SourcePrivCount && !c.PrivCount():
			s.Why = "needs PrivCount-patched tor: this tor knows none of the PRIVCOUNT_* events"
		case st.Source == stats.SourcePrivCount:
			s.Why = fmt.Sprintf("needs a PrivCount-patched tor that knows %s (this one knows other PRIVCOUNT_* events: an older patch?)", e)
		default:
			s.Why = fmt.Sprintf("this tor does not know event %s", e)
		}
		return s
	}
	if st.Source == stats.SourceTestNetwork && !c.TestingTorNetwork {
		s.Why = "needs TestingTorNetwork 1 (private test networks only): stock tor emits CONN_BW only there"
		return s
	}
	s.Fed = true
	return s
}

// Fed returns the names of the statistics this tor can feed.
func (r *CheckReport) Fed() []string {
	var out []string
	for _, s := range r.Statistics {
		if s.Fed {
			out = append(out, s.Name)
		}
	}
	return out
}
