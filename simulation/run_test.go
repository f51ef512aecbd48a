package simulation

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"
)

// testConfig runs scenarios small and fast: 3 peers at 6× speed.
func testConfig(seed uint64) Config {
	cfg := DefaultConfig()
	cfg.Seed = seed
	cfg.Peers = 3
	cfg.Speed = 6
	cfg.Clients = 3
	if testing.Verbose() {
		cfg.Progress = os.Stderr
	}
	return cfg
}

func TestRunSmoke(t *testing.T) {
	sc, err := Parse("smoke", "start 3\nwait converged\nrun workload 2s\ncrash n2\nrestart n2\nwait converged\n", 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := Run(ctx, testConfig(1), sc)
	if err != nil {
		t.Fatal(err)
	}
	acked := 0
	for _, op := range rep.Ops {
		if op.Outcome == Acked {
			acked++
		}
	}
	t.Logf("wall %.2fs, %d ops (%d acked), %d samples, conv %+v", rep.Wall, len(rep.Ops), acked, len(rep.Samples), rep.Convergence)
	for _, v := range rep.Violations {
		t.Error(v)
	}
	if acked == 0 {
		t.Fatal("no write was acknowledged")
	}
}

// The same seed sends the same requests: each counter client's sequence
// of (peer, key, delta, consistency), and each lock client's of (hold,
// peer, key) acquires, is a prefix of the other run's (how many it sends
// depends on timing); another seed sends other writes.
func TestSameSeedSameWorkload(t *testing.T) {
	sc, err := Parse("seeded", "start 3\nrun workload 4s\n", 0)
	if err != nil {
		t.Fatal(err)
	}
	plan := func(seed uint64) map[int][]string {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		rep, err := Run(ctx, testConfig(seed), sc)
		if err != nil {
			t.Fatal(err)
		}
		out := map[int][]string{}
		for _, op := range rep.Ops {
			out[op.Client] = append(out[op.Client], fmt.Sprintf("%s %s %d %s", op.Peer, op.Key, op.Delta, op.Consistency))
		}
		// Lock clients, as clients 1000+: each hold's acquire (key, peer).
		for _, op := range rep.LockOps {
			if op.Op == "acquire" {
				out[1000+op.Client] = append(out[1000+op.Client], fmt.Sprintf("%d %s %s", op.Hold, op.Peer, op.Key))
			}
		}
		return out
	}
	a, b, other := plan(42), plan(42), plan(43)
	lockAcquires := 0
	for c := range a {
		n := min(len(a[c]), len(b[c]))
		if c >= 1000 { // lock clients send few requests: compare what there is
			lockAcquires += n
			if !slices.Equal(a[c][:n], b[c][:n]) {
				t.Fatalf("lock client %d: seed 42 sent %v then %v", c-1000, a[c][:n], b[c][:n])
			}
			continue
		}
		if n < 5 {
			t.Fatalf("client %d sent only %d requests", c, n)
		}
		if !slices.Equal(a[c][:n], b[c][:n]) {
			t.Fatalf("client %d: seed 42 sent %v then %v", c, a[c][:n], b[c][:n])
		}
		m := min(n, len(other[c]))
		if slices.Equal(a[c][:m], other[c][:m]) {
			t.Fatalf("client %d: seeds 42 and 43 sent the same %d requests", c, m)
		}
	}
	if lockAcquires < 3 {
		t.Fatalf("the lock clients sent only %d acquires in both runs", lockAcquires)
	}
}
