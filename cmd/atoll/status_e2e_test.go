package main

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/atoll-hosting/atoll/atolltest"
)

// TestStatusTellsTheTruth runs three real core nodes and checks that
// `atoll status` reports the census a new leader takes at once, fails,
// naming the problem, with a node frozen (SIGSTOP: not answering, and how many entries it has
// fallen behind the leader's commit) and with a node killed; and that it
// exits 0 and --quiet prints nothing when all is well.
func TestStatusTellsTheTruth(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three processes")
	}
	const key, token = "e2e-status-key", "e2e-status-admin"
	mk := func(id string, flags ...string) *atolltest.Server {
		return atolltest.NewServer(t, atolltest.NodeConfig{ID: id, AdminToken: token, Flags: append([]string{"--cluster-key", key}, flags...)})
	}
	core1 := mk("core1")
	core1.Bootstrap = true
	core1.Start()
	// A leader takes a census as it takes office, so a fresh cluster's
	// health is known at once: status --wait waits for it and finds no
	// problem (a status without a census says "no census yet" and fails:
	// TestDiagnose).
	out, errOut, code := core1.CLI("status", "--wait", "20s")
	if code != 0 || !regexp.MustCompile(`repair: +0 blobs referenced, .*\(census .* ago`).MatchString(out) {
		t.Errorf("status of a new cluster: exit %d\n%s%s\nwant 0 and the leader's first census", code, out, errOut)
	}
	cores := []*atolltest.Server{core1}
	for _, id := range []string{"core2", "core3"} {
		s := mk(id, "--join", "http://"+core1.APIAddr)
		s.Start()
		cores = append(cores, s)
	}
	leader := leaderOf(t, core1, cores)
	var victim *atolltest.Server
	for _, s := range cores {
		if s != leader {
			victim = s
		}
	}

	// All well: exit 0, "no problems", --quiet prints nothing.
	if status, rep := leader.API("POST", "/v1/repair", token, "", nil); status != 200 {
		t.Fatalf("POST /v1/repair: %d %v", status, rep)
	}
	out, errOut, code = leader.CLI("status")
	if code != 0 || !strings.Contains(out, "no problems") {
		t.Errorf("status with all nodes up: exit %d\n%s%s\nwant 0 and \"no problems\"", code, out, errOut)
	}
	if out, errOut, code := leader.CLI("status", "--quiet"); code != 0 || out != "" || errOut != "" {
		t.Errorf("status --quiet with all nodes up: exit %d, stdout %q, stderr %q; want 0 and no output", code, out, errOut)
	}

	// Freeze a follower and write: it does not answer, and status says how
	// far behind the leader's commit it has fallen.
	const writes = 5
	if err := victim.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	for i := range writes {
		leader.MustCLI("site", "create", fmt.Sprintf("site%d", i))
	}
	out, errOut, code = leader.CLI("status", "--quiet")
	behind := regexp.MustCompile(`node ` + victim.ID + ` does not answer .*: (\d+) entries behind the leader's commit index`).FindStringSubmatch(out)
	if code == 0 || behind == nil || !strings.Contains(errOut, "cluster degraded: 1 problem") {
		t.Errorf("status --quiet with %s frozen: exit %d\nstdout:\n%sstderr: %s\nwant non-zero, one problem naming %s and its lag", victim.ID, code, out, errOut, victim.ID)
	} else if n, _ := strconv.Atoi(behind[1]); n < writes {
		t.Errorf("status --quiet with %s frozen: %s entries behind, want at least %d (the writes since)", victim.ID, behind[1], writes)
	}
	if err := victim.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}

	// Kill it: status fails and names it.
	victim.Kill(syscall.SIGKILL)
	out, errOut, code = leader.CLI("status")
	if code == 0 || !strings.Contains(out, "node "+victim.ID+" does not answer at "+victim.APIAddr) || !strings.Contains(errOut, "cluster degraded") {
		t.Errorf("status with %s killed: exit %d\nstdout:\n%sstderr: %s\nwant non-zero and the node named", victim.ID, code, out, errOut)
	}
}
