package tornet_test

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/privstats/privstats/tornet"
)

// bodySize is what the test server returns: large enough that a stream's
// traffic stands out from directory and circuit-building traffic.
const bodySize = 1 << 20

func TestAvailableSaysHowToInstall(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	err := tornet.Available()
	if err == nil || !strings.HasPrefix(err.Error(), "tor not installed: apt-get install -y tor") {
		t.Fatalf("Available() with an empty PATH = %v", err)
	}
}

// TestNetworkBootstraps starts a whole private network and checks that a
// client can fetch through an exit and through an onion service.
func TestNetworkBootstraps(t *testing.T) {
	if err := tornet.Available(); err != nil {
		t.Skip(err)
	}
	if testing.Short() {
		t.Skip("starts a private Tor network, which takes about half a minute")
	}

	body := bytes.Repeat([]byte("privstats"), bodySize/9+1)[:bodySize]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	port := srv.Listener.Addr().(*net.TCPAddr).Port

	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	begin := time.Now()
	n, err := tornet.Start(ctx, tornet.Options{Dir: t.TempDir(), ServicePort: port, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Stop)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("tor logs:\n%s", n.Tail(30))
		}
	})
	t.Logf("network ready in %v", time.Since(begin).Round(time.Millisecond))

	for _, node := range n.Nodes {
		if node.PID == 0 || node.ControlAddr == "" || node.MetricsAddr == "" {
			t.Errorf("%s (%s): missing PID, ControlPort or MetricsPort: %+v", node.Name, node.Role, node)
		}
		if node.Role.IsRelay() && len(node.Fingerprint) != 40 {
			t.Errorf("%s: fingerprint %q", node.Name, node.Fingerprint)
		}
	}
	if got := len(n.Relays()); got < 5 {
		t.Errorf("%d relays, want at least 3 authorities, a middle and an exit", got)
	}

	exitURL := srv.URL + "/"
	for i := range 3 {
		got, err := n.HTTPGet(ctx, exitURL)
		if err != nil {
			t.Fatalf("fetch %d through the exit: %v", i, err)
		}
		if got != bodySize {
			t.Errorf("fetch %d through the exit: read %d bytes, want %d", i, got, bodySize)
		}
	}

	onion := n.OnionService().OnionAddress
	got, err := n.HTTPGet(ctx, "http://"+onion+"/")
	if err != nil {
		t.Fatalf("fetch through the onion service %s: %v", onion, err)
	}
	if got != bodySize {
		t.Errorf("fetch through the onion service: read %d bytes, want %d", got, bodySize)
	}

	// A restarted service keeps its address and is reachable again once
	// the client has the new descriptor, which it fetches when the old
	// one's introduction points fail.
	hs := n.OnionService()
	oldPID := hs.PID
	if err := n.Restart(ctx, hs); err != nil {
		t.Fatal(err)
	}
	if hs.PID == oldPID || hs.OnionAddress != onion {
		t.Errorf("after Restart: PID %d (was %d), address %s (was %s)", hs.PID, oldPID, hs.OnionAddress, onion)
	}
	var lastErr error
	for attempt := 1; ; attempt++ {
		got, lastErr = n.HTTPGet(ctx, "http://"+onion+"/")
		if lastErr == nil {
			t.Logf("fetch through the restarted onion service: attempt %d", attempt)
			break
		}
		t.Logf("fetch through the restarted onion service, attempt %d: %v", attempt, lastErr)
		if ctx.Err() != nil || attempt == 10 {
			t.Fatalf("fetch through the restarted onion service: %v", lastErr)
		}
		time.Sleep(3 * time.Second)
	}
	if got != bodySize {
		t.Errorf("fetch through the restarted onion service: read %d bytes, want %d", got, bodySize)
	}
}
