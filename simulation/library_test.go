package simulation

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// Every built-in scenario runs at a small size (3 peers, 8× speed; 4 for
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
			if counts[Acked] == 0 {
				t.Errorf("seed %d: no write was acknowledged", seed)
			}
		})
	}
}

func convText(cs []Convergence) string {
	s := ""
	for _, c := range cs {
		s += fmt.Sprintf("[line %d: members %.2fs ring %.2fs counters %.2fs] ", c.Line, c.Members, c.Ring, c.Counters)
	}
	return s
}
