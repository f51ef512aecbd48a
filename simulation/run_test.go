package simulation

import (
	"context"
	"os"
	"testing"
	"time"
)

// testConfig runs scenarios small and fast: 3 peers at 6× speed.
func testConfig(seed uint64) Config {
	cfg := DefaultConfig()
	cfg.Seed = seed
	cfg.Peers = 3
	cfg.Speed = 6
	cfg.Clients = 3
	if testing.Verbose() {
		cfg.Progress = os.Stderr
	}
	return cfg
}

func TestRunSmoke(t *testing.T) {
	sc, err := Parse("smoke", "start 3\nwait converged\nrun workload 2s\ncrash n2\nrestart n2\nwait converged\n", 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := Run(ctx, testConfig(1), sc)
	if err != nil {
		t.Fatal(err)
	}
	acked := 0
	for _, op := range rep.Ops {
		if op.Outcome == Acked {
			acked++
		}
	}
	t.Logf("wall %.2fs, %d ops (%d acked), %d samples, conv %+v", rep.Wall, len(rep.Ops), acked, len(rep.Samples), rep.Convergence)
	for _, v := range rep.Violations {
		t.Error(v)
	}
	if acked == 0 {
		t.Fatal("no write was acknowledged")
	}
}
