package agent_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ringleader/ringleader/agent"
	"github.com/ringleader/ringleader/ring"
)

// idemKeyOwnedBy returns an idempotency key that name owns in a's ring.
func idemKeyOwnedBy(t *testing.T, a *agent.Agent, name, prefix string) string {
	t.Helper()
	for i := range 10000 {
		k := fmt.Sprintf("%s-%d", prefix, i)
		if owner, err := a.View().Ring.Owner(k); err == nil && owner == name {
			return k
		}
	}
	t.Fatalf("no idempotency key owned by %s", name)
	return ""
}

// ringWithout waits until no agent of as has gone in its ring.
func ringWithout(t *testing.T, as []*agent.Agent, gone string) {
	t.Helper()
	waitFor(t, 30*time.Second, gone+" out of every ring", func() error {
		for _, a := range as {
			if slices.ContainsFunc(a.View().Ring.Members(), func(m ring.Member) bool { return m.Name == gone }) {
				return fmt.Errorf("%s still has %s", a.NodeName(), gone)
			}
		}
		return nil
	})
}

// The owner of an idempotency key copies its records to the next peers
// of the key's preference list, so a retry after the owner left, or
// crashed after answering, is answered from the record and applies
// nothing (both applied the write a second time before the copies).
func TestIdempotencyRecordOutlivesItsOwner(t *testing.T) {
	for _, how := range []string{"leave", "crash"} {
		t.Run(how, func(t *testing.T) {
			c := newCluster(t, 5, nil)
			waitFor(t, 20*time.Second, "cluster", func() error { return agreed(c.agents, allAlive(5)) })
			waitWritable(t, c.agents...)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			owner := c.agents[4]
			idem := idemKeyOwnedBy(t, c.agents[0], owner.NodeName(), how)
			item := agent.CounterItem{Key: "paid-" + how, Delta: 5, IdempotencyKey: idem}
			first, err := c.agents[0].Add(ctx, []agent.CounterItem{item}, agent.Local)
			if err != nil {
				t.Fatal(err)
			}
			if how == "leave" {
				if err := owner.Leave(ctx); err != nil {
					t.Fatal(err)
				}
			} else if err := c.net.Crash(ip(4)); err != nil {
				t.Fatal(err)
			}
			owner.Shutdown()
			rest := c.agents[:4]
			ringWithout(t, rest, owner.NodeName())
			for i, a := range rest {
				again, err := a.Add(ctx, []agent.CounterItem{item}, agent.Local)
				if err != nil {
					t.Fatalf("retry %d through %s: %v", i, a.NodeName(), err)
				}
				if !again[0].Replayed || again[0].Value != first[0].Value {
					t.Fatalf("retry through %s after the owner's %s: %+v, first answer %+v", a.NodeName(), how, again[0], first[0])
				}
			}
			// Spreading goes on without the owner only if the write
			// reached the others; with a crash it may not have (a local
			// write's price). Every peer that holds it holds it once.
			want := map[string]int64{item.Key: 5}
			if how == "leave" {
				waitFor(t, 20*time.Second, "converged", func() error { return converged(rest, want) })
			}
			for _, a := range rest {
				v, err := a.Value(ctx, item.Key, agent.Local)
				if err != nil {
					t.Fatal(err)
				}
				if v != 0 && v != 5 {
					t.Fatalf("%s: %q = %d, want 5 (or 0 before it spreads)", a.NodeName(), item.Key, v)
				}
			}
		})
	}
}

// When a peer that may hold an idempotency key's record does not answer,
// the owner refuses the write (503) instead of applying it: the silent
// peer may have applied it already. After the heal the retry applies
// once.
func TestIdempotencySilentHolderRefuses(t *testing.T) {
	c := newCluster(t, 3, nil)
	waitFor(t, 20*time.Second, "cluster", func() error { return agreed(c.agents, allAlive(3)) })
	waitWritable(t, c.agents...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	idem := idemKeyOwnedBy(t, c.agents[0], c.agents[0].NodeName(), "silent")
	item := agent.CounterItem{Key: "silent", Delta: 3, IdempotencyKey: idem}
	// n1 and n2 lose each other; n3 still reaches both, so each stays
	// alive in the other's ring (indirect probes) while their calls fail.
	if err := c.net.Cut(ip(0), ip(1)); err != nil {
		t.Fatal(err)
	}
	_, err := c.agents[0].Add(ctx, []agent.CounterItem{item}, agent.Local)
	if !errors.Is(err, agent.ErrUnavailable) {
		t.Fatalf("write while a holder is silent: %v, want ErrUnavailable", err)
	}
	if v, err := c.agents[0].Value(ctx, item.Key, agent.Local); err != nil || v != 0 {
		t.Fatalf("after the refusal %q = %d (%v), want 0: nothing applied", item.Key, v, err)
	}
	c.net.Heal()
	var res []agent.CounterResult
	waitFor(t, 20*time.Second, "the retry after the heal", func() error {
		res, err = c.agents[0].Add(ctx, []agent.CounterItem{item}, agent.Local)
		return err
	})
	if res[0].Replayed || res[0].Value != 3 {
		t.Fatalf("retry after the heal: %+v, want applied once with value 3", res[0])
	}
	again, err := c.agents[1].Add(ctx, []agent.CounterItem{item}, agent.Local)
	if err != nil || !again[0].Replayed || again[0].Value != 3 {
		t.Fatalf("second retry: %+v, %v; want replayed 3", again, err)
	}
}

// A batch that mixes plain and idempotent items applies them in item
// order where they meet, and an item refused for overflow stops the items
// after it, wherever they were to go.
func TestBatchOrderAndOverflowAcrossOwners(t *testing.T) {
	c := newCluster(t, 3, nil)
	waitFor(t, 20*time.Second, "cluster", func() error { return agreed(c.agents, allAlive(3)) })
	waitWritable(t, c.agents...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n1 := c.agents[0]
	mine := idemKeyOwnedBy(t, n1, n1.NodeName(), "mine")
	theirs := idemKeyOwnedBy(t, n1, c.agents[1].NodeName(), "theirs")

	res, err := n1.Add(ctx, []agent.CounterItem{{Key: "ord", Delta: 1, IdempotencyKey: mine}, {Key: "ord", Delta: 10}}, agent.Local)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Value != 1 || res[1].Value != 11 {
		t.Fatalf("values %d, %d; want 1, 11 (item order)", res[0].Value, res[1].Value)
	}

	add(t, n1, "full", 1<<63-1, agent.Local)
	waitFor(t, 20*time.Second, "full everywhere", func() error { return converged(c.agents, map[string]int64{"full": 1<<63 - 1}) })
	theirs2 := idemKeyOwnedBy(t, n1, c.agents[1].NodeName(), "theirs2")
	for _, tc := range []struct {
		name    string
		items   []agent.CounterItem
		applied []bool
	}{
		{"plain overflow stops an idempotent item of this peer", []agent.CounterItem{{Key: "o1", Delta: 1}, {Key: "full", Delta: 1}, {Key: "o2", Delta: 1, IdempotencyKey: mine + "x"}}, []bool{true, false, false}},
		{"plain overflow stops another owner's item", []agent.CounterItem{{Key: "o3", Delta: 1}, {Key: "full", Delta: 1}, {Key: "o4", Delta: 1, IdempotencyKey: theirs}}, []bool{true, false, false}},
		{"an earlier idempotent item stays applied", []agent.CounterItem{{Key: "o5", Delta: 1, IdempotencyKey: theirs + "y"}, {Key: "full", Delta: 1}, {Key: "o6", Delta: 1}}, []bool{true, false, false}},
		{"another owner refuses an item after one it applied", []agent.CounterItem{{Key: "o7", Delta: 1, IdempotencyKey: theirs}, {Key: "full", Delta: 1, IdempotencyKey: theirs2}, {Key: "o8", Delta: 1}}, []bool{true, false, false}},
	} {
		res, err := n1.Add(ctx, tc.items, agent.Local)
		if !errors.Is(err, agent.ErrBadDelta) {
			t.Fatalf("%s: %v, want ErrBadDelta", tc.name, err)
		}
		for i, it := range tc.items {
			if got := res[i].Key != ""; got != tc.applied[i] {
				t.Fatalf("%s: item %d applied %v, want %v", tc.name, i, got, tc.applied[i])
			}
			v, err := n1.Value(ctx, it.Key, agent.Local)
			if it.Key == "full" {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := map[bool]int64{true: 1, false: 0}[tc.applied[i]]; v != want && it.IdempotencyKey == "" {
				t.Fatalf("%s: %q = %d, want %d", tc.name, it.Key, v, want)
			}
		}
	}
}
