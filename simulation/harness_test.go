package simulation

import (
	"context"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestHarnessCatchesBrokenAgent proves the harness can fail: it builds this
// package's tests with -tags ringleader_broken_quorum, which gives the
// agent an owner that counts its own promise as a majority, and runs
// halves there (TestHalvesCatchesBrokenAgent, broken_test.go). That run
// must find lock violations.
func TestHarnessCatchesBrokenAgent(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a broken agent")
	}
	t.Parallel()
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	cmd := exec.Command(gobin, "test", "-tags", "ringleader_broken_quorum", "-count", "1",
		"-run", "^TestHalvesCatchesBrokenAgent$", "-v", ".")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the halves run against the broken agent failed (it must pass by finding violations): %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "caught the broken agent") {
		t.Fatalf("the broken-agent run did not report what it caught:\n%s", out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "caught the broken agent") {
			t.Log(line)
		}
	}
}

// halvesLong is halves (scenarios/halves.txt) with its split held for 60 s
// of scenario time, so that both sides get past failure detection and the
// lock-delay and contend for the same keys for a while: a broken agent
// cannot pass it by luck.
const halvesLong = `start 4
wait converged
wait locks
workload start
sleep 2s
partition n1,n2 | n3,n4
sleep 60s
heal
sleep 2s
workload stop
wait converged
`

// halvesLongConfig has lock clients on both sides contend for two keys.
func halvesLongConfig() Config {
	cfg := testConfig(1)
	cfg.Peers = 4
	cfg.LockClients = 8
	cfg.LockKeys = 2
	return cfg
}

// TestHalvesLongPassesTheRealAgent is the control of
// TestHarnessCatchesBrokenAgent: the same run against the real agent finds
// no violation, so what the broken build trips over is its missing quorum.
func TestHalvesLongPassesTheRealAgent(t *testing.T) {
	t.Parallel()
	sc, err := Parse("halves-long", halvesLong, 4)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, halvesLongConfig(), sc)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range rep.Violations {
		t.Errorf("%v", v)
	}
}
