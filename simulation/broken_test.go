//go:build ringleader_broken_quorum

package simulation

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestHalvesCatchesBrokenAgent runs only in the broken test build (see
// agent/broken_quorum.go: an owner counts its own promise as a majority).
// The halves scenario, with lock clients on both sides contending for the
// same keys, must report lock violations; it passes when it does, and
// prints what it caught for TestHarnessCatchesBrokenAgent.
func TestHalvesCatchesBrokenAgent(t *testing.T) {
	sc, err := Parse("halves-long", halvesLong, 4)
	if err != nil {
		t.Fatal(err)
	}
	cfg := halvesLongConfig()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, cfg, sc)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, v := range rep.Violations {
		if v.Checker == "locks" {
			kinds[v.Kind]++
		}
	}
	if len(kinds) == 0 {
		t.Fatalf("the broken agent passed halves: no lock violation among %d violations", len(rep.Violations))
	}
	fmt.Printf("caught the broken agent: %v\n", kinds)
}
