// Package tornet builds a loopback-only private Tor network from Debian's tor
// for end-to-end tests.
//
// [Start] writes a torrc for every node under one directory, generates three
// directory authorities' keys with tor-gencert, starts the relays with
// TestingTorNetwork 1, starts the client and onion service once the
// authorities have voted a consensus that lists every relay, and returns once
// the client can reach both an exit and the onion service (restarting an
// onion service that stays unreachable). [Network.Restart] restarts a node
// as an operator would:
//
//	auth0 auth1 auth2   directory authorities, also non-exit relays
//	middle0 …           non-exit relays
//	exit0 …             exit relays that may exit to 127.0.0.1
//	client0             a client with a SocksPort
//	onion0              an onion service for the test's HTTP server
//
// Every node listens on 127.0.0.1 only and has a ControlPort with cookie
// authentication and a MetricsPort, and relays allow the CONN_BW and
// CELL_STATS events that only test networks may emit, so collectors can be
// tested against real tor output. With Options.ControlSocket every node
// also has a Unix control socket and a group-readable cookie, set up as
// Debian's tor package does.
//
// A typical test:
//
//	if err := tornet.Available(); err != nil {
//		t.Skip(err)
//	}
//	n, err := tornet.Start(ctx, tornet.Options{Dir: t.TempDir(), ServicePort: port})
//	if err != nil {
//		t.Fatal(err)
//	}
//	t.Cleanup(n.Stop)
package tornet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Role is what a node does in the network.
type Role string

// The roles of a test network's nodes. Authorities are also relays, so a
// circuit may use one as its guard or middle hop.
const (
	Authority    Role = "authority"
	Middle       Role = "middle"
	Exit         Role = "exit"
	Client       Role = "client"
	OnionService Role = "onion-service"
)

// IsRelay reports whether nodes of this role carry other nodes' circuits.
func (r Role) IsRelay() bool { return r == Authority || r == Middle || r == Exit }

// DefaultTimeout bounds Start when neither its context nor
// Options.Timeout sets a shorter bound.
const DefaultTimeout = 7 * time.Minute

// OnionPort is the virtual port the onion service publishes
// Options.ServicePort on, so its URL is http://<OnionAddress>/.
const OnionPort = 80

// Options configures a test network. Only Dir is required.
type Options struct {
	// Dir holds each node's DataDirectory, with its torrc and log,
	// typically t.TempDir().
	Dir string

	// ServicePort is the 127.0.0.1 port of an HTTP server the caller runs.
	// When set, the network gets an onion service publishing it on
	// OnionPort, and Start waits until a GET of "/" succeeds both through
	// an exit (http://127.0.0.1:ServicePort/) and through the onion
	// service. When zero there is no onion service and Start only waits for
	// the client to bootstrap.
	ServicePort int

	// Exits and Middles are how many exit and non-exit relays to run
	// besides the three authorities; each defaults to 1.
	Exits, Middles int

	// BasePort, when set, is the first of a consecutive block of ports the
	// nodes listen on. When zero, free ports are picked by the kernel,
	// which is safer when several networks run at once.
	BasePort int

	// Timeout bounds Start (key generation, bootstrap and the first
	// fetches); it defaults to DefaultTimeout. A deadline on Start's
	// context applies as well.
	Timeout time.Duration

	// ControlSocket gives every node, besides its ControlPort, a Unix
	// control socket set up as Debian's tor package does
	// (tor-service-defaults-torrc): "ControlSocket PATH GroupWritable
	// RelaxDirModeCheck", ControlSocketsGroupWritable 1, and the cookie
	// beside the socket with CookieAuthFileGroupReadable 1, so a controller
	// that is only in tor's group can use them. The socket and cookie live
	// in NAME-run/ under Dir (mode 0750, like /run/tor).
	ControlSocket bool

	// Logf, when set, receives progress lines such as how long bootstrap
	// took (pass t.Logf).
	Logf func(format string, args ...any)
}

// Node is one tor process of the network.
type Node struct {
	Name string // tor Nickname, also the node's directory under Options.Dir
	Role Role
	PID  int

	DataDir     string // tor's DataDirectory
	LogPath     string // tor's notice-level log (its stdout) and its stderr
	ControlAddr string // 127.0.0.1:port of the ControlPort
	// ControlSocket is the path of the Unix control socket, with
	// Options.ControlSocket; "" otherwise.
	ControlSocket string
	CookieFile    string // cookie for COOKIE or SAFECOOKIE authentication
	MetricsAddr   string // 127.0.0.1:port of the MetricsPort (Prometheus text)

	ORAddr      string // relays: 127.0.0.1:port of the ORPort
	DirAddr     string // authorities: 127.0.0.1:port of the DirPort
	Fingerprint string // relays: hex RSA identity fingerprint

	SocksAddr    string // client: 127.0.0.1:port of the SocksPort
	OnionAddress string // onion service: "<56 chars>.onion" from its hostname file

	v3ident string   // authorities: v3 identity, for DirAuthority lines
	proc    *process // the running tor, nil before start
}

// Tail returns the last lines of the node's log, for failure messages.
func (n *Node) Tail(lines int) string { return tailFile(n.LogPath, lines) }

// exited reports, without blocking, whether the process has ended and why.
func (n *Node) exited() (bool, error) {
	if n.proc == nil {
		return false, nil
	}
	select {
	case <-n.proc.done:
		return true, n.proc.err
	default:
		return false, nil
	}
}

// Network is a running private Tor network. Its processes live until Stop,
// independently of the context given to Start.
type Network struct {
	Dir   string
	Nodes []*Node

	logf     func(format string, args ...any)
	procCtx  context.Context    // the processes' lifetime
	cancel   context.CancelFunc // ends every process of the network
	stopOnce sync.Once
}

// Available reports whether tor and tor-gencert are installed, with an error
// saying how to install them, so tests can skip with it.
func Available() error {
	var missing []string
	for _, bin := range []string{"tor", "tor-gencert"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, bin)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("tor not installed: apt-get install -y tor, then go test ./tornet (%s not on PATH)",
			strings.Join(missing, " and "))
	}
	return nil
}

// Start builds and starts a network in opts.Dir and waits until it carries
// traffic (see Options.ServicePort). On error every process has already been
// stopped and the error ends with the tail of every node's log. On success
// the caller must call Stop, usually with t.Cleanup(n.Stop).
func Start(ctx context.Context, opts Options) (*Network, error) {
	if opts.Dir == "" {
		return nil, errors.New("tornet: Options.Dir is required")
	}
	if err := Available(); err != nil {
		return nil, fmt.Errorf("tornet: %w", err)
	}
	if opts.Exits < 0 || opts.Middles < 0 {
		return nil, errors.New("tornet: Options.Exits and Options.Middles must not be negative")
	}
	if opts.Exits == 0 {
		opts.Exits = 1
	}
	if opts.Middles == 0 {
		opts.Middles = 1
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	logf := func(string, ...any) {}
	if opts.Logf != nil {
		// The wall-clock time lines progress up with tor's logs.
		logf = func(format string, args ...any) {
			opts.Logf("%s "+format, append([]any{time.Now().Format("15:04:05.000")}, args...)...)
		}
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("tornet: %w", err)
	}

	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	begin := time.Now()

	n := &Network{Dir: dir, logf: logf}
	if err := n.layout(opts); err != nil {
		return nil, fmt.Errorf("tornet: %w", err)
	}
	if err := n.generateKeys(ctx); err != nil {
		return nil, fmt.Errorf("tornet: %w", err)
	}
	logf("tornet: authority keys and relay fingerprints ready after %v", time.Since(begin).Round(time.Millisecond))
	if err := n.writeTorrcs(opts); err != nil {
		return nil, fmt.Errorf("tornet: %w", err)
	}

	// The processes outlive ctx, which only bounds Start; WithoutCancel keeps
	// its values for exec.
	n.procCtx, n.cancel = context.WithCancel(context.WithoutCancel(ctx))
	if err := n.waitReady(ctx, opts, begin); err != nil {
		return nil, n.fail(err)
	}
	logf("tornet: network ready after %v", time.Since(begin).Round(time.Millisecond))
	return n, nil
}

// fail stops the network and returns err with every node's log tail, since
// the caller has no Network to ask for them.
func (n *Network) fail(err error) error {
	n.Stop()
	return fmt.Errorf("tornet: %w\n%s", err, n.Tail(20))
}

// Stop ends every process of the network: SIGTERM to each process group, then
// SIGKILL after a grace period. It waits for them to exit, and is safe to call
// more than once and from a t.Cleanup after a failed test.
func (n *Network) Stop() {
	n.stopOnce.Do(func() {
		if n.cancel == nil {
			return
		}
		n.cancel()
		for _, node := range n.Nodes {
			if node.proc != nil {
				<-node.proc.done
			}
		}
	})
}

// Restart stops the node's tor and starts it again with the same torrc and
// DataDirectory, as an operator restarting a relay would: its PID changes,
// its keys, addresses and ports stay, and its MetricsPort counters start
// again from zero. It returns once the node has bootstrapped and, for the
// onion service, uploaded a fresh descriptor. It must not run concurrently
// with Stop or another Restart of the same node.
func (n *Network) Restart(ctx context.Context, node *Node) error {
	if node.proc == nil {
		return fmt.Errorf("tornet: restart %s: not started", node.Name)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := node.restart(n.procCtx); err != nil {
		return fmt.Errorf("tornet: restart %s: %w", node.Name, err)
	}
	var uploaded <-chan error
	if node.Role == OnionService {
		uploaded = n.watchUploads(ctx, node)
	}
	if err := waitBootstrapped(ctx, node); err != nil {
		return fmt.Errorf("tornet: restart %s: %w\n%s", node.Name, err, node.Tail(20))
	}
	if uploaded != nil {
		select {
		case err := <-uploaded:
			if err != nil {
				return fmt.Errorf("tornet: restart %s: %w\n%s", node.Name, err, node.Tail(20))
			}
		case <-ctx.Done():
			return fmt.Errorf("tornet: restart %s: no descriptor upload: %w", node.Name, context.Cause(ctx))
		}
	}
	n.logf("tornet: restarted %s as PID %d", node.Name, node.PID)
	return nil
}

// Node returns the node with the given name, or nil.
func (n *Network) Node(name string) *Node {
	return n.find(func(node *Node) bool { return node.Name == name })
}

// Client returns the client node, whose SocksAddr HTTPGet uses.
func (n *Network) Client() *Node { return n.first(Client) }

// OnionService returns the onion service node, or nil when
// Options.ServicePort was zero.
func (n *Network) OnionService() *Node { return n.first(OnionService) }

// Relays returns the nodes that carry circuits: authorities, middles and
// exits.
func (n *Network) Relays() []*Node {
	var relays []*Node
	for _, node := range n.Nodes {
		if node.Role.IsRelay() {
			relays = append(relays, node)
		}
	}
	return relays
}

func (n *Network) first(r Role) *Node {
	return n.find(func(node *Node) bool { return node.Role == r })
}

// find returns the first node that match accepts, or nil.
func (n *Network) find(match func(*Node) bool) *Node {
	for _, node := range n.Nodes {
		if match(node) {
			return node
		}
	}
	return nil
}

// Tail returns the last lines of every node's log, each under a header
// naming the node, for failure messages.
func (n *Network) Tail(lines int) string {
	var b strings.Builder
	for _, node := range n.Nodes {
		fmt.Fprintf(&b, "--- %s (%s) %s\n", node.Name, node.Role, node.LogPath)
		if node.proc == nil {
			b.WriteString("[not started]\n")
			continue
		}
		if done, err := node.exited(); done {
			if errors.Is(err, context.Canceled) {
				b.WriteString("[stopped]\n")
			} else {
				fmt.Fprintf(&b, "[exited: %v]\n", err)
			}
		}
		t := node.Tail(lines)
		b.WriteString(t)
		if t != "" && !strings.HasSuffix(t, "\n") {
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// tailFile returns the last lines of the file at path, reading at most its
// last 64 KiB.
func tailFile(path string, lines int) string {
	if lines <= 0 {
		return ""
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("[%v]\n", err)
	}
	defer f.Close()
	const max = 64 << 10
	var off int64
	if fi, err := f.Stat(); err == nil && fi.Size() > max {
		off = fi.Size() - max
	}
	buf := make([]byte, max)
	k, _ := f.ReadAt(buf, off)
	text := string(buf[:k])
	if off > 0 {
		// Drop the partial line the window starts in.
		_, text, _ = strings.Cut(text, "\n")
	}
	text = strings.TrimRight(text, "\n")
	if text == "" {
		return ""
	}
	all := strings.Split(text, "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n") + "\n"
}
