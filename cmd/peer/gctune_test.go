package main

import (
	"runtime"
	"sync"
	"testing"
	"time"
)

func TestGCPercentFor(t *testing.T) {
	const mb = 1 << 20
	cases := []struct {
		name string
		live uint64
		rate float64
		want int
	}{
		{"idle", 10 * mb, 100_000, 100},
		{"no rate yet", 10 * mb, 0, 100},
		{"busy small heap", 10 * mb, 40 * mb, 400},
		{"busy past headroom", 10 * mb, 200 * mb, 640},
		{"big heap never raised", 300 * mb, 200 * mb, 100},
		{"tiny heap capped", 1 * mb, 200 * mb, gcMaxPercent},
		{"zero live", 0, 200 * mb, gcMaxPercent},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := gcPercentFor(c.live, c.rate, time.Second, 64*mb); got != c.want {
				t.Fatalf("gcPercentFor(%d, %.0f) = %d, want %d", c.live, c.rate, got, c.want)
			}
		})
	}
}

// TestGCTunerFollowsCollections checks that the tuner hears every
// collection, raises the percent under a high allocation rate, and that
// stop puts back the default and ends the chain.
func TestGCTunerFollowsCollections(t *testing.T) {
	var mu sync.Mutex
	var set []int
	tu := startGCTuner(func(p int) {
		mu.Lock()
		set = append(set, p)
		mu.Unlock()
	})
	// Allocate fast between collections: tens of MB in well under a second.
	var keep [][]byte
	deadline := time.Now().Add(20 * time.Second)
	for {
		for i := 0; i < 64; i++ {
			keep = append(keep, make([]byte, 256<<10))
		}
		keep = keep[:0]
		runtime.GC()
		if cycles, pct := tu.seen(); cycles >= 3 && pct > 100 {
			break
		}
		if time.Now().After(deadline) {
			cycles, pct := tu.seen()
			t.Fatalf("after 20 s the tuner saw %d collections and set %d %%", cycles, pct)
		}
	}
	tu.stop()
	mu.Lock()
	last := set[len(set)-1]
	n := len(set)
	mu.Unlock()
	if last != 100 {
		t.Fatalf("stop left the percent at %d, want 100", last)
	}
	before, _ := tu.seen()
	runtime.GC()
	runtime.GC()
	mu.Lock()
	defer mu.Unlock()
	if len(set) != n {
		t.Fatalf("the tuner set %v after stop", set[n:])
	}
	if after, _ := tu.seen(); after != before {
		t.Fatalf("the tuner counted %d collections after stop", after-before)
	}
}
