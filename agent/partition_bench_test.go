package agent

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/serf/serf"
	dto "github.com/prometheus/client_model/go"

	"github.com/ringleader/ringleader/simulation/memnet"
)

// BenchmarkPartitionRepair measures how counters heal after a partition:
// 5 agents with the default timings on an in-memory network; n1,n2 are cut
// off from n3,n4,n5 for 60 s (RL_PARTITION overrides, e.g. 10s), during
// which both sides add to the same 10,000 keys. After the heal it reports:
//
//	alive-s    from the heal until every agent sees all 5 alive
//	equal-s    from then until every agent's counters are equal (digest)
//	ae-MB      anti-entropy payload bytes (digests, keys, states), all agents
//	diff-MB    encoded size of the final states of the keys that differed
//	ae/diff    their ratio
//	rpc-MB     all peer RPC frame bytes after the heal (pushes included)
//
// Run: go test ./agent -run '^$' -bench BenchmarkPartitionRepair -benchtime 1x -count 3 -timeout 30m
func BenchmarkPartitionRepair(b *testing.B) {
	partition := 60 * time.Second
	if s := os.Getenv("RL_PARTITION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			b.Fatal(err)
		}
		partition = d
	}
	const keys = 10_000
	for b.Loop() {
		net, as, ips := startInternalCluster(b, 5, nil)
		waitBench(b, 30*time.Second, "5 alive everywhere", func() bool { return allSeeAlive(as, 5) })
		defer func() {
			for _, a := range as {
				a.Shutdown()
			}
		}()
		if err := net.Partition(ips[:2], ips[2:]); err != nil {
			b.Fatal(err)
		}
		cut := time.Now()
		ctx := context.Background()
		for start := 0; start < keys; start += 100 {
			for side, a := range []*Agent{as[start/100%2], as[2+start/100%3]} {
				items := make([]CounterItem, 0, 100)
				for k := start; k < start+100; k++ {
					items = append(items, CounterItem{Key: fmt.Sprintf("p/%05d", k), Delta: int64(side*2 + 1)})
				}
				if _, err := a.Add(ctx, items, Local); err != nil {
					b.Fatal(err)
				}
			}
		}
		time.Sleep(time.Until(cut.Add(partition)))
		aeBefore, rpcBefore := sumMetric(as, "ringleader_antientropy_bytes_total"), sumMetric(as, "ringleader_rpc_bytes_total")
		net.Heal()
		healed := time.Now()
		waitBench(b, 60*time.Second, "5 alive everywhere after the heal", func() bool { return allSeeAlive(as, 5) })
		alive := time.Now()
		waitBench(b, 60*time.Second, "equal counters", func() bool { return allEqual(as) })
		equal := time.Now()
		// Let rounds in flight finish before reading the byte counts.
		time.Sleep(2 * as[0].cfg.Counters.AntiEntropyInterval)
		ae := sumMetric(as, "ringleader_antientropy_bytes_total") - aeBefore
		rpc := sumMetric(as, "ringleader_rpc_bytes_total") - rpcBefore
		var diffKeys []string
		for k := range keys {
			diffKeys = append(diffKeys, fmt.Sprintf("p/%05d", k))
		}
		enc, err := as[0].ctr.store.States(diffKeys).MarshalBinary()
		if err != nil {
			b.Fatal(err)
		}
		for k := range keys {
			if v, err := as[4].ctr.value(fmt.Sprintf("p/%05d", k)); err != nil || v != 4 {
				b.Fatalf("key %d = %d, %v; want 4 (1 from one side, 3 from the other)", k, v, err)
			}
		}
		b.ReportMetric(alive.Sub(healed).Seconds(), "alive-s")
		b.ReportMetric(equal.Sub(alive).Seconds(), "equal-s")
		b.ReportMetric(ae/1e6, "ae-MB")
		b.ReportMetric(float64(len(enc))/1e6, "diff-MB")
		b.ReportMetric(ae/float64(len(enc)), "ae/diff")
		b.ReportMetric(rpc/1e6, "rpc-MB")
	}
}

// startInternalCluster starts n agents with the default timings on a new
// in-memory network, all joined through the first; mutate may change each
// config. The caller shuts them down.
func startInternalCluster(tb testing.TB, n int, mutate func(i int, cfg *Config)) (*memnet.Network, []*Agent, []string) {
	tb.Helper()
	net, err := memnet.New(memnet.DefaultConfig())
	if err != nil {
		tb.Fatal(err)
	}
	var as []*Agent
	var ips []string
	for i := range n {
		a, ip := startInternalAgent(tb, net, i, ips, mutate)
		as, ips = append(as, a), append(ips, ip)
	}
	return net, as, ips
}

// startInternalAgent starts agent i (named n<i+1>, at 10.1.0.<i+1>) on
// net, joined through ips[0] if there is one.
func startInternalAgent(tb testing.TB, net *memnet.Network, i int, ips []string, mutate func(i int, cfg *Config)) (*Agent, string) {
	tb.Helper()
	ip := fmt.Sprintf("10.1.0.%d", i+1)
	h, err := net.AddHost(ip)
	if err != nil {
		tb.Fatal(err)
	}
	gossip, err := h.GossipTransport(7946)
	if err != nil {
		tb.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.NodeName = fmt.Sprintf("n%d", i+1)
	cfg.BindAddr, cfg.RPCAddr, cfg.HTTPAddr, cfg.DataDir = ip+":7946", ip+":7947", "", ""
	cfg.GossipTransport, cfg.RPCTransport = gossip, h
	if len(ips) > 0 {
		cfg.StartJoin = []string{ips[0]}
	}
	if mutate != nil {
		mutate(i, &cfg)
	}
	a, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return a, ip
}

func waitBench(b testing.TB, timeout time.Duration, what string, cond func() bool) {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("after %v, still waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func allSeeAlive(as []*Agent, n int) bool {
	for _, a := range as {
		s, err := a.serfOrErr()
		if err != nil {
			return false
		}
		alive := 0
		for _, m := range s.Members() {
			if m.Status == serf.StatusAlive {
				alive++
			}
		}
		if alive != n {
			return false
		}
	}
	return true
}

func allEqual(as []*Agent) bool {
	first, err := as[0].ctr.store.Digest().MarshalBinary()
	if err != nil {
		return false
	}
	for _, a := range as[1:] {
		d, err := a.ctr.store.Digest().MarshalBinary()
		if err != nil || string(d) != string(first) {
			return false
		}
	}
	return true
}

// sumMetric sums every series of a counter family over the agents.
func sumMetric(as []*Agent, name string) float64 {
	var total float64
	for _, a := range as {
		mfs, err := a.metrics.reg.Gather()
		if err != nil {
			continue
		}
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, m := range mf.Metric {
				total += counterValue(m)
			}
		}
	}
	return total
}

func counterValue(m *dto.Metric) float64 {
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return 0
}
