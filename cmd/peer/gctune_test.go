package main

import (
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

// TestGCTunerFollowsTheLoad checks that the tuner raises the percent while
// the process allocates fast, puts it back to 100 once it stops, and that
// stop puts back the default and ends the loop.
func TestGCTunerFollowsTheLoad(t *testing.T) {
	var mu sync.Mutex
	var set []int
	last := func() (int, int) {
		mu.Lock()
		defer mu.Unlock()
		if len(set) == 0 {
			return 100, 0
		}
		return set[len(set)-1], len(set)
	}
	const period = 20 * time.Millisecond
	tu := startGCTuner(func(p int) {
		mu.Lock()
		set = append(set, p)
		mu.Unlock()
	}, period)
	defer tu.stop()

	// Allocate fast: tens of MB a period, far past the live heap.
	var sink [][]byte
	deadline := time.Now().Add(20 * time.Second)
	for {
		for range 64 {
			sink = append(sink, make([]byte, 64<<10))
		}
		sink = sink[:0]
		if p, _ := last(); p > 100 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 20 s of allocating the tuner had set %v", set)
		}
	}
	// Idle: back to 100 within a few periods.
	for {
		if p, _ := last(); p == 100 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("20 s after the load the tuner had set %v", set)
		}
		time.Sleep(period) // polling a condition, with a deadline
	}
	if tu.tuned() < 2 {
		t.Fatalf("the tuner tuned %d times", tu.tuned())
	}
	tu.stop() // returns once the loop has ended
	if p, _ := last(); p != 100 {
		t.Fatalf("stop left the percent at %d, want 100", p)
	}
	tu.stop() // a second stop is harmless
}
