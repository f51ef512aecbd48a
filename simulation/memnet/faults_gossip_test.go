package memnet_test

import (
	"testing"
	"time"

	"github.com/ringleader/ringleader/simulation/memnet"
)

// Five memberlist instances find each other over a lossy, slow network;
// a paused one is declared dead by the others and, once resumed, refutes
// that and is alive to all again, as after a long GC pause.
func TestMemberlistUnderLossLatencyAndPause(t *testing.T) {
	cfg := memnet.DefaultConfig()
	cfg.Seed = 3
	n, err := memnet.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(n.Close) // after the members' shutdowns, which run first
	if err := n.SetLoss(10); err != nil {
		t.Fatalf("SetLoss: %v", err)
	}
	if err := n.SetLatency(2*time.Millisecond, 3*time.Millisecond); err != nil {
		t.Fatalf("SetLatency: %v", err)
	}
	members, names := startMembers(t, n, "10.0.2", 5)
	waitFor := func(cond func() bool, what string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s:%s", what, views(members))
			}
			<-time.After(10 * time.Millisecond)
		}
	}
	start := time.Now()
	waitFor(seeAllAlive(members, names), "not all see 5 alive under 10% loss")
	t.Logf("all 5 alive after %v", time.Since(start).Round(time.Millisecond))

	start = time.Now()
	if err := n.Pause("10.0.2.5"); err != nil {
		t.Fatalf("Pause: %v", err)
	}
	waitFor(seeAllAlive(members[:4], names[:4]), "the paused n5 is still alive to some")
	t.Logf("n5 dead to the other 4 after %v", time.Since(start).Round(time.Millisecond))

	start = time.Now()
	if err := n.Resume("10.0.2.5"); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	waitFor(seeAllAlive(members, names), "n5 not alive to all after resume")
	t.Logf("all 5 alive again after %v", time.Since(start).Round(time.Millisecond))
}
