package tornet

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/privstats/privstats/internal/wait"
)

// stopGrace is how long Stop waits after SIGTERM before SIGKILL. tor with
// ShutdownWaitLength 0 exits within a fraction of a second.
const stopGrace = 5 * time.Second

// process is one run of a node's tor.
type process struct {
	kill    context.CancelFunc // ends the process
	done    chan struct{}      // closed when it has exited
	err     error              // why it exited; valid after done is closed
	retired atomic.Bool        // stopped on purpose, to be started again
}

// start runs tor for the node in its own process group, with stdout (its
// log) and stderr appended to LogPath. The process ends when ctx is
// cancelled or the node is restarted.
func (n *Node) start(ctx context.Context) error {
	logFile, err := os.OpenFile(n.LogPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close() // the child keeps its own descriptor
	ctx, kill := context.WithCancel(ctx)
	cmd := exec.CommandContext(ctx, "tor",
		"--defaults-torrc", os.DevNull,
		"-f", filepath.Join(n.DataDir, "torrc"))
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = stopGrace // then exec sends SIGKILL
	if err := cmd.Start(); err != nil {
		kill()
		return err
	}
	p := &process{kill: kill, done: make(chan struct{})}
	n.PID = cmd.Process.Pid
	n.proc = p
	go func() {
		p.err = cmd.Wait()
		kill()
		close(p.done)
	}()
	return nil
}

// restart stops the node's tor, waits for it to exit and starts it again
// with the same torrc and DataDirectory, so it keeps its keys (and an onion
// service its address). The new process ends with ctx.
func (n *Node) restart(ctx context.Context) error {
	old := n.proc
	old.retired.Store(true)
	old.kill()
	<-old.done
	return n.start(ctx)
}

// waitReady starts the relays, and once they have a consensus the client
// and onion service, and waits until the client has bootstrapped and, with
// an onion service, until a GET succeeds through an exit and through the
// service. Any node exiting early ends the wait with the reason. The
// processes run until n.procCtx ends.
func (n *Network) waitReady(ctx context.Context, opts Options, begin time.Time) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	since := func() time.Duration { return time.Since(begin).Round(time.Millisecond) }
	// watch ends the wait if the node's current process exits, unless it
	// was stopped to be restarted.
	watch := func(node *Node) {
		p := node.proc
		go func() {
			select {
			case <-p.done:
				if !p.retired.Load() {
					cancel(fmt.Errorf("%s exited during start: %v", node.Name, p.err))
				}
			case <-ctx.Done():
			}
		}()
	}
	start := func(relays bool) error {
		for _, node := range n.Nodes {
			if node.Role.IsRelay() != relays {
				continue
			}
			if err := node.start(n.procCtx); err != nil {
				return fmt.Errorf("start %s: %w", node.Name, err)
			}
			watch(node)
		}
		return nil
	}

	// Clients that start before the first consensus back off exponentially
	// between attempts to fetch it, which made bootstrap take up to twice
	// as long.
	if err := start(true); err != nil {
		return err
	}
	n.logf("tornet: started %d relays in %s", len(n.Relays()), n.Dir)
	if err := n.waitConsensus(ctx); err != nil {
		return err
	}
	n.logf("tornet: a consensus with every relay published after %v", since())
	if err := start(false); err != nil {
		return err
	}

	hs := n.OnionService()
	var uploaded <-chan error
	if hs != nil {
		uploaded = n.watchUploads(ctx, hs)
	}

	client := n.Client()
	if err := waitBootstrapped(ctx, client); err != nil {
		return err
	}
	n.logf("tornet: %s bootstrapped after %v", client.Name, since())
	if hs == nil {
		return nil
	}

	exitURL := fmt.Sprintf("http://127.0.0.1:%d/", opts.ServicePort)
	err := retry(ctx, time.Second, func(ctx context.Context) error {
		_, _, err := n.get(ctx, exitURL)
		if err != nil {
			n.logf("tornet: %v (retrying)", err)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("GET %s through an exit: %w", exitURL, err)
	}
	n.logf("tornet: GET through an exit works after %v", since())

	hostname := filepath.Join(hs.DataDir, "hs", "hostname")
	err = retry(ctx, 200*time.Millisecond, func(context.Context) error {
		b, err := os.ReadFile(hostname)
		if err != nil {
			return err
		}
		hs.OnionAddress = strings.TrimSpace(string(b))
		return nil
	})
	if err != nil {
		return fmt.Errorf("onion service address: %w", err)
	}

	ctl, err := dialControl(ctx, client)
	if err != nil {
		return err
	}
	defer ctl.Close()
	go n.watchHSDesc(ctx, client, func([]string) {})
	onionURL := fmt.Sprintf("http://%s/", hs.OnionAddress)
	for restarts := 0; ; restarts++ {
		if err := n.awaitUpload(ctx, hs, uploaded, since); err != nil {
			return err
		}
		// Each round of polling gets onionPatience; then the service is
		// restarted, which makes it build and upload fresh descriptors.
		poll, stopPolling := context.WithTimeout(ctx, onionPatience)
		err = retry(poll, 2*time.Second, func(attempt context.Context) error {
			_, _, err := n.get(attempt, onionURL)
			if err != nil {
				n.logf("tornet: %v (retrying)", err)
				// A client remembers for each directory that it had no
				// descriptor until NEWNYM, which tor allows every 10 s.
				if _, nerr := ctl.Do(ctx, "SIGNAL NEWNYM"); nerr != nil {
					return fmt.Errorf("%w; and %w", err, nerr)
				}
			}
			return err
		})
		stopPolling()
		if err == nil {
			break
		}
		if ctx.Err() != nil || restarts == onionRestarts {
			return fmt.Errorf("GET %s through the onion service: %w", onionURL, err)
		}
		n.logf("tornet: %s still unreachable after %v of trying; restarting it (PID %d)", hs.Name, onionPatience, hs.PID)
		if err := hs.restart(n.procCtx); err != nil {
			return fmt.Errorf("restart %s: %w", hs.Name, err)
		}
		watch(hs)
		uploaded = n.watchUploads(ctx, hs)
	}
	n.logf("tornet: GET through the onion service works after %v", since())
	return nil
}

// How long Start polls an onion service that does not answer before it
// restarts the service, and how many times it does. On an idle machine the
// first GET after the upload succeeds.
const (
	onionPatience = 75 * time.Second
	onionRestarts = 2
)

// awaitUpload waits until the onion service has uploaded its descriptor, as
// reported on uploaded, for at most uploadPatience. A client that asks before
// the upload remembers the failure for each directory it asked until NEWNYM,
// so waiting is quicker than polling.
func (n *Network) awaitUpload(ctx context.Context, hs *Node, uploaded <-chan error, since func() time.Duration) error {
	select {
	case err := <-uploaded:
		if err != nil {
			n.logf("tornet: %v; polling the onion service instead", err)
			return nil
		}
		n.logf("tornet: %s uploaded its descriptor after %v", hs.Name, since())
	case <-time.After(uploadPatience):
		n.logf("tornet: no HS_DESC UPLOADED event from %s within %v; polling the onion service instead", hs.Name, uploadPatience)
		return nil
	case <-ctx.Done():
		return fmt.Errorf("onion service descriptor upload: %w", context.Cause(ctx))
	}
	// The other directories get theirs within moments.
	select {
	case <-time.After(time.Second):
		return nil
	case <-ctx.Done():
		return fmt.Errorf("onion service descriptor upload: %w", context.Cause(ctx))
	}
}

// uploadPatience is how long Start waits for the onion service to report a
// descriptor upload before it polls the service anyway. On an idle machine
// the upload comes within seconds of the service starting.
const uploadPatience = time.Minute

// watchUploads reports nil on the returned channel once the onion service
// has uploaded a descriptor to an HSDir, or why it could not tell. It logs
// every HS_DESC event of the service until ctx ends, so a failure to reach
// the service shows what the service did.
func (n *Network) watchUploads(ctx context.Context, hs *Node) <-chan error {
	result := make(chan error, 1)
	uploaded := false
	go func() {
		err := n.watchHSDesc(ctx, hs, func(f []string) {
			if f[2] == "UPLOADED" && !uploaded {
				uploaded = true
				result <- nil
			}
		})
		if !uploaded {
			result <- err
		}
	}()
	return result
}

// watchHSDesc subscribes to the node's HS_DESC events, logs each one and
// passes its fields ("650", "HS_DESC", action, …) to seen, until ctx ends
// or the connection fails; it returns why it stopped.
func (n *Network) watchHSDesc(ctx context.Context, node *Node, seen func(fields []string)) error {
	var ctl *controlConn
	err := retry(ctx, 200*time.Millisecond, func(ctx context.Context) error {
		var err error
		ctl, err = dialControl(ctx, node)
		return err
	})
	if err != nil {
		return err
	}
	defer ctl.Close()
	stop := context.AfterFunc(ctx, func() { ctl.Close() })
	defer stop()
	if _, err := ctl.Do(ctx, "SETEVENTS HS_DESC"); err != nil {
		return fmt.Errorf("%s control port: %w", node.Name, err)
	}
	ctl.conn.SetDeadline(time.Time{})
	for {
		line, err := ctl.readLine()
		if err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			return fmt.Errorf("%s control port: HS_DESC events: %w", node.Name, err)
		}
		// 650 HS_DESC <action> <address> <auth type> <HSDir> …
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "650" || f[1] != "HS_DESC" {
			continue
		}
		n.logf("tornet: %s: %s", node.Name, line)
		seen(f)
	}
}

// waitConsensus polls the authority's DirPort until it serves a
// microdescriptor consensus, the flavour clients fetch, that lists every
// relay. A relay whose descriptor reached the authorities after the first
// vote is missing from the first consensus; a client started on that one
// may lack an exit or enough relays for onion-service paths until it
// fetches another, which can take minutes.
func (n *Network) waitConsensus(ctx context.Context) error {
	auth := n.first(Authority)
	want := map[string]bool{}
	for _, r := range n.Relays() {
		want[r.Name] = true
	}
	url := "http://" + auth.DirAddr + "/tor/status-vote/current/consensus-microdesc"
	reported := -1
	err := retry(ctx, 500*time.Millisecond, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		req.Close = true
		// tor answers Go's default "Accept-Encoding: gzip" with deflate,
		// which net/http does not undo.
		req.Header.Set("Accept-Encoding", "identity")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", url, resp.Status)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			return err
		}
		listed := listedRelays(string(body), want)
		if listed < len(want) {
			if listed != reported {
				n.logf("tornet: the consensus lists %d of %d relays; waiting for one with all", listed, len(want))
				reported = listed
			}
			return fmt.Errorf("the consensus lists %d of %d relays", listed, len(want))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("no consensus from %s: %w", auth.Name, err)
	}
	return nil
}

// listedRelays counts the nicknames in want that have a router line
// ("r <nickname> …") in the consensus text.
func listedRelays(consensus string, want map[string]bool) int {
	seen := map[string]bool{}
	for line := range strings.Lines(consensus) {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "r" && want[f[1]] {
			seen[f[1]] = true
		}
	}
	return len(seen)
}

// waitBootstrapped polls the node's bootstrap status until PROGRESS=100.
func waitBootstrapped(ctx context.Context, node *Node) error {
	var ctl *controlConn
	defer func() {
		if ctl != nil {
			ctl.Close()
		}
	}()
	err := retry(ctx, 500*time.Millisecond, func(ctx context.Context) error {
		if ctl == nil {
			c, err := dialControl(ctx, node)
			if err != nil {
				return err
			}
			ctl = c
		}
		lines, err := ctl.Do(ctx, "GETINFO status/bootstrap-phase")
		if err != nil {
			ctl.Close()
			ctl = nil
			return err
		}
		status := strings.TrimPrefix(lines[0], "status/bootstrap-phase=")
		if !strings.Contains(status, " PROGRESS=100 ") {
			return fmt.Errorf("not yet: %s", status)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s did not bootstrap: %w", node.Name, err)
	}
	return nil
}

// retry calls f every interval until it succeeds or ctx ends, in which case
// it returns why ctx ended and f's last error. Each call gets at most a
// minute.
func retry(ctx context.Context, interval time.Duration, f func(context.Context) error) error {
	for {
		attempt, cancel := context.WithTimeout(ctx, time.Minute)
		err := f(attempt)
		cancel()
		if err == nil {
			return nil
		}
		if !wait.Sleep(ctx, interval) {
			return fmt.Errorf("%w (last error: %w)", context.Cause(ctx), err)
		}
	}
}
