package agent_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/ringleader/ringleader/agent"
	"github.com/ringleader/ringleader/simulation/memnet"
)

// restartable is a cluster whose agents can crash and restart on their
// hosts, each with its store on a crash-simulating in-memory filesystem.
type restartable struct {
	t      *testing.T
	net    *memnet.Network
	hosts  []*memnet.Host
	fs     []*vfs.MemFS
	dirs   []string
	agents []*agent.Agent
}

func newRestartable(t *testing.T, n int) *restartable {
	r := &restartable{t: t, net: newNetwork(t)}
	for i := range n {
		h, err := r.net.AddHost(ip(i))
		if err != nil {
			t.Fatal(err)
		}
		r.hosts = append(r.hosts, h)
		r.fs = append(r.fs, vfs.NewCrashableMem())
		r.dirs = append(r.dirs, t.TempDir())
		r.agents = append(r.agents, nil)
		r.start(i, r.fs[i])
	}
	waitFor(t, 20*time.Second, "cluster", func() error { return agreed(r.agents, allAlive(n)) })
	waitWritable(t, r.agents...)
	return r
}

// start starts agent i with its store on fs, joined through another peer.
func (r *restartable) start(i int, fs *vfs.MemFS) {
	r.t.Helper()
	cfg := hostConfig(r.t, r.hosts[i], i)
	cfg.DataDir = r.dirs[i] // serf's snapshot; the store lives on fs
	cfg.StoreFS = fs
	if i > 0 {
		cfg.StartJoin = []string{ip(0)}
	} else if len(r.agents) > 1 && r.agents[1] != nil {
		cfg.StartJoin = []string{ip(1)}
	}
	r.fs[i] = fs
	r.agents[i] = startAgent(r.t, cfg)
}

// crash stops agent i without leaving and returns what its disk kept: only
// what was synced.
func (r *restartable) crash(i int) *vfs.MemFS {
	kept := r.fs[i].CrashClone(vfs.CrashCloneCfg{})
	r.agents[i].Shutdown()
	return kept
}

// A peer restarted from an older copy of its data dir (a backup) must not
// write again under its old replica ID: its peers hold higher counts of
// it, which would swallow its next increments. It takes a new incarnation
// and every later increment counts.
func TestRestoredBackupTakesNewIncarnation(t *testing.T) {
	r := newRestartable(t, 3)
	n3 := r.agents[2]
	add(t, n3, "k", 5, agent.Local)
	backup := r.fs[2].CrashClone(vfs.CrashCloneCfg{}) // synced state: n3 counted 5
	add(t, n3, "k", 7, agent.Local)
	want := map[string]int64{"k": 12}
	waitFor(t, 10*time.Second, "spread", func() error { return converged(r.agents, want) })
	before := n3.Status().Incarnation

	r.crash(2)
	r.start(2, backup)
	waitWritable(t, r.agents[2])
	if got := r.agents[2].Status().Incarnation; got == before {
		t.Fatalf("restored from a backup behind its peers, n3 kept incarnation %d", got)
	}
	add(t, r.agents[2], "k", 1, agent.Local)
	want["k"] = 13
	waitFor(t, 10*time.Second, "the write after the restore counts everywhere", func() error { return converged(r.agents, want) })
	checkExact(t, r.agents, want)
}

// An empty data dir under a known name takes a new incarnation too; a
// crash and restart with the whole data dir keeps its incarnation when
// every peer confirms it is not behind.
func TestIncarnationAfterEmptyAndIntactRestarts(t *testing.T) {
	r := newRestartable(t, 3)
	add(t, r.agents[2], "k", 3, agent.Local)
	want := map[string]int64{"k": 3}
	waitFor(t, 10*time.Second, "spread", func() error { return converged(r.agents, want) })

	inc := r.agents[2].Status().Incarnation
	kept := r.crash(2)
	r.start(2, kept)
	waitWritable(t, r.agents[2])
	if got := r.agents[2].Status().Incarnation; got != inc {
		t.Fatalf("intact restart: incarnation %d, was %d", got, inc)
	}
	add(t, r.agents[2], "k", 4, agent.Local)
	// Wait for the spread: a write that only n3's disk held would die with
	// it (the documented bound of local acks).
	want["k"] = 7
	waitFor(t, 10*time.Second, "spread", func() error { return converged(r.agents, want) })

	r.crash(2)
	r.start(2, vfs.NewCrashableMem())
	waitWritable(t, r.agents[2])
	if got := r.agents[2].Status().Incarnation; got <= inc {
		t.Fatalf("empty data dir: incarnation %d, want above %d", got, inc)
	}
	add(t, r.agents[2], "k", 10, agent.Local)
	want["k"] = 17
	waitFor(t, 10*time.Second, "converged", func() error { return converged(r.agents, want) })
	checkExact(t, r.agents, want)
}

// Concurrent writers on every peer while one peer crashes (keeping only
// what it synced) and restarts: every acknowledged increment is counted
// exactly once everywhere after the dust settles. The crash is taken while
// no write to n3 is in flight (a real crash stops the acks with
// everything else; the store's own crash tests cover a crash inside a
// commit).
func TestCrashMidLoadLosesNothingAcknowledged(t *testing.T) {
	r := newRestartable(t, 3)
	var mu sync.Mutex
	want := map[string]int64{}
	var n3 sync.RWMutex // writers to n3 hold it shared; the crash holds it alone
	var stop atomic.Bool
	var wg sync.WaitGroup
	var acked atomic.Int64
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 99))
			for i := 0; i < 5000 && !stop.Load(); i++ {
				k := fmt.Sprintf("c%d", rng.IntN(30))
				d := rng.Int64N(5) + 1
				if w == 2 {
					n3.RLock()
				}
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, err := r.agents[w].Add(ctx, []agent.CounterItem{{Key: k, Delta: d}}, agent.Local)
				cancel()
				if err == nil {
					acked.Add(1)
					mu.Lock()
					want[k] += d
					mu.Unlock()
				} // else not acknowledged (n3 restarting)
				if w == 2 {
					n3.RUnlock()
				}
			}
		}()
	}
	waitAcked := func(n int64) {
		waitFor(t, 10*time.Second, "load", func() error {
			if acked.Load() < n {
				return fmt.Errorf("%d acked", acked.Load())
			}
			return nil
		})
	}
	waitAcked(300)
	n3.Lock()
	kept := r.crash(2)
	n3.Unlock()
	waitAcked(600) // the others write on while n3 is down
	n3.Lock()
	r.start(2, kept)
	n3.Unlock()
	waitAcked(1200)
	stop.Store(true)
	wg.Wait()
	waitFor(t, 20*time.Second, "exact sums everywhere", func() error { return converged(r.agents, want) })
	checkExact(t, r.agents, want)
}

// idemRecords reads a's ringleader_idempotency_records gauge.
func idemRecords(a *agent.Agent) string {
	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if strings.HasPrefix(line, "ringleader_idempotency_records ") {
			return strings.TrimPrefix(line, "ringleader_idempotency_records ")
		}
	}
	return ""
}

// A peer that comes back with an empty data dir before the others saw it
// fail changes no ring, so nothing would copy it the idempotency records
// it held: it asks for them when it first sees the others. Then, even
// with the other two holders gone, its retries replay.
func TestEmptyDirRestartGetsIdempotencyRecordsBack(t *testing.T) {
	r := newRestartable(t, 3)
	ctx := context.Background()
	first := map[string]int64{}
	for i := range 20 {
		k := fmt.Sprintf("back-%d", i)
		res, err := r.agents[0].Add(ctx, []agent.CounterItem{{Key: "back", Delta: 1, IdempotencyKey: k}}, agent.Local)
		if err != nil {
			t.Fatal(err)
		}
		first[k] = res[0].Value
	}
	waitFor(t, 10*time.Second, "20 records on n3", func() error {
		if got := idemRecords(r.agents[2]); got != "20" {
			return fmt.Errorf("n3 holds %q records", got)
		}
		return nil
	})
	r.crash(2)
	r.start(2, vfs.NewCrashableMem()) // at once, with an empty store
	waitFor(t, 20*time.Second, "n3 holds its records again", func() error {
		if got := idemRecords(r.agents[2]); got != "20" {
			return fmt.Errorf("n3 holds %q records", got)
		}
		return nil
	})
	r.agents[0].Shutdown()
	r.agents[1].Shutdown()
	waitFor(t, 30*time.Second, "n3 alone in its ring", func() error {
		if n := r.agents[2].View().Ring.Len(); n != 1 {
			return fmt.Errorf("%d in its ring", n)
		}
		return nil
	})
	for k, v := range first {
		res, err := r.agents[2].Add(ctx, []agent.CounterItem{{Key: "back", Delta: 1, IdempotencyKey: k}}, agent.Local)
		if err != nil {
			t.Fatal(err)
		}
		if !res[0].Replayed || res[0].Value != v {
			t.Fatalf("retry of %s on the restarted peer: %+v, first value %d", k, res[0], v)
		}
	}
}
