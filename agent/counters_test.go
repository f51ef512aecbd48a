package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringleader/ringleader/agent"
)

// add applies one increment through a, failing the test on error.
func add(t *testing.T, a *agent.Agent, key string, delta int64, cons agent.Consistency) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := a.Add(ctx, []agent.CounterItem{{Key: key, Delta: delta}}, cons)
	if err != nil {
		t.Fatalf("%s: add %d to %q: %v", a.NodeName(), delta, key, err)
	}
	return res[0].Value
}

// waitWritable waits until a has settled its replica identity.
func waitWritable(t *testing.T, as ...*agent.Agent) {
	t.Helper()
	for _, a := range as {
		waitFor(t, 15*time.Second, a.NodeName()+" ready for writes", func() error {
			if a.Status().Incarnation == 0 {
				return errors.New("identity not settled")
			}
			return nil
		})
	}
}

// converged checks that every agent reports want for every key.
func converged(as []*agent.Agent, want map[string]int64) error {
	for _, a := range as {
		for k, v := range want {
			got, err := a.Value(context.Background(), k, agent.Local)
			if err != nil {
				return fmt.Errorf("%s: %q: %v", a.NodeName(), k, err)
			}
			if got != v {
				return fmt.Errorf("%s: %q = %d, want %d", a.NodeName(), k, got, v)
			}
		}
	}
	return nil
}

// checkExact fails the test if any agent holds a value other than want for
// a key (a lost or doubled increment), naming the difference.
func checkExact(t *testing.T, as []*agent.Agent, want map[string]int64) {
	t.Helper()
	for _, a := range as {
		entries, _, err := a.ListCounters("", "", 0)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, e := range entries {
			seen[e.Key] = true
			if e.Value == nil {
				t.Errorf("%s: %q: %s, want exactly %d", a.NodeName(), e.Key, e.Error, want[e.Key])
			} else if *e.Value != want[e.Key] {
				t.Errorf("%s: %q = %d, want exactly %d (%+d)", a.NodeName(), e.Key, *e.Value, want[e.Key], *e.Value-want[e.Key])
			}
		}
		for k, v := range want {
			if !seen[k] && v != 0 {
				t.Errorf("%s: %q missing, want %d", a.NodeName(), k, v)
			}
		}
	}
}

func TestCountersSpreadToEveryPeer(t *testing.T) {
	c := newCluster(t, 3, nil)
	waitFor(t, 20*time.Second, "cluster", func() error { return agreed(c.agents, allAlive(3)) })
	waitWritable(t, c.agents...)
	want := map[string]int64{}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		a := c.agents[i%3]
		k := fmt.Sprintf("k%d", rng.IntN(20))
		d := rng.Int64N(21) - 10
		if d == 0 {
			d = 1
		}
		add(t, a, k, d, agent.Local)
		want[k] += d
	}
	waitFor(t, 10*time.Second, "every peer has every write", func() error { return converged(c.agents, want) })
	checkExact(t, c.agents, want)
	if v, err := c.agents[0].Value(context.Background(), "never-written", agent.Local); err != nil || v != 0 {
		t.Fatalf("a key never written reads %d, %v; want 0", v, err)
	}
}

func TestCountersRefuseBadWrites(t *testing.T) {
	c := newCluster(t, 1, nil)
	a := c.agents[0]
	waitWritable(t, a)
	ctx := context.Background()
	cases := []struct {
		name  string
		items []agent.CounterItem
		want  error
	}{
		{"zero delta", []agent.CounterItem{{Key: "k", Delta: 0}}, agent.ErrBadDelta},
		{"empty key", []agent.CounterItem{{Key: "", Delta: 1}}, agent.ErrBadKey},
		{"control character", []agent.CounterItem{{Key: "a\nb", Delta: 1}}, agent.ErrBadKey},
		{"no items", nil, agent.ErrBadDelta},
		{"bad idempotency key", []agent.CounterItem{{Key: "k", Delta: 1, IdempotencyKey: "a\x00"}}, agent.ErrBadKey},
		{"idempotency key twice", []agent.CounterItem{{Key: "k", Delta: 1, IdempotencyKey: "x"}, {Key: "j", Delta: 1, IdempotencyKey: "x"}}, agent.ErrBadKey},
		{"bad idempotency key has its own error", []agent.CounterItem{{Key: "k", Delta: 1, IdempotencyKey: "a\x00"}}, agent.ErrBadIdempotencyKey},
		{"idempotency key twice has its own error", []agent.CounterItem{{Key: "k", Delta: 1, IdempotencyKey: "x"}, {Key: "j", Delta: 1, IdempotencyKey: "x"}}, agent.ErrBadIdempotencyKey},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := a.Add(ctx, tc.items, agent.Local); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	if n := a.Status().CounterKeys; n != 0 {
		t.Fatalf("refused writes left %d keys", n)
	}
	// Overflow: refused, nothing changed; in a batch, the items before it
	// stay applied and the error says so.
	add(t, a, "big", 1<<62, agent.Local)
	add(t, a, "big", 1<<62-1, agent.Local)
	if _, err := a.Add(ctx, []agent.CounterItem{{Key: "big", Delta: 1}}, agent.Local); !errors.Is(err, agent.ErrBadDelta) {
		t.Fatalf("overflow: %v", err)
	}
	res, err := a.Add(ctx, []agent.CounterItem{{Key: "small", Delta: 5}, {Key: "big", Delta: 2}, {Key: "small", Delta: 7}}, agent.Local)
	if !errors.Is(err, agent.ErrBadDelta) || len(res) != 3 || res[0].Value != 5 || res[2].Key != "" {
		t.Fatalf("batch with overflow at item 1: %+v, %v", res, err)
	}
	checkExact(t, c.agents, map[string]int64{"big": 1<<63 - 1, "small": 5})
}

// A write with consistency=majority needs a strict majority of the voters,
// failed ones included; with 3 of 5 stopped it is refused (503), still
// applied locally, and reads converge once they are back.
func TestMajorityWriteNeedsMajority(t *testing.T) {
	c := newCluster(t, 5, nil)
	waitFor(t, 20*time.Second, "cluster", func() error { return agreed(c.agents, allAlive(5)) })
	waitWritable(t, c.agents...)
	add(t, c.agents[0], "m", 1, agent.Majority)
	// Cut n3, n4, n5 off from n1 and n2.
	if err := c.net.Partition([]string{ip(0), ip(1)}, []string{ip(2), ip(3), ip(4)}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// Both n1 and n2 (the owner of the Idempotency-Key below): a peer that
	// still takes a voter for alive waits for it, longer than a forwarded
	// call may take.
	waitFor(t, 30*time.Second, "n1 and n2 see the others failed", func() error {
		for _, a := range c.agents[:2] {
			st := statuses(a)
			for _, n := range []string{"n3", "n4", "n5"} {
				if st[n] != "failed" {
					return fmt.Errorf("%s sees %s %s", a.NodeName(), n, st[n])
				}
			}
		}
		return nil
	})
	res, err := c.agents[0].Add(ctx, []agent.CounterItem{{Key: "m", Delta: 10}}, agent.Majority)
	if !errors.Is(err, agent.ErrNoMajority) {
		t.Fatalf("majority write with 2 of 5 voters reachable: %v", err)
	}
	if res[0].Value != 11 {
		t.Fatalf("refused majority write: local value %d, want 11 (applied locally)", res[0].Value)
	}
	if _, err := c.agents[1].Value(ctx, "m", agent.Majority); !errors.Is(err, agent.ErrNoMajority) {
		t.Fatalf("majority read on the minority side: %v", err)
	}
	// Over HTTP with an Idempotency-Key: the retry of a write refused for
	// want of a majority is refused again, marked as a replay, and not
	// applied twice.
	srv := httptest.NewServer(c.agents[0].Handler())
	defer srv.Close()
	first := ""
	for i, wantReplayed := range []string{"", "true"} {
		req, err := http.NewRequest("POST", srv.URL+"/v1/counters/m?consistency=majority", strings.NewReader(`{"delta":1000}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Idempotency-Key", "retry-after-503")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var ans struct {
			Value *int64 `json:"value"`
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		// The value is the key's owner's: 1001, or 1011 once n1's refused
		// write above reached it. A replay answers the first one.
		if err := json.Unmarshal(body, &ans); resp.StatusCode != http.StatusServiceUnavailable || err != nil ||
			ans.Value == nil || (*ans.Value != 1001 && *ans.Value != 1011) || (first != "" && fmt.Sprint(*ans.Value) != first) {
			t.Fatalf("idempotent majority write %d: %d %s, want 503 with value 1001 or 1011 (first answer %q)", i, resp.StatusCode, body, first)
		}
		first = fmt.Sprint(*ans.Value)
		if got := resp.Header.Get("Idempotent-Replayed"); got != wantReplayed {
			t.Fatalf("idempotent majority write %d: Idempotent-Replayed %q, want %q", i, got, wantReplayed)
		}
	}
	add(t, c.agents[3], "m", 100, agent.Majority) // the majority side writes on
	c.net.Heal()
	waitFor(t, 30*time.Second, "values converge after heal", func() error {
		return converged(c.agents, map[string]int64{"m": 1111})
	})
	if v, err := c.agents[4].Value(ctx, "m", agent.Majority); err != nil || v != 1111 {
		t.Fatalf("majority read after heal: %d, %v", v, err)
	}
}

// Anti-entropy repairs what pushes missed: writes on both sides of a
// partition converge to the exact sums after the heal. Pushes are off
// here, so only anti-entropy can do it (with pushes on, memnet, like TCP,
// holds a cut stream's bytes and delivers them after the heal).
func TestPartitionRepairedExactly(t *testing.T) {
	c := newCluster(t, 5, func(i int, cfg *agent.Config) { cfg.Counters.SpreadInterval = time.Hour })
	waitFor(t, 20*time.Second, "cluster", func() error { return agreed(c.agents, allAlive(5)) })
	waitWritable(t, c.agents...)
	if err := c.net.Partition([]string{ip(0), ip(1)}, []string{ip(2), ip(3), ip(4)}); err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, a := range c.agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			for range 200 {
				k := fmt.Sprintf("p%d", rng.IntN(50))
				d := rng.Int64N(9) + 1
				if rng.IntN(3) == 0 {
					d = -d
				}
				res, err := a.Add(context.Background(), []agent.CounterItem{{Key: k, Delta: d}}, agent.Local)
				if err != nil {
					t.Errorf("%s: %v", a.NodeName(), err)
					return
				}
				_ = res
				mu.Lock()
				want[k] += d
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	c.net.Heal()
	waitFor(t, 40*time.Second, "exact sums everywhere after heal", func() error { return converged(c.agents, want) })
	checkExact(t, c.agents, want)
}

// A retry with the same Idempotency-Key is applied once, also when it goes
// through another peer, and a reuse for another request is refused.
func TestIdempotentRetryThroughAnotherPeer(t *testing.T) {
	c := newCluster(t, 3, nil)
	waitFor(t, 20*time.Second, "cluster", func() error { return agreed(c.agents, allAlive(3)) })
	waitWritable(t, c.agents...)
	ctx := context.Background()
	for i := range 20 {
		idem := fmt.Sprintf("req-%d", i)
		item := agent.CounterItem{Key: "paid", Delta: 5, IdempotencyKey: idem}
		first, err := c.agents[i%3].Add(ctx, []agent.CounterItem{item}, agent.Local)
		if err != nil {
			t.Fatal(err)
		}
		for j := range 3 {
			again, err := c.agents[j].Add(ctx, []agent.CounterItem{item}, agent.Local)
			if err != nil {
				t.Fatal(err)
			}
			if !again[0].Replayed || again[0].Value != first[0].Value {
				t.Fatalf("retry %d of %s through n%d: %+v, first %+v", j, idem, j+1, again[0], first[0])
			}
		}
		other := item
		other.Delta = 6
		if _, err := c.agents[(i+1)%3].Add(ctx, []agent.CounterItem{other}, agent.Local); !errors.Is(err, agent.ErrIdempotencyConflict) {
			t.Fatalf("reuse of %s for another delta: %v", idem, err)
		}
	}
	want := map[string]int64{"paid": 100}
	waitFor(t, 10*time.Second, "converged", func() error { return converged(c.agents, want) })
	checkExact(t, c.agents, want)
}

// A peer that leaves gracefully hands its writes over first, however
// recently they were made.
func TestLeaveHandsOverWrites(t *testing.T) {
	c := newCluster(t, 3, func(i int, cfg *agent.Config) {
		cfg.Counters.SpreadInterval = time.Hour // only the hand-off can spread
		cfg.Counters.AntiEntropyInterval = time.Hour
	})
	waitFor(t, 20*time.Second, "cluster", func() error { return agreed(c.agents, allAlive(3)) })
	waitWritable(t, c.agents...)
	want := map[string]int64{}
	for i := range 50 {
		k := fmt.Sprintf("h%d", i)
		add(t, c.agents[2], k, int64(i+1), agent.Local)
		want[k] = int64(i + 1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.agents[2].Leave(ctx); err != nil {
		t.Fatal(err)
	}
	c.agents[2].Shutdown()
	if err := converged(c.agents[:2], want); err != nil {
		t.Fatalf("right after the leave: %v", err)
	}
}

// Two sides of a partition each add up to int64's limit: merged, the value
// is out of range, and the read says by how much and what one write
// brings it back; that write does.
func TestOverflowedValueSaysHowToRepair(t *testing.T) {
	c := newCluster(t, 2, nil)
	waitFor(t, 20*time.Second, "cluster", func() error { return agreed(c.agents, allAlive(2)) })
	waitWritable(t, c.agents...)
	if err := c.net.Partition([]string{ip(0)}, []string{ip(1)}); err != nil {
		t.Fatal(err)
	}
	add(t, c.agents[0], "big", 1<<63-1, agent.Local)
	add(t, c.agents[1], "big", 1<<63-1, agent.Local)
	c.net.Heal()
	ctx := context.Background()
	var err error
	waitFor(t, 20*time.Second, "merged past int64", func() error {
		_, err = c.agents[0].Value(ctx, "big", agent.Local)
		if err == nil {
			return errors.New("still in range")
		}
		return nil
	})
	if !errors.Is(err, agent.ErrValueOverflow) || !strings.Contains(err.Error(), "hold 18446744073709551614") ||
		!strings.Contains(err.Error(), "subtract at least 9223372036854775807 in one write") {
		t.Fatalf("read of the overflowed key: %v", err)
	}
	entries, _, err := c.agents[0].ListCounters("big", "", 10)
	if err != nil || len(entries) != 1 || !strings.Contains(entries[0].Error, "subtract at least 9223372036854775807") {
		t.Fatalf("listing: %+v, %v", entries, err)
	}
	if v := add(t, c.agents[0], "big", -(1<<63 - 1), agent.Local); v != 1<<63-1 {
		t.Fatalf("after the repair: %d, want %d", v, int64(1<<63-1))
	}
}
