package simulation

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// Every built-in scenario runs at a small size (3 peers, 6× speed; 4 for
// those that need a bridge or a majority side) and must pass every checker.
// Safety (lost or doubled increments) is strict; convergence has generous
// bounds.
func TestBuiltInScenarios(t *testing.T) {
	for _, b := range Library() {
		t.Run(b.Name, func(t *testing.T) {
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
		})
	}
}

// splits are the scenarios whose faults must show in the ring views.
var splits = map[string]bool{"halves": true, "minority": true, "crash-restart": true, "owner-failover": true, "join-during-partition": true}

func convText(cs []Convergence) string {
	s := ""
	for _, c := range cs {
		s += fmt.Sprintf("[line %d: members %.2fs ring %.2fs counters %.2fs] ", c.Line, c.Members, c.Ring, c.Counters)
	}
	return s
}
