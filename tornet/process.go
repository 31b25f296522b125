package tornet

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// stopGrace is how long Stop waits after SIGTERM before SIGKILL. tor with
// ShutdownWaitLength 0 exits within a fraction of a second.
const stopGrace = 5 * time.Second

// start runs tor for the node in its own process group, with stdout (its
// log) and stderr appended to LogPath. The process ends when ctx is
// cancelled.
func (n *Node) start(ctx context.Context) error {
	logFile, err := os.OpenFile(n.LogPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close() // the child keeps its own descriptor
	cmd := exec.CommandContext(ctx, "tor",
		"--defaults-torrc", os.DevNull,
		"-f", filepath.Join(n.DataDir, "torrc"))
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = stopGrace // then exec sends SIGKILL
	if err := cmd.Start(); err != nil {
		return err
	}
	n.PID = cmd.Process.Pid
	n.done = make(chan struct{})
	go func() {
		n.err = cmd.Wait()
		close(n.done)
	}()
	return nil
}

// waitReady starts the relays, and once they have a consensus the client
// and onion service, and waits until the client has bootstrapped and, with
// an onion service, until a GET succeeds through an exit and through the
// service. Any node exiting early ends the wait with the reason. The
// processes run until procCtx ends.
func (n *Network) waitReady(ctx, procCtx context.Context, opts Options, begin time.Time) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	since := func() time.Duration { return time.Since(begin).Round(time.Millisecond) }
	start := func(relays bool) error {
		for _, node := range n.Nodes {
			if node.Role.IsRelay() != relays {
				continue
			}
			if err := node.start(procCtx); err != nil {
				return fmt.Errorf("start %s: %w", node.Name, err)
			}
			go func() {
				select {
				case <-node.done:
					cancel(fmt.Errorf("%s exited during start: %v", node.Name, node.err))
				case <-ctx.Done():
				}
			}()
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
	if err := waitConsensus(ctx, n.first(Authority)); err != nil {
		return err
	}
	n.logf("tornet: first consensus published after %v", since())
	if err := start(false); err != nil {
		return err
	}

	var uploaded <-chan error
	if hs := n.OnionService(); hs != nil {
		uploaded = n.watchUploads(ctx, hs)
	}

	client := n.Client()
	if err := waitBootstrapped(ctx, client); err != nil {
		return err
	}
	n.logf("tornet: %s bootstrapped after %v", client.Name, since())
	if opts.ServicePort == 0 {
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

	hs := n.OnionService()
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

	// The service publishes its descriptor once it has a consensus and
	// introduction points. A client that asks before that remembers the
	// failure for each directory it asked until NEWNYM, which tor allows
	// only every 10 seconds, so it is worth waiting for the upload.
	select {
	case err := <-uploaded:
		if err != nil {
			n.logf("tornet: %v; polling the onion service instead", err)
		} else {
			n.logf("tornet: %s uploaded its descriptor after %v", hs.Name, since())
		}
	case <-time.After(uploadPatience):
		n.logf("tornet: no HS_DESC UPLOADED event from %s within %v; polling the onion service instead", hs.Name, uploadPatience)
	case <-ctx.Done():
		return fmt.Errorf("onion service descriptor upload: %w", context.Cause(ctx))
	}
	// The other directories get theirs within moments.
	select {
	case <-time.After(time.Second):
	case <-ctx.Done():
	}
	ctl, err := dialControl(ctx, client)
	if err != nil {
		return err
	}
	defer ctl.Close()
	go n.watchHSDesc(ctx, client, func([]string) {})
	onionURL := fmt.Sprintf("http://%s/", hs.OnionAddress)
	err = retry(ctx, 2*time.Second, func(attempt context.Context) error {
		_, _, err := n.get(attempt, onionURL)
		if err != nil {
			n.logf("tornet: %v (retrying)", err)
			if _, nerr := ctl.Do(ctx, "SIGNAL NEWNYM"); nerr != nil {
				return fmt.Errorf("%w; and %w", err, nerr)
			}
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("GET %s through the onion service: %w", onionURL, err)
	}
	n.logf("tornet: GET through the onion service works after %v", since())
	return nil
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
// microdescriptor consensus, the flavour clients fetch.
func waitConsensus(ctx context.Context, auth *Node) error {
	url := "http://" + auth.DirAddr + "/tor/status-vote/current/consensus-microdesc"
	err := retry(ctx, 500*time.Millisecond, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		req.Close = true
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", url, resp.Status)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("no consensus from %s: %w", auth.Name, err)
	}
	return nil
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
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %w)", context.Cause(ctx), err)
		case <-time.After(interval):
		}
	}
}
