package tornet

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// authorities is how many directory authorities vote. Three is the smallest
// number for which a consensus needs a real majority.
const authorities = 3

// gencertPassphrase encrypts the authorities' identity keys, which are only
// used once, by tor-gencert, to certify their signing keys.
const gencertPassphrase = "tornet\n"

// layout names the nodes, picks their ports and creates their directories.
func (n *Network) layout(opts Options) error {
	add := func(name string, r Role) {
		n.Nodes = append(n.Nodes, &Node{Name: name, Role: r})
	}
	for i := range authorities {
		add(fmt.Sprintf("auth%d", i), Authority)
	}
	for i := range opts.Middles {
		add(fmt.Sprintf("middle%d", i), Middle)
	}
	for i := range opts.Exits {
		add(fmt.Sprintf("exit%d", i), Exit)
	}
	add("client0", Client)
	if opts.ServicePort != 0 {
		add("onion0", OnionService)
	}

	want := 0
	for _, node := range n.Nodes {
		want += len(node.ports())
	}
	ports, err := pickPorts(want, opts.BasePort)
	if err != nil {
		return err
	}
	for _, node := range n.Nodes {
		for _, p := range node.ports() {
			*p = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
			ports = ports[1:]
		}
		node.DataDir = filepath.Join(n.Dir, node.Name)
		node.LogPath = filepath.Join(node.DataDir, "notice.log")
		node.CookieFile = filepath.Join(node.DataDir, "control_auth_cookie")
		// tor refuses a DataDirectory others can read.
		if err := os.MkdirAll(node.DataDir, 0o700); err != nil {
			return err
		}
		if opts.ControlSocket {
			// Like Debian's /run/tor: tor's group may enter, others not.
			run := filepath.Join(n.Dir, node.Name+"-run")
			if err := os.MkdirAll(run, 0o750); err != nil {
				return err
			}
			if err := os.Chmod(run, 0o750); err != nil { // whatever the umask
				return err
			}
			node.ControlSocket = filepath.Join(run, "control")
			node.CookieFile = filepath.Join(run, "control.authcookie")
		}
	}
	return nil
}

// ports returns the address fields the node listens on.
func (n *Node) ports() []*string {
	p := []*string{&n.ControlAddr, &n.MetricsAddr}
	if n.Role.IsRelay() {
		p = append(p, &n.ORAddr)
	}
	if n.Role == Authority {
		p = append(p, &n.DirAddr)
	}
	if n.Role == Client {
		p = append(p, &n.SocksAddr)
	}
	return p
}

// pickPorts returns count ports: consecutive ones from base, or when base is
// zero ports the kernel reports free. All the probe listeners are held until
// every port is chosen so that no port is handed out twice; another process
// may still take one before tor binds it, in which case tor exits and Start
// reports its log.
func pickPorts(count, base int) ([]int, error) {
	ports := make([]int, count)
	if base != 0 {
		if base < 1024 || base+count > 65536 {
			return nil, fmt.Errorf("BasePort %d: need %d ports between 1024 and 65535", base, count)
		}
		for i := range ports {
			ports[i] = base + i
		}
		return ports, nil
	}
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("pick a free port: %w", err)
		}
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}

// generateKeys gives each authority its v3 signing key and certificate and
// learns every relay's RSA identity fingerprint, which the DirAuthority lines
// and Node.Fingerprint need before any tor starts.
func (n *Network) generateKeys(ctx context.Context) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, node := range n.Nodes {
		if !node.Role.IsRelay() {
			continue
		}
		wg.Go(func() {
			err := node.generateKeys(ctx)
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (n *Node) generateKeys(ctx context.Context) error {
	keys := filepath.Join(n.DataDir, "keys")
	if err := os.MkdirAll(keys, 0o700); err != nil {
		return err
	}
	if n.Role == Authority {
		cert := filepath.Join(keys, "authority_certificate")
		cmd := exec.CommandContext(ctx, "tor-gencert", "--create-identity-key",
			"-m", "12",
			"-a", n.DirAddr,
			"-i", filepath.Join(keys, "authority_identity_key"),
			"-s", filepath.Join(keys, "authority_signing_key"),
			"-c", cert,
			"--passphrase-fd", "0")
		cmd.Stdin = strings.NewReader(gencertPassphrase)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: tor-gencert: %w\n%s", n.Name, err, out)
		}
		if err := n.readV3Ident(cert); err != nil {
			return err
		}
	}

	// --list-fingerprint creates the relay identity keys in DataDirectory,
	// where the relay finds them again when it starts.
	cmd := exec.CommandContext(ctx, "tor", "--list-fingerprint", "--quiet",
		"--defaults-torrc", os.DevNull,
		"--ignore-missing-torrc", "-f", os.DevNull, // /dev/null is not a regular file
		"--DataDirectory", n.DataDir,
		"--Nickname", n.Name,
		"--ORPort", n.ORAddr,
		"--Address", "127.0.0.1")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: tor --list-fingerprint: %w\n%s", n.Name, err, out)
	}
	b, err := os.ReadFile(filepath.Join(n.DataDir, "fingerprint"))
	if err != nil {
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	// The file holds "<nickname> <40 hex digits>".
	f := strings.Fields(string(b))
	if len(f) != 2 || len(f[1]) != 40 {
		return fmt.Errorf("%s: unexpected fingerprint file %q", n.Name, b)
	}
	n.Fingerprint = f[1]
	return nil
}

// readV3Ident reads the authority's v3 identity (the "fingerprint" line of
// its certificate), the v3ident= of its DirAuthority line.
func (n *Node) readV3Ident(cert string) error {
	f, err := os.Open(cert)
	if err != nil {
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "fingerprint "); ok {
			n.v3ident = strings.TrimSpace(v)
			return nil
		}
	}
	return fmt.Errorf("%s: no fingerprint line in %s", n.Name, cert)
}

// writeTorrcs writes each node's torrc into its DataDirectory.
func (n *Network) writeTorrcs(opts Options) error {
	for _, node := range n.Nodes {
		path := filepath.Join(node.DataDir, "torrc")
		if err := os.WriteFile(path, []byte(n.torrc(node, opts)), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// torrc returns the configuration of one node. Every option is checked
// against tor 0.4.9 (tor --list-torrc-options); most follow Chutney's
// "rapid bootstrap" templates.
func (n *Network) torrc(node *Node, opts Options) string {
	var b strings.Builder
	set := func(key string, value any) { fmt.Fprintf(&b, "%s %v\n", key, value) }

	set("TestingTorNetwork", 1)
	set("Nickname", node.Name)
	set("DataDirectory", node.DataDir)
	// start sends stdout to LogPath, so one file has both the messages
	// before the torrc is parsed (such as why it was rejected) and the log.
	if node.Role == Client || node.Role == OnionService {
		// Onion-service steps at info level: why a descriptor was not
		// uploaded or not found shows in the log tail of a failed start.
		set("Log", "[*]notice [rend]info stdout")
	} else {
		set("Log", "notice stdout")
	}
	set("SafeLogging", 0) // the logs are test output; show addresses
	set("ProtocolWarnings", 1)
	set("LogTimeGranularity", 1)
	set("RunAsDaemon", 0) // Stop signals the process it started
	set("Sandbox", 0)
	set("ShutdownWaitLength", 0)
	// tor exits by itself if the test binary dies without calling Stop, for
	// example on a panic or a second interrupt, which the process group
	// would not receive.
	set("__OwningControllerProcess", os.Getpid())

	set("ControlPort", node.ControlAddr)
	set("CookieAuthentication", 1)
	set("CookieAuthFile", node.CookieFile)
	if node.ControlSocket != "" {
		// As /usr/share/tor/tor-service-defaults-torrc has it.
		set("ControlSocket", node.ControlSocket+" GroupWritable RelaxDirModeCheck")
		set("ControlSocketsGroupWritable", 1)
		set("CookieAuthFileGroupReadable", 1)
	}
	set("MetricsPort", node.MetricsAddr)
	set("MetricsPortPolicy", "accept 127.0.0.1")
	// Per-connection byte counts and per-circuit cell counts, which only
	// test networks may emit, for collector tests.
	set("TestingEnableConnBwEvent", 1)
	set("TestingEnableCellStatsEvent", 1)

	for _, a := range n.Nodes {
		if a.Role == Authority {
			set("DirAuthority", fmt.Sprintf("%s orport=%s v3ident=%s %s %s",
				a.Name, port(a.ORAddr), a.v3ident, a.DirAddr, a.Fingerprint))
		}
	}

	// Skip the reachability self-test, and build circuits once two thirds
	// of the (few) relays are known.
	set("AssumeReachable", 1)
	set("PathsNeededToBuildCircuits", 0.67)

	if node.Role.IsRelay() {
		set("ORPort", node.ORAddr)
		set("Address", "127.0.0.1")
		set("ContactInfo", node.Name+"@tornet.invalid")
		set("SocksPort", 0)
	}
	switch node.Role {
	case Authority:
		set("DirPort", node.DirAddr)
		set("AuthoritativeDirectory", 1)
		set("V3AuthoritativeDirectory", 1)
		// A consensus every 10 seconds (5 for the first one). Vote and
		// distribution delays must fit in half an interval, which tor uses
		// while it has no consensus yet. Longer intervals were tried: a
		// relay that missed the first consensus (relays publish their
		// descriptors 10-20 s after starting) then took much longer to
		// reach clients, and onion-service paths with it.
		set("TestingV3AuthInitialVotingInterval", 5)
		set("TestingV3AuthInitialVoteDelay", 2)
		set("TestingV3AuthInitialDistDelay", 2)
		set("V3AuthVotingInterval", 10)
		set("V3AuthVoteDelay", 2)
		set("V3AuthDistDelay", 2)
		set("V3AuthNIntervalsValid", 2)
		// Grant the flags real authorities give only after hours of
		// uptime and measured bandwidth; clients still pick exits by
		// their exit policies.
		set("TestingDirAuthVoteExit", "*")
		set("TestingDirAuthVoteGuard", "*")
		set("TestingDirAuthVoteHSDir", "*")
		set("TestingMinExitFlagThreshold", 0)
		set("ExitRelay", 0)
		set("ExitPolicy", "reject *:*")
	case Middle:
		set("ExitRelay", 0)
		set("ExitPolicy", "reject *:*")
	case Exit:
		set("ExitRelay", 1)
		// Without these the exit refuses 127.0.0.1, the only place a
		// loopback network's streams can go.
		set("ExitPolicyRejectPrivate", 0)
		set("ExitPolicyRejectLocalInterfaces", 0)
		set("ExitPolicy", "accept 127.0.0.1:*")
		// Microdescriptor policy summaries only call a relay an exit if it
		// accepts most of the address space.
		set("ExitPolicy", "accept *:*")
	case Client:
		// ExtendedErrors gives the onion-specific SOCKS5 replies (0xF0…)
		// that tell why an onion service could not be reached.
		set("SocksPort", node.SocksAddr+" ExtendedErrors")
	case OnionService:
		set("SocksPort", 0)
		set("HiddenServiceDir", filepath.Join(node.DataDir, "hs"))
		set("HiddenServicePort", fmt.Sprintf("%d 127.0.0.1:%d", OnionPort, opts.ServicePort))
	}
	return b.String()
}

// port returns the port of a host:port address.
func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}
