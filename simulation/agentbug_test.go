package simulation

import (
	"context"
	"testing"
	"time"

	"github.com/ringleader/ringleader/agent"
)

// Regression test for an agent bug (found by the lock workload,
// crash-restart, seed 13; fixed in agent/locks.go await): an
// AcquireLock queued behind a holder on the key's owner never returns once
// that agent is shut down (a crash), not even when its context ends.
// lockService.await, on ctx.Done, calls table.Cancel; Cancel first runs the
// table's due timers, which time the waiter out (its wait is shorter than
// the context) and put the WaiterTimedOut event in the table's outbox, and
// then answers ErrUnknownTicket; await then blocks on the waiter's channel
// for an event that only a later Tick would dispatch, and the timer loop
// that would Tick has stopped with the agent. (On a live agent the same
// path waits for the next Tick: usually soon, as the timer loop had that
// deadline scheduled.) Fix belongs in agent/locks.go: dispatch the
// table's outbox (Tick) after a failed Cancel before waiting, or select on
// the agent's stop channel there.
func TestAgentBugQueuedAcquireHangsAfterShutdown(t *testing.T) {
	cfg := testConfig(1)
	c, err := NewCluster(cfg, []string{"n1", "n2", "n3"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, n := range []string{"n1", "n2", "n3"} {
		if err := c.Start(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(c.quietLeft(cfg.withSpeed(3).lockConfig().LockDelay))
	p, _ := c.Peer("n1")
	a, _ := p.Agent()
	key := ""
	for i := 0; key == ""; i++ {
		k := LockPrefix + string(rune('a'+i))
		if o, err := a.View().Ring.Owner(k); err == nil && o == "n1" {
			key = k
		}
	}
	ttl := cfg.withSpeed(3).lockConfig().DefaultTTL
	if _, err := a.AcquireLock(ctx, key, agent.LockRequest{TTL: ttl}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		// Wait less than the TTL, with a context a little longer.
		actx, acancel := context.WithTimeout(context.Background(), ttl/2+200*time.Millisecond)
		defer acancel()
		_, err := a.AcquireLock(actx, key, agent.LockRequest{TTL: ttl, Wait: ttl / 2})
		done <- err
	}()
	time.Sleep(50 * time.Millisecond) // queued behind the holder
	if err := c.Crash("n1"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Logf("the queued acquire returned: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("the queued AcquireLock has not returned 5s after its context ended")
	}
}
