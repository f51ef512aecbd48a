package agent_test

import (
	"fmt"
	"io"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/ringleader/ringleader/agent"
)

// A peer pruned with force-leave and restarted with its data dir enters
// every ring at once. Serf keeps the prune's leave intent for minutes: a
// peer that hears the rejoin lists the member as leaving with its
// EventMemberJoin, and turns it alive when the newer join intent arrives,
// with no event. The ring must follow that too; before it did, some peers
// kept the member out until an unrelated event, 12-15 s later.
func TestRejoinAfterPruneEntersEveryRing(t *testing.T) {
	net := newNetwork(t)
	// Default lock timings, as in the report: a restarted peer promises
	// nothing for a lock-delay (15 s), so the voter-set change that
	// re-adds n4, whose tag updates used to rebuild the rings by chance,
	// comes only that much later.
	locks := agent.DefaultLockConfig()
	as, hosts, dirs := startWithDirs(t, net, 4, func(_ int, cfg *agent.Config) { cfg.Locks = locks })
	waitFor(t, 30*time.Second, "cluster", func() error { return agreed(as, allAlive(4)) })

	as[3].Shutdown() // a crash: no leave
	want := allAlive(3)
	want["n4"] = "failed"
	waitFor(t, 30*time.Second, "n4 failed", func() error { return agreed(as[:3], want) })
	if err := as[0].ForceLeave("n4", true); err != nil {
		t.Fatalf("force-leave --prune of a failed member: %v", err)
	}
	waitFor(t, 20*time.Second, "n4 forgotten everywhere", func() error {
		for _, a := range as[:3] {
			if st, ok := statuses(a)["n4"]; ok {
				return fmt.Errorf("%s still lists n4 as %s", a.NodeName(), st)
			}
		}
		return nil
	})

	cfg := hostConfig(t, hosts[3], 3)
	cfg.DataDir = dirs[3]
	cfg.StartJoin = []string{ip(0)}
	cfg.Locks = locks
	as[3] = startAgent(t, cfg)
	// The serf status is right within a gossip round or two; 5 s leaves the
	// ring a few probe intervals to follow it, and is far below the 12 s the
	// next unrelated event may take.
	waitFor(t, 5*time.Second, "n4 alive and in every ring", func() error {
		return agreed(as, allAlive(4))
	})
}

// The ring follows serf's member statuses also when serf changes one with
// no event: a leave intent turns an alive member leaving, a newer join
// intent turns it alive again, and neither sends an event. A plain
// memberlist member posing as a peer ("ghost") cannot refute a leave
// intent about itself, so its status stays wherever the intents put it,
// and no other event comes to rebuild the rings by chance.
func TestRingFollowsStatusChangesWithoutEvents(t *testing.T) {
	c := newCluster(t, 2, nil)
	waitFor(t, 30*time.Second, "cluster", func() error { return agreed(c.agents, allAlive(2)) })
	waitVoters(t, c, 2) // ghost copies n1's tags, the voter tag with them

	ghost := startGhost(t, c, "10.0.0.50")
	want := allAlive(2)
	want["ghost"] = "alive"
	waitFor(t, 20*time.Second, "ghost alive and in every ring", func() error { return agreed(c.agents, want) })
	// n1 adds ghost to the voter set; the voter tag updates that follow are
	// member events that would rebuild the rings anyway, so wait them out.
	waitVoters(t, c, 3)

	// Serf's intents: one type byte, then the message as a msgpack map
	// (serf/messages.go: messageLeaveType 0, messageJoinType 1).
	intent := func(typ byte, msg any) {
		t.Helper()
		b, err := msgpack.Marshal(msg)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range ghost.Members() {
			if n.Name == "n1" {
				if err := ghost.SendBestEffort(n, append([]byte{typ}, b...)); err != nil {
					t.Fatal(err)
				}
				return
			}
		}
		t.Fatal("ghost does not see n1")
	}
	type leave struct {
		LTime uint64
		Node  string
		Prune bool
	}
	type join struct {
		LTime uint64
		Node  string
	}

	intent(0, leave{LTime: 1000, Node: "ghost"})
	want["ghost"] = "leaving"
	waitFor(t, 5*time.Second, "ghost leaving and out of every ring", func() error { return agreed(c.agents, want) })

	intent(1, join{LTime: 1001, Node: "ghost"})
	want["ghost"] = "alive"
	waitFor(t, 5*time.Second, "ghost alive and back in every ring", func() error { return agreed(c.agents, want) })
}

// waitVoters waits until every agent of c sees every agent's voter tag
// name a set of n voters.
func waitVoters(t *testing.T, c *testCluster, n int) {
	t.Helper()
	suffix := fmt.Sprintf("/%d", n)
	waitFor(t, 20*time.Second, "a voter set of "+suffix[1:]+" everywhere", func() error {
		for _, a := range c.agents {
			ms, err := a.Members()
			if err != nil {
				return err
			}
			for _, m := range ms {
				if v := m.Tags[agent.TagVoters]; m.Name != "ghost" && !strings.HasSuffix(v, suffix) {
					return fmt.Errorf("%s sees %s's voter tag %q", a.NodeName(), m.Name, v)
				}
			}
		}
		return nil
	})
}

// startGhost joins a plain memberlist member at addr to c, tagged like n1 but
// for its RPC address, which no one answers. It stops when the test ends.
func startGhost(t *testing.T, c *testCluster, addr string) *memberlist.Memberlist {
	t.Helper()
	var tags map[string]string
	ms, err := c.agents[0].Members()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Name == "n1" {
			tags = maps.Clone(m.Tags)
		}
	}
	tags[agent.TagRPC] = addr + ":7947"
	b, err := msgpack.Marshal(tags)
	if err != nil {
		t.Fatal(err)
	}
	host, err := c.net.AddHost(addr)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := host.GossipTransport(7946)
	if err != nil {
		t.Fatal(err)
	}
	mc := memberlist.DefaultLANConfig()
	mc.Name = "ghost"
	mc.Transport = tr
	mc.AdvertiseAddr = addr
	mc.AdvertisePort = 7946
	mc.LogOutput = io.Discard
	mc.ProbeInterval = fastTimings.ProbeInterval
	mc.ProbeTimeout = fastTimings.ProbeTimeout
	mc.GossipInterval = fastTimings.GossipInterval
	mc.PushPullInterval = fastTimings.PushPullInterval
	// Serf's protocol range, or memberlist refuses the join.
	mc.DelegateProtocolVersion = serf.ProtocolVersionMax
	mc.DelegateProtocolMin = serf.ProtocolVersionMin
	mc.DelegateProtocolMax = serf.ProtocolVersionMax
	// Serf's tag encoding: a magic byte 255, then a msgpack map.
	mc.Delegate = ghostDelegate{meta: append([]byte{255}, b...)}
	ml, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ml.Shutdown() })
	if _, err := ml.Join([]string{ip(0) + ":7946"}); err != nil {
		t.Fatal(err)
	}
	return ml
}

// ghostDelegate gives memberlist a serf member's tags and ignores the rest.
type ghostDelegate struct{ meta []byte }

func (d ghostDelegate) NodeMeta(int) []byte           { return d.meta }
func (ghostDelegate) NotifyMsg([]byte)                {}
func (ghostDelegate) GetBroadcasts(int, int) [][]byte { return nil }
func (ghostDelegate) LocalState(bool) []byte          { return nil }
func (ghostDelegate) MergeRemoteState([]byte, bool)   {}
