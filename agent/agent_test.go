package agent_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/serf/serf"
	"go.uber.org/goleak"

	"github.com/ringleader/ringleader/agent"
	"github.com/ringleader/ringleader/agent/store"
	"github.com/ringleader/ringleader/simulation/memnet"
)

func TestMain(m *testing.M) {
	// serf.SetTags waits for its gossip in a goroutine the agent does not
	// wait for (agent/voters.go, syncVoterTag): at most serf's broadcast
	// timeout. And memberlist's Shutdown does not wait for a probe in
	// flight: probeNode ends at its own timeout, which grows (Lifeguard)
	// while peers are unreachable, as in the partition tests.
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/hashicorp/memberlist.(*Memberlist).UpdateNode"),
		goleak.IgnoreAnyFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"))
}

// fastTimings are LAN timings at a quarter, so a test cluster settles in
// about a second, yet probes do not time out when a CI machine running the
// race detector and other packages' tests stalls for a few hundred
// milliseconds. Joins keep the full TCP timeout for the same reason.
var fastTimings = func() agent.Timings {
	t := agent.DefaultTimings().Scaled(0.25)
	t.TCPTimeout = agent.DefaultTimings().TCPTimeout
	return t
}()

// testCluster is n agents on one in-memory network, host i at 10.0.0.i.
type testCluster struct {
	t      *testing.T
	net    *memnet.Network
	agents []*agent.Agent
}

func ip(i int) string { return fmt.Sprintf("10.0.0.%d", i+1) }

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("AGENT_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// newAgentConfig returns the config of agent i on net.
func newAgentConfig(t *testing.T, net *memnet.Network, i int) agent.Config {
	t.Helper()
	host, err := net.AddHost(ip(i))
	if err != nil {
		t.Fatal(err)
	}
	return hostConfig(t, host, i)
}

// hostConfig returns the config of agent i on an existing host.
func hostConfig(t *testing.T, host *memnet.Host, i int) agent.Config {
	t.Helper()
	gossip, err := host.GossipTransport(7946)
	if err != nil {
		t.Fatal(err)
	}
	cfg := agent.DefaultConfig()
	cfg.NodeName = fmt.Sprintf("n%d", i+1)
	cfg.BindAddr = ip(i) + ":7946"
	cfg.RPCAddr = ip(i) + ":7947"
	cfg.HTTPAddr = ""
	cfg.DataDir = ""
	cfg.Timings = fastTimings
	cfg.GossipTransport = gossip
	cfg.RPCTransport = host
	cfg.RPCTimeout = 500 * time.Millisecond
	cfg.Counters.SpreadInterval = 20 * time.Millisecond
	cfg.Counters.AntiEntropyInterval = 250 * time.Millisecond
	cfg.Counters.MajorityTimeout = time.Second
	cfg.Counters.IdentityTimeout = 5 * time.Second
	cfg.Locks.LockDelay = 2 * time.Second
	cfg.Locks.DriftMargin = 200 * time.Millisecond
	cfg.Locks.DefaultTTL = time.Second
	cfg.Logger = testLogger(t).With("test", t.Name())
	return cfg
}

func newNetwork(t *testing.T) *memnet.Network {
	t.Helper()
	n, err := memnet.New(memnet.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// startAgent starts an agent with cfg and shuts it down when the test ends.
func startAgent(t *testing.T, cfg agent.Config) *agent.Agent {
	t.Helper()
	a, err := agent.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Shutdown() })
	return a
}

// newCluster starts n agents, all joined through the first.
func newCluster(t *testing.T, n int, mutate func(i int, cfg *agent.Config)) *testCluster {
	t.Helper()
	c := &testCluster{t: t, net: newNetwork(t)}
	for i := range n {
		cfg := newAgentConfig(t, c.net, i)
		// The voter set forms with all n at once, as for a new cluster
		// started with --bootstrap-expect.
		cfg.Locks.BootstrapExpect = n
		if i > 0 {
			cfg.StartJoin = []string{ip(0) + ":7946"}
		}
		if mutate != nil {
			mutate(i, &cfg)
		}
		c.agents = append(c.agents, startAgent(t, cfg))
	}
	return c
}

// startWithDirs starts n agents on their own hosts of net, each with a data
// dir, all joined through the first; mutate (if not nil) adjusts each
// config. The hosts and dirs let a test restart an agent where it was.
func startWithDirs(t *testing.T, net *memnet.Network, n int, mutate func(i int, cfg *agent.Config)) (as []*agent.Agent, hosts []*memnet.Host, dirs []string) {
	t.Helper()
	for i := range n {
		h, err := net.AddHost(ip(i))
		if err != nil {
			t.Fatal(err)
		}
		hosts = append(hosts, h)
		dirs = append(dirs, t.TempDir())
		cfg := hostConfig(t, h, i)
		cfg.DataDir = dirs[i]
		if i > 0 {
			cfg.StartJoin = []string{ip(0)}
		}
		if mutate != nil {
			mutate(i, &cfg)
		}
		as = append(as, startAgent(t, cfg))
	}
	return as, hosts, dirs
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v, still waiting for %s: %v", timeout, what, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// statuses returns name -> status as a sees the cluster.
func statuses(a *agent.Agent) map[string]string {
	ms, err := a.Members()
	if err != nil {
		return nil
	}
	out := map[string]string{}
	for _, m := range ms {
		out[m.Name] = m.Status
	}
	return out
}

// agreed checks that every agent in as sees exactly want (name -> status)
// and that all report one ring checksum with the alive peers in it.
func agreed(as []*agent.Agent, want map[string]string) error {
	var sum string
	for _, a := range as {
		got := statuses(a)
		for name, st := range want {
			if got[name] != st {
				return fmt.Errorf("%s sees %s as %q, want %q", a.NodeName(), name, got[name], st)
			}
		}
		v := a.View()
		alive := 0
		for _, st := range want {
			if st == "alive" {
				alive++
			}
		}
		if v.Ring.Len() != alive {
			return fmt.Errorf("%s's ring has %d members, want %d", a.NodeName(), v.Ring.Len(), alive)
		}
		if sum == "" {
			sum = v.Ring.ChecksumHex()
		} else if v.Ring.ChecksumHex() != sum {
			return fmt.Errorf("%s's ring checksum %s differs from %s", a.NodeName(), v.Ring.ChecksumHex(), sum)
		}
	}
	return nil
}

func allAlive(n int) map[string]string {
	want := map[string]string{}
	for i := range n {
		want[fmt.Sprintf("n%d", i+1)] = "alive"
	}
	return want
}

func TestClusterFormsAndAgreesOnTheRing(t *testing.T) {
	c := newCluster(t, 5, nil)
	waitFor(t, 20*time.Second, "5 alive members and one ring everywhere", func() error {
		return agreed(c.agents, allAlive(5))
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	name, err := c.agents[0].Ping(ctx, "n5")
	if err != nil || name != "n5" {
		t.Fatalf("peer rpc ping n1 -> n5: got %q, %v", name, err)
	}
}

func TestFailedPeerLeavesTheRing(t *testing.T) {
	c := newCluster(t, 5, nil)
	waitFor(t, 30*time.Second, "cluster", func() error { return agreed(c.agents, allAlive(5)) })

	c.agents[4].Shutdown() // a crash: no leave
	want := allAlive(4)
	want["n5"] = "failed"
	waitFor(t, 30*time.Second, "n5 marked failed and out of the ring", func() error {
		return agreed(c.agents[:4], want)
	})
	if err := c.agents[0].ForceLeave("n5", false); err != nil {
		t.Fatalf("force-leave of a failed member: %v", err)
	}
	want["n5"] = "left"
	waitFor(t, 20*time.Second, "n5 left after force-leave", func() error {
		return agreed(c.agents[:4], want)
	})
}

func TestGracefulLeaveShowsLeft(t *testing.T) {
	c := newCluster(t, 3, nil)
	waitFor(t, 30*time.Second, "cluster", func() error { return agreed(c.agents, allAlive(3)) })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.agents[2].Leave(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.agents[2].Leave(ctx); err != nil {
		t.Fatalf("second Leave: %v", err)
	}
	c.agents[2].Shutdown()
	c.agents[2].Shutdown()
	want := allAlive(2)
	want["n3"] = "left"
	waitFor(t, 20*time.Second, "n3 left, never failed", func() error {
		for _, a := range c.agents[:2] {
			if st := statuses(a)["n3"]; st == "failed" {
				t.Fatalf("%s saw n3 as failed after a graceful leave", a.NodeName())
			}
		}
		return agreed(c.agents[:2], want)
	})
}

func TestForceLeaveRefusesAliveAndUnknown(t *testing.T) {
	c := newCluster(t, 2, nil)
	waitFor(t, 30*time.Second, "cluster", func() error { return agreed(c.agents, allAlive(2)) })
	for _, tc := range []struct {
		name string
		want error
	}{
		{"n2", agent.ErrMemberAlive},
		{"nobody", agent.ErrUnknownMember},
	} {
		if err := c.agents[0].ForceLeave(tc.name, false); !errors.Is(err, tc.want) {
			t.Errorf("ForceLeave(%s) = %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestPartitionHeals(t *testing.T) {
	c := newCluster(t, 5, nil)
	waitFor(t, 30*time.Second, "cluster", func() error { return agreed(c.agents, allAlive(5)) })
	if err := c.net.Partition([]string{ip(0), ip(1)}, []string{ip(2), ip(3), ip(4)}); err != nil {
		t.Fatal(err)
	}
	majority := allAlive(5)
	majority["n1"], majority["n2"] = "failed", "failed"
	waitFor(t, 20*time.Second, "the majority side marks the minority failed", func() error {
		return agreed(c.agents[2:], majority)
	})
	c.net.Heal()
	waitFor(t, 20*time.Second, "all alive again after heal", func() error {
		return agreed(c.agents, allAlive(5))
	})
}

func TestSettingsMismatchRefusesToJoin(t *testing.T) {
	for _, tc := range []struct {
		name, flag string
		change     func(*agent.Config)
	}{
		{"vnodes", "--vnodes", func(c *agent.Config) { c.VNodes = 64 }},
		{"lock-delay", "--lock-delay", func(c *agent.Config) { c.Locks.LockDelay = 3 * time.Second }},
		{"drift margin", "--lock-drift-margin", func(c *agent.Config) { c.Locks.DriftMargin = 300 * time.Millisecond }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			net := newNetwork(t)
			startAgent(t, newAgentConfig(t, net, 0))
			cfg := newAgentConfig(t, net, 1)
			tc.change(&cfg)
			a := startAgent(t, cfg)
			_, err := a.Join(context.Background(), []string{ip(0) + ":7946"})
			if !errors.Is(err, agent.ErrSettingsMismatch) || !strings.Contains(err.Error(), tc.flag) {
				t.Fatalf("join with another %s: got %v, want ErrSettingsMismatch naming %s", tc.name, err, tc.flag)
			}
		})
	}
}

func TestEncryption(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	other := []byte("fedcba9876543210fedcba9876543210")
	net := newNetwork(t)
	var as []*agent.Agent
	for i := range 2 {
		cfg := newAgentConfig(t, net, i)
		cfg.EncryptKey = key
		if i > 0 {
			cfg.StartJoin = []string{ip(0)}
		}
		as = append(as, startAgent(t, cfg))
	}
	waitFor(t, 20*time.Second, "encrypted cluster", func() error { return agreed(as, allAlive(2)) })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := as[0].Ping(ctx, "n2"); err != nil {
		t.Fatalf("authenticated ping: %v", err)
	}

	for _, tc := range []struct {
		name string
		key  []byte
		host int
	}{{"wrong key", other, 2}, {"no key", nil, 3}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := newAgentConfig(t, net, tc.host)
			cfg.NodeName = "intruder"
			cfg.EncryptKey = tc.key
			a := startAgent(t, cfg)
			if _, err := a.Join(context.Background(), []string{ip(0)}); !errors.Is(err, agent.ErrJoin) {
				t.Fatalf("join: got %v, want ErrJoin", err)
			}
			if st := statuses(as[0])["intruder"]; st != "" {
				t.Fatalf("n1 lists the intruder as %q", st)
			}
		})
	}
}

// A member without role=peer (a stock serf agent) is listed but kept out
// of the ring.
func TestNonPeerMemberStaysOutOfTheRing(t *testing.T) {
	c := newCluster(t, 2, nil)
	host, err := c.net.AddHost("10.0.0.50")
	if err != nil {
		t.Fatal(err)
	}
	tr, err := host.GossipTransport(7946)
	if err != nil {
		t.Fatal(err)
	}
	sc := serf.DefaultConfig()
	sc.NodeName = "plain-serf"
	sc.LogOutput = io.Discard
	sc.MemberlistConfig.Transport = tr
	sc.MemberlistConfig.LogOutput = io.Discard
	sc.MemberlistConfig.AdvertiseAddr = "10.0.0.50"
	sc.MemberlistConfig.AdvertisePort = 7946
	sc.Tags = map[string]string{"role": "web"}
	s, err := serf.Create(sc)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		s.Shutdown()
		<-s.ShutdownCh()
	}()
	if _, err := s.Join([]string{ip(0) + ":7946"}, false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "plain-serf listed, ring unchanged", func() error {
		for _, a := range c.agents {
			ms, err := a.Members()
			if err != nil {
				return err
			}
			var found bool
			for _, m := range ms {
				if m.Name == "plain-serf" {
					found = true
					if m.Status != "alive" || m.InRing || m.Peer {
						return fmt.Errorf("%s lists plain-serf as %+v", a.NodeName(), m)
					}
				}
			}
			if !found {
				return fmt.Errorf("%s does not list plain-serf yet", a.NodeName())
			}
		}
		return agreed(c.agents, allAlive(2))
	})
	for _, a := range c.agents { // the plain serf member is alive, but no peer
		if got, err := a.AlivePeers(); err != nil || !slices.Equal(got, []string{"n1", "n2"}) {
			t.Fatalf("%s: AlivePeers = %v, %v; want [n1 n2]", a.NodeName(), got, err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	base := agent.DefaultConfig()
	base.NodeName = "n1"
	for _, tc := range []struct {
		name   string
		mutate func(c *agent.Config)
		want   string
	}{
		{"default is valid", func(c *agent.Config) {}, ""},
		{"empty name", func(c *agent.Config) { c.NodeName = "" }, "node name is empty"},
		{"bad name", func(c *agent.Config) { c.NodeName = "a b" }, "node name"},
		{"bad bind", func(c *agent.Config) { c.BindAddr = "nope" }, "--bind"},
		{"bad port", func(c *agent.Config) { c.RPCAddr = "1.2.3.4:99999" }, "port"},
		{"short key", func(c *agent.Config) { c.EncryptKey = []byte("short") }, "encrypt key is 5 bytes"},
		{"zero vnodes", func(c *agent.Config) { c.VNodes = 0 }, "vnodes"},
		{"empty join", func(c *agent.Config) { c.StartJoin = []string{""} }, "empty join address"},
		{"no min sync interval", func(c *agent.Config) { c.StoreMinSyncInterval = 0 }, ""},
		{"negative min sync interval", func(c *agent.Config) { c.StoreMinSyncInterval = -1 }, "--store-min-sync-interval"},
		{"long min sync interval", func(c *agent.Config) { c.StoreMinSyncInterval = time.Second }, "must be 0 to 10ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			tc.mutate(&c)
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("got %v, want valid", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestLifecycleIsIdempotent(t *testing.T) {
	net := newNetwork(t)
	a, err := agent.New(newAgentConfig(t, net, 0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Join(context.Background(), []string{"x"}); !errors.Is(err, agent.ErrNotStarted) {
		t.Fatalf("join before start: %v", err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err == nil {
		t.Fatal("second Start succeeded")
	}
	a.Shutdown()
	a.Shutdown()
	if err := a.Leave(context.Background()); err != nil {
		t.Fatalf("leave after shutdown: %v", err)
	}
	if _, err := a.Members(); !errors.Is(err, agent.ErrShutdown) {
		t.Fatalf("members after shutdown: %v", err)
	}
}

// A crashed peer restarted with its data dir rejoins by itself, with no
// seed given.
func TestRestartRejoinsFromDataDir(t *testing.T) {
	net := newNetwork(t)
	as, hosts, dirs := startWithDirs(t, net, 3, func(i int, cfg *agent.Config) {
		// The others never reconnect to n3, so only n3 itself can rejoin.
		cfg.Timings.ReconnectInterval = time.Hour
	})
	waitFor(t, 30*time.Second, "cluster", func() error { return agreed(as, allAlive(3)) })
	as[2].Shutdown() // crash
	want := allAlive(2)
	want["n3"] = "failed"
	waitFor(t, 30*time.Second, "n3 failed", func() error { return agreed(as[:2], want) })

	// Serf's own snapshot may miss the last members joined before a kill -9
	// (it flushes lazily); without it the known-peers file must do.
	if err := os.Remove(filepath.Join(dirs[2], "serf.snapshot")); err != nil {
		t.Fatal(err)
	}
	cfg := hostConfig(t, hosts[2], 2)
	cfg.DataDir = dirs[2]
	as[2] = startAgent(t, cfg)
	waitFor(t, 30*time.Second, "n3 back without a seed", func() error { return agreed(as, allAlive(3)) })
}

func TestRetryJoinWaitsForTheSeed(t *testing.T) {
	net := newNetwork(t)
	cfg := newAgentConfig(t, net, 1)
	cfg.RetryJoin = []string{ip(0)}
	cfg.RetryJoinInterval = 20 * time.Millisecond
	cfg.RetryJoinMaxInterval = 100 * time.Millisecond
	late := startAgent(t, cfg) // the seed's host does not exist yet
	waitFor(t, 5*time.Second, "a few failed attempts", func() error {
		if n := net.Stats()[ip(1)].DialsFailed; n < 3 {
			return fmt.Errorf("%d failed dials", n)
		}
		return nil
	})
	seed := startAgent(t, newAgentConfig(t, net, 0))
	waitFor(t, 20*time.Second, "retry-join succeeds once the seed is up", func() error {
		return agreed([]*agent.Agent{seed, late}, allAlive(2))
	})
}

func TestRetryJoinSettingsMismatchIsFatal(t *testing.T) {
	net := newNetwork(t)
	startAgent(t, newAgentConfig(t, net, 0))
	cfg := newAgentConfig(t, net, 1)
	cfg.VNodes = 32
	cfg.RetryJoin = []string{ip(0)}
	cfg.RetryJoinInterval = 20 * time.Millisecond
	a := startAgent(t, cfg)
	select {
	case err := <-a.Fatal():
		if !errors.Is(err, agent.ErrSettingsMismatch) || !strings.Contains(err.Error(), "rl-vnodes") {
			t.Fatalf("fatal error %v, want a settings mismatch naming rl-vnodes", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("retry-join kept going after the cluster refused its settings")
	}
}

// A refusal of some other peer's settings must not count as this peer's
// own: a healthy peer in retry-join keeps going.
func TestRefusingAnotherPeerIsNotFatal(t *testing.T) {
	net := newNetwork(t)
	cfg := newAgentConfig(t, net, 0)
	cfg.RetryJoin = []string{"10.0.0.99"} // never answers
	cfg.RetryJoinInterval = 10 * time.Millisecond
	cfg.RetryJoinMaxInterval = 20 * time.Millisecond
	healthy := startAgent(t, cfg)

	bad := newAgentConfig(t, net, 1)
	bad.VNodes = 64
	b := startAgent(t, bad)
	if _, err := b.Join(context.Background(), []string{ip(0)}); !errors.Is(err, agent.ErrSettingsMismatch) {
		t.Fatalf("bad peer's join: %v", err)
	}
	failed := net.Stats()[ip(0)].DialsFailed
	waitFor(t, 20*time.Second, "more retry-join attempts after the refusal", func() error {
		select {
		case err := <-healthy.Fatal():
			t.Fatalf("healthy peer got a fatal error: %v", err)
		default:
		}
		if n := net.Stats()[ip(0)].DialsFailed; n < failed+5 {
			return fmt.Errorf("%d failed dials since", n-failed)
		}
		return nil
	})
}

// A peer restarted from its data dir with other settings is refused by the
// cluster it rejoins, and says so.
func TestRejoinWithOtherSettingsIsFatal(t *testing.T) {
	net := newNetwork(t)
	h0, err := net.AddHost(ip(0))
	if err != nil {
		t.Fatal(err)
	}
	h1, err := net.AddHost(ip(1))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	first := startAgent(t, hostConfig(t, h0, 0))
	cfg := hostConfig(t, h1, 1)
	cfg.DataDir = dir
	cfg.StartJoin = []string{ip(0)}
	second := startAgent(t, cfg)
	waitFor(t, 20*time.Second, "pair", func() error { return agreed([]*agent.Agent{first, second}, allAlive(2)) })
	second.Shutdown()

	cfg = hostConfig(t, h1, 1)
	cfg.DataDir = dir
	cfg.VNodes = 64
	restarted := startAgent(t, cfg)
	select {
	case err := <-restarted.Fatal():
		if !errors.Is(err, agent.ErrSettingsMismatch) {
			t.Fatalf("fatal error %v, want a settings mismatch", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the restarted peer with other settings kept running")
	}
}

// Two peers cannot share a data dir: the second refuses to start and says
// why.
func TestDataDirIsExclusive(t *testing.T) {
	net := newNetwork(t)
	dir := t.TempDir()
	cfg := newAgentConfig(t, net, 0)
	cfg.DataDir = dir
	startAgent(t, cfg)
	other := newAgentConfig(t, net, 1)
	other.DataDir = dir
	a, err := agent.New(other)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown()
	if err := a.Start(context.Background()); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("second peer on one data dir: got %v, want store.ErrLocked", err)
	}
}
