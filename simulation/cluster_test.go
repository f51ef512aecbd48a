package simulation

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ringleader/ringleader/agent"
)

// The lifecycle refuses what a real host could not do, and a crash keeps
// what the peer had synced: an acknowledged write survives a crash and
// restart with the data dir, not a restart with an empty one.
func TestClusterLifecycle(t *testing.T) {
	cfg := testConfig(1)
	c, err := NewCluster(cfg, []string{"n1", "n2"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	defer c.Close() // safe twice
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Start(ctx, "n9"); !errors.Is(err, ErrUnknownPeer) {
		t.Fatalf("start n9: %v, want ErrUnknownPeer", err)
	}
	if err := c.Start(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx, "n1"); !errors.Is(err, ErrPeerState) {
		t.Fatalf("second start: %v, want ErrPeerState", err)
	}
	if err := c.Wipe("n1"); !errors.Is(err, ErrPeerState) {
		t.Fatalf("wipe of a running peer: %v, want ErrPeerState", err)
	}
	p, _ := c.Peer("n1")
	a, gen := p.Agent()
	if _, err := a.Add(ctx, []agent.CounterItem{{Key: "sim/x", Delta: 5}}, agent.Local); err != nil {
		t.Fatal(err)
	}
	if err := c.Crash("n1"); err != nil {
		t.Fatal(err)
	}
	if _, g := p.Agent(); g == gen || p.State() != Down {
		t.Fatalf("after the crash: generation %d (was %d), state %v", g, gen, p.State())
	}
	if err := c.Crash("n1"); !errors.Is(err, ErrPeerState) {
		t.Fatalf("second crash: %v, want ErrPeerState", err)
	}
	value := func() int64 {
		a, _ := p.Agent()
		v, err := a.Value(ctx, "sim/x", agent.Local)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if err := c.Start(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	if v := value(); v != 5 {
		t.Fatalf("after a crash and restart with the data dir: %d, want the synced 5", v)
	}
	if err := c.Crash("n1"); err != nil {
		t.Fatal(err)
	}
	if err := c.Wipe("n1"); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	if v := value(); v != 0 {
		t.Fatalf("after a restart with an empty disk and no peer: %d, want 0", v)
	}
	if err := c.Leave(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	if p.State() != Left {
		t.Fatalf("after leave: %v", p.State())
	}
}
