package memnet_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
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
	var (
		members []*memberlist.Memberlist
		names   []string
	)
	for i := 1; i <= 5; i++ {
		h, err := n.AddHost(fmt.Sprintf("10.0.2.%d", i))
		if err != nil {
			t.Fatalf("AddHost: %v", err)
		}
		tr, err := h.GossipTransport(7946)
		if err != nil {
			t.Fatalf("GossipTransport: %v", err)
		}
		name := fmt.Sprintf("n%d", i)
		m, err := memberlist.Create(fastMemberlist(name, tr))
		if err != nil {
			tr.Shutdown()
			t.Fatalf("memberlist.Create(%s): %v", name, err)
		}
		t.Cleanup(func() { m.Shutdown() })
		members = append(members, m)
		names = append(names, name)
	}
	for _, m := range members[1:] {
		if _, err := m.Join([]string{"10.0.2.1:7946"}); err != nil {
			t.Fatalf("%s Join: %v", m.LocalNode().Name, err)
		}
	}
	seeAll := func(ms []*memberlist.Memberlist, want []string) func() bool {
		return func() bool {
			for _, m := range ms {
				if !slices.Equal(alive(m), want) {
					return false
				}
			}
			return true
		}
	}
	views := func() string {
		var b strings.Builder
		for _, m := range members {
			fmt.Fprintf(&b, "\n%s sees %v alive", m.LocalNode().Name, alive(m))
		}
		return b.String()
	}
	waitFor := func(cond func() bool, what string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s:%s", what, views())
			}
			<-time.After(10 * time.Millisecond)
		}
	}
	start := time.Now()
	waitFor(seeAll(members, names), "not all see 5 alive under 10% loss")
	t.Logf("all 5 alive after %v", time.Since(start).Round(time.Millisecond))

	start = time.Now()
	if err := n.Pause("10.0.2.5"); err != nil {
		t.Fatalf("Pause: %v", err)
	}
	waitFor(seeAll(members[:4], names[:4]), "the paused n5 is still alive to some")
	t.Logf("n5 dead to the other 4 after %v", time.Since(start).Round(time.Millisecond))

	start = time.Now()
	if err := n.Resume("10.0.2.5"); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	waitFor(seeAll(members, names), "n5 not alive to all after resume")
	t.Logf("all 5 alive again after %v", time.Since(start).Round(time.Millisecond))
}
