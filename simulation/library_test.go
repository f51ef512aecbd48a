package simulation

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// Every built-in scenario runs at a small size (3 peers, 6× speed; 4 for
// those that need a bridge or a majority side) and must pass every checker.
// Safety (lost or doubled increments, overlapping leases, token
// regressions, minority grants) is strict; convergence and lock
// availability have generous bounds. They run in parallel (go test's
// -parallel: as many as cores): a run mostly waits, on timers scaled down
// and on the lock-delay, so two at once keep up.
func TestBuiltInScenarios(t *testing.T) {
	for _, b := range Library() {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			peers := 3
			if b.Name == "bridge" || b.Name == "join-during-partition" {
				peers = 4
			}
			sc, err := LookupBuiltIn(b.Name, peers)
			if err != nil {
				t.Fatal(err)
			}
			seed := uint64(len(b.Name))
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			rep, err := Run(ctx, testConfig(seed), sc)
			if err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
			counts := map[Outcome]int{}
			for _, op := range rep.Ops {
				counts[op.Outcome]++
			}
			t.Logf("seed %d: wall %.2fs, ops %v, convergence %s", seed, rep.Wall, counts, convText(rep.Convergence))
			for _, v := range rep.Violations {
				t.Errorf("seed %d: %v", seed, v)
			}
			// The faults were seen (liveness, so loosely: once): a split
			// network split the ring views, or a crashed peer left the
			// ring of the others while it was down.
			views, most, seen := 0, 0, false
			for _, s := range rep.Samples {
				views = max(views, s.RingViews)
				most = max(most, s.Running)
			}
			for _, s := range rep.Samples {
				seen = seen || views > 1 || (s.RingOK && s.Running < most)
			}
			if splits[b.Name] && !seen {
				t.Errorf("seed %d: the ring views never split and no crashed peer left the ring; the faults had no effect", seed)
			}
			if counts[Acked] == 0 {
				t.Errorf("seed %d: no write was acknowledged", seed)
			}
			checkLockLiveness(t, b.Name, seed, rep)
		})
	}
}

// checkLockLiveness asserts loosely that the lock half did something: some
// lease was granted; a scenario with a long minority side had a window in
// which the minority check applied; after an owner crash its keys were
// granted again within a lock-delay plus two TTLs and some slack.
func checkLockLiveness(t *testing.T, name string, seed uint64, rep *Report) {
	t.Helper()
	lc := rep.Locks
	if lc == nil {
		t.Fatalf("seed %d: no lock check", seed)
	}
	t.Logf("seed %d: lock answers %v, %d holds, %d minority windows, windows %+v", seed, lc.Answers, len(lc.Holds), lc.MinorityWindows, lc.Windows)
	if len(lc.Holds) == 0 {
		t.Errorf("seed %d: no lock was granted", seed)
	}
	if longMinority[name] && lc.MinorityWindows == 0 {
		t.Errorf("seed %d: no owner sat on a minority side past the lock-delay; the minority check checked nothing", seed)
	}
	if name == "owner-failover" {
		if len(lc.Windows) == 0 || lc.Windows[0].Key != rep.LockKeys[0] {
			t.Fatalf("seed %d: the crash of n1 took no lock key with it (windows %+v, keys %v)", seed, lc.Windows, rep.LockKeys)
		}
		if w := lc.Windows[0]; w.Window < 0 || w.Window > rep.LockDelay+2*rep.LockTTL+2 {
			t.Errorf("seed %d: the busy key was unavailable %.2fs after its owner crashed (lock-delay %.2fs, ttl %.2fs)", seed, w.Window, rep.LockDelay, rep.LockTTL)
		}
	}
}

// longMinority are the scenarios that keep a minority side past the
// lock-delay.
var longMinority = map[string]bool{"halves": true, "minority": true, "bridge": true}

// splits are the scenarios whose faults must show in the ring views.
var splits = map[string]bool{"halves": true, "minority": true, "crash-restart": true, "owner-failover": true, "join-during-partition": true}

func convText(cs []Convergence) string {
	s := ""
	for _, c := range cs {
		s += fmt.Sprintf("[line %d: members %.2fs ring %.2fs counters %.2fs] ", c.Line, c.Members, c.Ring, c.Counters)
	}
	return s
}
