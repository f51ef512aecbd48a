package agent_test

// Tests of the voter set (agent/voters.go). The first three were found
// while the voters were read from serf's member list and failed then: a
// persisted set changed only by a majority of its own voters fixes each.

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ringleader/ringleader/agent"
)

// acquireTimed acquires key through a (retrying while it cannot
// grant yet) and returns the grant and when the request was sent: the
// lease is certainly live until sent + TTL.
func acquireTimed(t *testing.T, a *agent.Agent, key string, ttl time.Duration, within time.Duration) (agent.LockGrant, time.Time, error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		sent := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		g, err := a.AcquireLock(ctx, key, agent.LockRequest{TTL: ttl, Holder: a.NodeName()})
		cancel()
		if err == nil {
			return g, sent, nil
		}
		if !errors.Is(err, agent.ErrNoQuorum) && !errors.Is(err, agent.ErrUnavailable) || time.Now().After(deadline) {
			return g, sent, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestLockJoinDuringPartitionOverlaps: n1 | n2 n3 are cut apart; two
// fresh peers join n1's side. n1 now counts five voters (n2 and n3 failed
// but counted) and gets its "majority" from n1, n4, n5, while n2 and n3
// still count three voters and are a majority of those. Both sides grant
// the same key at the same time. The issue asks that voters change one at
// a time, each change admitted by a majority of the current voters; the
// agent counts whoever serf lists.
func TestLockJoinDuringPartitionOverlaps(t *testing.T) {
	t.Parallel() // mostly waiting on failure detection and serf's reaper
	c := newCluster(t, 3, nil)
	defer c.net.Heal()
	waitFor(t, 20*time.Second, "cluster", func() error { return agreed(c.agents, allAlive(3)) })
	acquireEventually(t, c.agents[1], "warm", agent.LockRequest{}) // past the quiet periods
	if err := c.net.Partition([]string{ip(1), ip(2)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "each side sees the other failed", func() error {
		if st := statuses(c.agents[0]); st["n2"] != "failed" || st["n3"] != "failed" {
			return fmt.Errorf("n1 sees %v", st)
		}
		if st := statuses(c.agents[1]); st["n1"] != "failed" {
			return fmt.Errorf("n2 sees %v", st)
		}
		return nil
	})
	// Hosts added after Partition are on n1's side.
	for i := 3; i < 5; i++ {
		cfg := newAgentConfig(t, c.net, i)
		cfg.StartJoin = []string{ip(0) + ":7946"}
		startAgent(t, cfg)
	}
	waitFor(t, 20*time.Second, "n1 sees n4 and n5", func() error {
		if st := statuses(c.agents[0]); st["n4"] != "alive" || st["n5"] != "alive" {
			return fmt.Errorf("n1 sees %v", st)
		}
		return nil
	})
	const key = "cron/nightly"
	const ttl = 1800 * time.Millisecond // the longest: lock-delay 2s minus the drift margin 0.2s
	// n1's side: n1, n4 and n5 promise once n4's and n5's quiet periods
	// have passed (one lock-delay after they started).
	g1, sent1, err1 := acquireTimed(t, c.agents[0], key, ttl, 15*time.Second)
	if err1 != nil {
		t.Logf("n1's side did not grant %q: %v", key, err1)
	}
	g2, sent2, err2 := acquireTimed(t, c.agents[1], key, ttl, 15*time.Second)
	if err2 != nil {
		t.Errorf("n2's side (two of the three voters) did not grant %q: %v", key, err2)
	}
	if err1 == nil {
		t.Errorf("n1's side (one of the three voters, and two peers that joined it) granted %q: token %d", key, g1.Token)
	}
	if err1 == nil && err2 == nil && sent2.Before(sent1.Add(g1.TTL)) {
		t.Fatalf("two live leases on %q: token %d from %s (live until at least %v) and token %d from %s granted while it lived",
			key, g1.Token, g1.Owner, sent1.Add(g1.TTL).Format(time.StampMilli), g2.Token, g2.Owner)
	}
}

// TestLockReapedVotersLetMinorityGrant: serf reaps a failed member after
// ReconnectTimeout (24 h by default, 1 s here) and agent.voters stops
// counting it, so the minority side of a long partition becomes a
// "majority" of what is left, and both sides grant the same key.
func TestLockReapedVotersLetMinorityGrant(t *testing.T) {
	t.Parallel() // mostly waiting on failure detection and serf's reaper
	c := newCluster(t, 5, func(i int, cfg *agent.Config) { cfg.Timings.ReconnectTimeout = time.Second })
	defer c.net.Heal()
	waitFor(t, 20*time.Second, "cluster", func() error { return agreed(c.agents, allAlive(5)) })
	acquireEventually(t, c.agents[0], "warm", agent.LockRequest{})
	if err := c.net.Partition([]string{ip(0), ip(1)}, []string{ip(2), ip(3), ip(4)}); err != nil {
		t.Fatal(err)
	}
	// serf's reaper runs every 15 s (serf.DefaultConfig().ReapInterval).
	waitFor(t, 60*time.Second, "n1 reaped n3, n4 and n5", func() error {
		st := statuses(c.agents[0])
		for _, n := range []string{"n3", "n4", "n5"} {
			if s, ok := st[n]; ok {
				return fmt.Errorf("n1 still lists %s as %s", n, s)
			}
		}
		return nil
	})
	const key = "migration"
	const ttl = 1800 * time.Millisecond
	g1, sent1, err1 := acquireTimed(t, c.agents[0], key, ttl, 10*time.Second)
	if err1 != nil {
		t.Logf("minority side did not grant %q: %v", key, err1)
	}
	g2, sent2, err2 := acquireTimed(t, c.agents[3], key, ttl, 10*time.Second)
	if err2 != nil {
		t.Errorf("majority side did not grant %q: %v", key, err2)
	}
	if err1 == nil {
		t.Errorf("the minority side (n1, n2 of five) granted %q: token %d from %s", key, g1.Token, g1.Owner)
	}
	if err1 == nil && err2 == nil && sent2.Before(sent1.Add(g1.TTL)) {
		t.Fatalf("two live leases on %q: token %d from %s and token %d from %s", key, g1.Token, g1.Owner, g2.Token, g2.Owner)
	}
}

// TestLockRestartWhileIsolatedGrantsAlone: a peer restarted (same data
// dir) while it cannot reach the others sees only itself in serf's member
// list until its background rejoin succeeds. agent.voters is then {self},
// a strict majority of one, and after its quiet period (one lock-delay) it
// grants any key alone — while the rest of the cluster grants the same
// keys. The known-peers list it rejoins from is not counted as voters.
func TestLockRestartWhileIsolatedGrantsAlone(t *testing.T) {
	t.Parallel() // mostly waiting on failure detection and serf's reaper
	net := newNetwork(t)
	defer net.Heal()
	as, hosts, dirs := startWithDirs(t, net, 3, nil)
	waitFor(t, 30*time.Second, "cluster", func() error { return agreed(as, allAlive(3)) })
	acquireEventually(t, as[1], "warm", agent.LockRequest{})
	if err := net.Isolate(ip(0)); err != nil {
		t.Fatal(err)
	}
	as[0].Shutdown() // crash while cut off
	cfg := hostConfig(t, hosts[0], 0)
	cfg.DataDir = dirs[0]
	as[0] = startAgent(t, cfg)

	const key = "leader-only"
	const ttl = 1800 * time.Millisecond
	g1, sent1, err1 := acquireTimed(t, as[0], key, ttl, 10*time.Second)
	if err1 != nil {
		t.Logf("the isolated peer did not grant %q: %v", key, err1)
	}
	g2, sent2, err2 := acquireTimed(t, as[1], key, ttl, 10*time.Second)
	if err2 != nil {
		t.Errorf("the majority side did not grant %q: %v", key, err2)
	}
	if err1 == nil {
		t.Errorf("the isolated, restarted n1 granted %q alone: token %d", key, g1.Token)
	}
	if err1 == nil && err2 == nil && sent2.Before(sent1.Add(g1.TTL)) {
		t.Fatalf("two live leases on %q: token %d from %s and token %d from %s", key, g1.Token, g1.Owner, g2.Token, g2.Owner)
	}
}
