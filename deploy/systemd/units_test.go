// Package systemd_test checks the systemd units in this directory with
// systemd's own tools: `systemd-analyze verify` and `systemd-analyze
// security`. The directory holds no Go code besides this test.
package systemd_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// maxExposure bounds each unit's `systemd-analyze security` exposure
// level (0 is fully confined, 10 unconfined; systemd calls below 2 "OK").
// Measured with systemd 252: tally 1.1, keeper 1.1, collector 1.3 (it may
// not use PrivateUsers=, which would unmap tor's group).
const maxExposure = 1.5

var roles = []string{"tally", "keeper", "collector"}

// binary is where the units expect privstats.
const binary = "/usr/bin/privstats"

func analyze(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (apt-get install systemd): the units are not checked")
	}
	return p
}

// standIn copies role's unit into a temporary directory with ExecStart
// pointing at an executable stand-in for privstats: verify insists that
// the command exists, and this machine need not have privstats installed
// at /usr/bin. Nothing else in the unit changes.
func standIn(t *testing.T, role string) string {
	t.Helper()
	unit, err := os.ReadFile("privstats-" + role + ".service")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "privstats")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(unit, []byte("ExecStart="+binary+" ")) {
		t.Fatalf("privstats-%s.service: ExecStart does not run %s", role, binary)
	}
	path := filepath.Join(dir, "privstats-"+role+".service")
	if err := os.WriteFile(path, bytes.ReplaceAll(unit, []byte(binary), []byte(bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestUnitsVerify(t *testing.T) {
	sa := analyze(t)
	for _, role := range roles {
		t.Run(role, func(t *testing.T) {
			out, err := exec.Command(sa, "verify", "--man=no", standIn(t, role)).CombinedOutput()
			if err != nil || len(bytes.TrimSpace(out)) > 0 {
				t.Errorf("systemd-analyze verify: %v\n%s", err, out)
			}
		})
	}
}

var exposureRE = regexp.MustCompile(`Overall exposure level for privstats-\w+\.service: ([0-9.]+)`)

func TestUnitsExposure(t *testing.T) {
	sa := analyze(t)
	for _, role := range roles {
		t.Run(role, func(t *testing.T) {
			out, err := exec.Command(sa, "security", "--offline=true", "--no-pager", standIn(t, role)).CombinedOutput()
			if err != nil {
				t.Fatalf("systemd-analyze security: %v\n%s", err, out)
			}
			m := exposureRE.FindSubmatch(out)
			if m == nil {
				t.Fatalf("no exposure level in:\n%s", out)
			}
			score, err := strconv.ParseFloat(string(m[1]), 64)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("privstats-%s.service exposure %.1f", role, score)
			if score > maxExposure {
				t.Errorf("exposure %.1f, want at most %.1f:\n%s", score, maxExposure, out)
			}
		})
	}
}

// The units run each role as the privstats user with its state where the
// init templates put data_dir, and the collector in tor's group.
func TestUnitsMatchTheTemplates(t *testing.T) {
	for _, role := range roles {
		unit, err := os.ReadFile("privstats-" + role + ".service")
		if err != nil {
			t.Fatal(err)
		}
		s := string(unit)
		for _, want := range []string{
			"ExecStart=" + binary + " " + strings.Replace(role, "collector", "collect", 1) + " -c /etc/privstats/" + role + ".yaml\n",
			"StateDirectory=privstats/" + role + "\n", // data_dir /var/lib/privstats/ROLE
			"User=privstats\n", "NoNewPrivileges=yes\n", "CapabilityBoundingSet=\n", "ProtectSystem=strict\n",
		} {
			if !strings.Contains(s, want) {
				t.Errorf("privstats-%s.service lacks %q", role, want)
			}
		}
		if got := strings.Contains(s, "SupplementaryGroups=debian-tor\n"); got != (role == "collector") {
			t.Errorf("privstats-%s.service: in group debian-tor = %v", role, got)
		}
	}
}
