package agent_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ringleader/ringleader/agent"
)

// votersAre checks that every agent in as has committed exactly members,
// under one cluster and version.
func votersAre(as []*agent.Agent, members ...string) error {
	var first agent.VoterSet
	for i, a := range as {
		v, err := a.Voters()
		if err != nil {
			return err
		}
		if !slices.Equal(v.Members, members) {
			return fmt.Errorf("%s has voters %v (v%d), want %v", a.NodeName(), v.Members, v.Version, members)
		}
		if i == 0 {
			first = v
		} else if v.Cluster != first.Cluster || v.Version != first.Version {
			return fmt.Errorf("%s has voters %s/v%d, %s has %s/v%d", a.NodeName(), v.Cluster, v.Version, as[0].NodeName(), first.Cluster, first.Version)
		}
	}
	return nil
}

// With --bootstrap-expect 1 (the default) the first peer forms the set
// alone and every joiner is added, one at a time; a graceful leave and a
// force-leave take a peer out; the set survives a restart.
func TestVoterSetGrowsAndShrinks(t *testing.T) {
	net := newNetwork(t)
	var as []*agent.Agent
	for i := range 4 {
		cfg := newAgentConfig(t, net, i)
		if i > 0 {
			cfg.StartJoin = []string{ip(0)}
		}
		as = append(as, startAgent(t, cfg))
	}
	waitFor(t, 20*time.Second, "four voters", func() error { return votersAre(as, "n1", "n2", "n3", "n4") })
	v, _ := as[0].Voters()
	if v.Version != 4 || v.Majority != 3 {
		t.Errorf("voters %+v: want version 4 (bootstrap and three adds), majority 3", v)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := as[3].Leave(ctx); err != nil {
		t.Fatal(err)
	}
	as[3].Shutdown()
	waitFor(t, 20*time.Second, "n4 out after its leave", func() error { return votersAre(as[:3], "n1", "n2", "n3") })

	as[2].Shutdown() // a crash: n3 stays a voter
	waitFor(t, 20*time.Second, "n3 failed", func() error {
		for _, a := range as[:2] {
			if st := statuses(a)["n3"]; st != "failed" {
				return fmt.Errorf("%s sees n3 %s", a.NodeName(), st)
			}
		}
		return nil
	})
	if err := votersAre(as[:2], "n1", "n2", "n3"); err != nil {
		t.Fatalf("a failed peer left the voter set: %v", err)
	}
	if err := as[1].ForceLeave("n3", true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "n3 out after force-leave --prune", func() error { return votersAre(as[:2], "n1", "n2") })
}

// --bootstrap-expect 3 withholds every grant until three peers see each
// other; then one set of all three forms.
func TestBootstrapExpectWithholdsGrants(t *testing.T) {
	net := newNetwork(t)
	var as []*agent.Agent
	for i := range 2 {
		cfg := newAgentConfig(t, net, i)
		cfg.Locks.BootstrapExpect = 3
		if i > 0 {
			cfg.StartJoin = []string{ip(0)}
		}
		as = append(as, startAgent(t, cfg))
	}
	waitFor(t, 20*time.Second, "two alive", func() error { return agreed(as, allAlive(2)) })
	// The missing voter set is checked before anything is asked.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_, err := as[0].AcquireLock(ctx, "k", agent.LockRequest{})
	cancel()
	if !errors.Is(err, agent.ErrNoQuorum) || !strings.Contains(err.Error(), "--bootstrap-expect is 3") {
		t.Fatalf("acquire with two of three expected peers: %v, want a no-quorum error naming --bootstrap-expect 3", err)
	}
	cfg := newAgentConfig(t, net, 2)
	cfg.Locks.BootstrapExpect = 3
	cfg.StartJoin = []string{ip(0)}
	as = append(as, startAgent(t, cfg))
	waitFor(t, 20*time.Second, "one set of three", func() error { return votersAre(as, "n1", "n2", "n3") })
	if v, _ := as[0].Voters(); v.Version != 1 {
		t.Errorf("voter set version %d, want 1 (formed at once)", v.Version)
	}
	acquireEventually(t, as[1], "k", agent.LockRequest{})
}

// The set is on disk: a restarted peer has it at once, before it rejoins.
func TestVoterSetSurvivesRestart(t *testing.T) {
	net := newNetwork(t)
	as, hosts, dirs := startWithDirs(t, net, 2, nil)
	waitFor(t, 20*time.Second, "two voters", func() error { return votersAre(as, "n1", "n2") })
	before, _ := as[1].Voters()
	as[1].Shutdown()
	cfg := hostConfig(t, hosts[1], 1)
	cfg.DataDir = dirs[1]
	a, err := agent.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Shutdown() })
	after, _ := a.Voters()
	if after.Cluster != before.Cluster || after.Version != before.Version || !slices.Equal(after.Members, before.Members) {
		t.Fatalf("after a restart the voters are %+v, before %+v", after, before)
	}
}

// Two clusters formed apart merge: the smaller gives its set up and its
// peers are added to the larger's, one at a time.
func TestVoterSetsOfTwoClustersMerge(t *testing.T) {
	net := newNetwork(t)
	var as []*agent.Agent
	for i := range 5 {
		cfg := newAgentConfig(t, net, i)
		switch i {
		case 1, 2:
			cfg.StartJoin = []string{ip(0)}
		case 4:
			cfg.StartJoin = []string{ip(3)}
		}
		as = append(as, startAgent(t, cfg))
	}
	waitFor(t, 20*time.Second, "two clusters", func() error {
		if err := votersAre(as[:3], "n1", "n2", "n3"); err != nil {
			return err
		}
		return votersAre(as[3:], "n4", "n5")
	})
	if _, err := as[4].Join(context.Background(), []string{ip(0)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "one set of five", func() error { return votersAre(as, "n1", "n2", "n3", "n4", "n5") })
	acquireEventually(t, as[4], "after-merge", agent.LockRequest{})
}

// Peers that all join each other before any has a set (every one started
// with seeds, the default --bootstrap-expect 1) still form one set: the
// first by name forms it from all it sees.
func TestVoterSetFormsAmongPeersThatJoinedEachOther(t *testing.T) {
	net := newNetwork(t)
	var as []*agent.Agent
	for i := range 3 {
		cfg := newAgentConfig(t, net, i)
		cfg.RetryJoin = []string{ip(0), ip(1), ip(2)}
		cfg.RetryJoinInterval = 20 * time.Millisecond
		cfg.RetryJoinMaxInterval = 100 * time.Millisecond
		as = append(as, startAgent(t, cfg))
	}
	waitFor(t, 20*time.Second, "one set", func() error { return votersAre(as, "n1", "n2", "n3") })
}

// A cluster formed again under the same names (a peer that lost its disk
// and started alone) is another history: its cluster ID differs, so the
// merge rule, not a mix of two sets, decides when it meets the first.
func TestReformedClusterIsAnotherHistory(t *testing.T) {
	net := newNetwork(t)
	h, err := net.AddHost(ip(0))
	if err != nil {
		t.Fatal(err)
	}
	first := startAgent(t, hostConfig(t, h, 0))
	waitFor(t, 10*time.Second, "a set", func() error { return votersAre([]*agent.Agent{first}, "n1") })
	v1, _ := first.Voters()
	first.Shutdown()
	again := startAgent(t, hostConfig(t, h, 0))
	waitFor(t, 10*time.Second, "a set", func() error { return votersAre([]*agent.Agent{again}, "n1") })
	v2, _ := again.Voters()
	if v1.Cluster == v2.Cluster {
		t.Fatalf("two formations of {n1} share cluster ID %s", v1.Cluster)
	}
}

// A graceful leave while the others cannot be reached still leaves serf:
// the counter and lock handoffs get only a share of the leave's time.
func TestLeaveDuringPartitionStillLeaves(t *testing.T) {
	// RPCs that wait as long as the leave may (a TCP connect into a cut
	// network waits for its timeout).
	c := newCluster(t, 3, func(i int, cfg *agent.Config) { cfg.RPCTimeout = time.Minute })
	defer c.net.Heal()
	waitFor(t, 20*time.Second, "cluster", func() error { return agreed(c.agents, allAlive(3)) })
	if _, err := c.agents[0].Add(context.Background(), []agent.CounterItem{{Key: "k", Delta: 1}}, agent.Local); err != nil {
		t.Fatal(err)
	}
	if err := c.net.Partition([]string{ip(0)}, []string{ip(1), ip(2)}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	if err := c.agents[0].Leave(ctx); err != nil {
		t.Fatalf("leave during a partition: %v; want the serf leave to go out within the time given", err)
	}
	// memberlist's probes across the cut end only at their timeouts, after
	// Shutdown: wait for them, so no goroutine outlives the test.
	c.net.Heal()
	for _, a := range c.agents {
		a.Shutdown()
	}
	waitFor(t, 10*time.Second, "memberlist's probes to end", func() error {
		buf := make([]byte, 1<<20)
		if bytes.Contains(buf[:runtime.Stack(buf, true)], []byte("memberlist.(*Memberlist).probeNode")) {
			return errors.New("a probe is still waiting")
		}
		return nil
	})
}

// With a voter down, a peer that joins is added only once its quiet period
// is over: adding it at once would leave 2 of 4 voters able to promise, 3
// needed, and stop every lock until it ended. Meanwhile the three voters
// (two alive) keep granting.
func TestVoterAddWaitsForAPromisingMajority(t *testing.T) {
	c := newCluster(t, 3, nil)
	started := time.Now()
	waitFor(t, 20*time.Second, "three voters", func() error { return votersAre(c.agents, "n1", "n2", "n3") })
	const lockDelay = 2 * time.Second // newAgentConfig's
	waitFor(t, 20*time.Second, "the voters' quiet periods to end", func() error {
		if d := time.Since(started); d < lockDelay {
			return fmt.Errorf("%v since the start", d)
		}
		return nil
	})
	c.agents[2].Shutdown() // a crash: n3 stays a voter
	waitFor(t, 20*time.Second, "n3 failed", func() error {
		for _, a := range c.agents[:2] {
			if st := statuses(a)["n3"]; st != "failed" {
				return fmt.Errorf("%s sees n3 %s", a.NodeName(), st)
			}
		}
		return nil
	})
	cfg := newAgentConfig(t, c.net, 3)
	cfg.StartJoin = []string{ip(0) + ":7946"}
	cfg.Locks.BootstrapExpect = 3
	before := time.Now()
	n4 := startAgent(t, cfg)
	live := []*agent.Agent{c.agents[0], c.agents[1], n4}
	waitFor(t, 30*time.Second, "n4 added", func() error {
		err := votersAre(live, "n1", "n2", "n3", "n4")
		if v, _ := c.agents[0].Voters(); slices.Contains(v.Members, "n4") && time.Since(before) < lockDelay {
			t.Fatalf("n4 was added %v after it started, within its quiet period (%v)", time.Since(before), lockDelay)
		}
		return err
	})
	acquireEventually(t, c.agents[0], "after-the-add", agent.LockRequest{})
}
