package memnet_test

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
	"github.com/ringleader/ringleader/simulation/memnet"
)

// fastMemberlist is memberlist's local config with timings cut so that a
// failure is detected within about two seconds, over tr.
func fastMemberlist(name string, tr *memnet.Transport) *memberlist.Config {
	cfg := memberlist.DefaultLocalConfig()
	cfg.Name = name
	cfg.Transport = tr
	cfg.LogOutput = io.Discard
	cfg.ProbeInterval = 100 * time.Millisecond
	cfg.ProbeTimeout = 50 * time.Millisecond
	cfg.GossipInterval = 20 * time.Millisecond
	cfg.PushPullInterval = time.Second
	cfg.TCPTimeout = 500 * time.Millisecond
	return cfg
}

// alive returns the names of the members m sees alive, sorted.
func alive(m *memberlist.Memberlist) []string {
	var names []string
	for _, node := range m.Members() {
		if node.State == memberlist.StateAlive {
			names = append(names, node.Name)
		}
	}
	slices.Sort(names)
	return names
}

// Five memberlist instances over memnet find each other, mark an isolated
// one dead, and take it back after the network heals.
func TestMemberlistOverMemnet(t *testing.T) {
	n, err := memnet.New(memnet.DefaultConfig())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	members, names := startMembers(t, n, "10.0.1", 5)
	views := func() string { return views(members) }
	start := time.Now()
	eventually(t, 10*time.Second, seeAllAlive(members, names), "not all see 5 alive:%s", views())
	t.Logf("all 5 alive after %v", time.Since(start).Round(time.Millisecond))

	start = time.Now()
	if err := n.Isolate("10.0.1.5"); err != nil {
		t.Fatalf("Isolate: %v", err)
	}
	eventually(t, 10*time.Second, seeAllAlive(members[:4], names[:4]), "the isolated n5 is still alive to some:%s", views())
	t.Logf("n5 dead to the other 4 after %v", time.Since(start).Round(time.Millisecond))
	for _, m := range members[:4] {
		for _, node := range m.Members() {
			if node.Name == "n5" {
				t.Fatalf("%s still lists n5 as %v; want it dead", m.LocalNode().Name, node.State)
			}
		}
	}

	// After heal n5 joins again, as serf's reconnect or an agent's retry
	// join would make it.
	start = time.Now()
	n.Heal()
	if _, err := members[4].Join([]string{"10.0.1.1:7946"}); err != nil {
		t.Fatalf("n5 Join after heal: %v", err)
	}
	eventually(t, 10*time.Second, seeAllAlive(members, names), "not all see 5 alive after heal:%s", views())
	t.Logf("all 5 alive again after %v", time.Since(start).Round(time.Millisecond))
}

// Three serf agents over memnet see each other alive, with their tags.
func TestSerfOverMemnet(t *testing.T) {
	n, err := memnet.New(memnet.DefaultConfig())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	var agents []*serf.Serf
	for i := 1; i <= 3; i++ {
		h, err := n.AddHost(fmt.Sprintf("10.0.2.%d", i))
		if err != nil {
			t.Fatalf("AddHost: %v", err)
		}
		tr, err := h.GossipTransport(7946)
		if err != nil {
			t.Fatalf("GossipTransport: %v", err)
		}
		name := fmt.Sprintf("s%d", i)
		cfg := serf.DefaultConfig()
		cfg.NodeName = name
		cfg.Tags = map[string]string{"role": "peer", "rpc": h.IP() + ":7947"}
		cfg.LogOutput = io.Discard
		cfg.MemberlistConfig = fastMemberlist(name, tr)
		s, err := serf.Create(cfg)
		if err != nil {
			tr.Shutdown()
			t.Fatalf("serf.Create(%s): %v", name, err)
		}
		t.Cleanup(func() { s.Shutdown() })
		agents = append(agents, s)
	}
	for _, s := range agents[1:] {
		if _, err := s.Join([]string{"10.0.2.1:7946"}, true); err != nil {
			t.Fatalf("%s Join: %v", s.LocalMember().Name, err)
		}
	}
	allAlive := func() bool {
		for _, s := range agents {
			count := 0
			for _, m := range s.Members() {
				if m.Status == serf.StatusAlive && m.Tags["role"] == "peer" && m.Tags["rpc"] == m.Addr.String()+":7947" {
					count++
				}
			}
			if count != 3 {
				return false
			}
		}
		return true
	}
	eventually(t, 10*time.Second, allAlive, "not all 3 serf agents see 3 alive peers with tags")
}

// startMembers starts count memberlist instances on new hosts prefix.1 to
// prefix.count, all joined through the first, and shuts them down when the
// test ends. It returns them and their names, n1 to n<count>.
func startMembers(t *testing.T, n *memnet.Network, prefix string, count int) ([]*memberlist.Memberlist, []string) {
	t.Helper()
	var (
		members []*memberlist.Memberlist
		names   []string
	)
	for i := 1; i <= count; i++ {
		h, err := n.AddHost(fmt.Sprintf("%s.%d", prefix, i))
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
		if _, err := m.Join([]string{prefix + ".1:7946"}); err != nil {
			t.Fatalf("%s Join: %v", m.LocalNode().Name, err)
		}
	}
	return members, names
}

// seeAllAlive reports whether every member of ms sees exactly want alive.
func seeAllAlive(ms []*memberlist.Memberlist, want []string) func() bool {
	return func() bool {
		for _, m := range ms {
			if !slices.Equal(alive(m), want) {
				return false
			}
		}
		return true
	}
}

// views describes who each member sees alive, for failure messages.
func views(members []*memberlist.Memberlist) string {
	var b strings.Builder
	for _, m := range members {
		fmt.Fprintf(&b, "\n%s sees %v alive", m.LocalNode().Name, alive(m))
	}
	return b.String()
}
