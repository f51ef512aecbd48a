package main

import (
	"slices"
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
		{"tiny heap counts as 4 MiB", 1 * mb, 200 * mb, 1600},
		{"no collection yet, idle", 0, 1 * mb, 100},
		{"no collection yet, busy", 0, 200 * mb, 1600},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := gcPercentFor(c.live, c.rate, time.Second, 64*mb); got != c.want {
				t.Fatalf("gcPercentFor(%d, %.0f) = %d, want %d", c.live, c.rate, got, c.want)
			}
		})
	}
}

func TestNextGCPercent(t *testing.T) {
	cases := []struct {
		name      string
		cur, want int
		move      bool
	}{
		{"same", 400, 400, false},
		{"small rise", 400, 420, false},
		{"small fall", 400, 380, false},
		{"rise", 400, 500, true},
		{"fall", 400, 300, true},
		{"back to 100 from just above", 110, 100, true},
		{"back to 100", 1600, 100, true},
		{"from 100", 100, 150, true},
		{"from 100, barely", 100, 105, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := nextGCPercent(c.cur, c.want); got != c.move {
				t.Fatalf("nextGCPercent(%d, %d) = %v, want %v", c.cur, c.want, got, c.move)
			}
		})
	}
}

// TestGCTunerFollowsTheLoad checks that the tuner raises the percent while
// the process allocates fast, puts it back to 100 once it stops, and that
// stop, while the percent is raised, puts back the default and ends the
// loop.
func TestGCTunerFollowsTheLoad(t *testing.T) {
	var mu sync.Mutex
	var set []int
	last := func() (int, []int) {
		mu.Lock()
		defer mu.Unlock()
		if len(set) == 0 {
			return 100, nil
		}
		return set[len(set)-1], slices.Clone(set)
	}
	const period = 20 * time.Millisecond
	record := func(p int) {
		mu.Lock()
		set = append(set, p)
		mu.Unlock()
	}
	// allocateUntil allocates fast, tens of MB a period (far past the live
	// heap), until raised says stop.
	allocateUntil := func(raised func() bool) {
		var sink [][]byte
		deadline := time.Now().Add(20 * time.Second)
		for !raised() {
			for range 64 {
				sink = append(sink, make([]byte, 64<<10))
			}
			sink = sink[:0]
			if time.Now().After(deadline) {
				_, s := last()
				t.Fatalf("after 20 s of allocating the tuner had set %v", s)
			}
		}
	}
	tu := startGCTuner(record, period)
	defer tu.stop()
	allocateUntil(func() bool { p, _ := last(); return p > 100 })
	// Idle: back to 100 within a few periods.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if p, _ := last(); p == 100 {
			break
		}
		if time.Now().After(deadline) {
			_, s := last()
			t.Fatalf("20 s after the load the tuner had set %v", s)
		}
		time.Sleep(period) // polling a condition, with a deadline
	}

	// Raised again, then stopped: stop puts back 100 and ends the loop.
	allocateUntil(func() bool { p, _ := last(); return p > 100 })
	tu.stop() // returns once the loop has ended
	p, s := last()
	if p != 100 {
		t.Fatalf("stop left the percent at %d (set %v), want 100", p, s)
	}
	tu.stop() // a second stop is harmless
	if _, s2 := last(); len(s2) != len(s) {
		t.Fatalf("the tuner set %v after stop", s2[len(s):])
	}
}
