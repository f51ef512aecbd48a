package main

import (
	"os"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"
)

// The peer's heap is small (a few MB plus its counters) and, under load,
// short-lived garbage arrives fast: with Go's default GOGC=100 a busy peer
// collected many times a second, and each collection's mark work and
// assists showed up in request latency (BenchmarkLockPairs, run
// interleaved: p99 9.7-10.5 ms untuned, 6.8-7.4 ms with the peers and the
// benchmark's client process tuned). gcTuner raises the GC percent only
// while the allocation rate would otherwise collect more often than once
// per gcPeriod, so that the heap may grow by about gcHeadroom more (the
// runtime adds the stacks and globals times the percent): an idle peer
// stays at GOGC=100 (its RSS unchanged), a peer whose load ends is back at
// 100 a period later, and a peer whose live heap is already past
// gcHeadroom (a million counters) is never raised at all. GOGC or
// GOMEMLIMIT set in the environment turns it off: the operator chose.
const (
	gcPeriod   = time.Second
	gcHeadroom = 64 << 20
	// gcMinLive is the live heap below which the percent is figured as if
	// it were this: the runtime's own smallest heap goal is 4 MiB times
	// the percent over 100, and a live heap of 0 (no collection yet) must
	// not read as a tiny heap.
	gcMinLive = 4 << 20
)

// gcPercentFor returns the GC percent that lets the heap grow by what is
// allocated in period at rate (bytes a second) before the next collection,
// by at most headroom bytes, and never below Go's default 100.
func gcPercentFor(live uint64, rate float64, period time.Duration, headroom uint64) int {
	live = max(live, gcMinLive)
	growth := rate * period.Seconds()
	if growth > float64(headroom) {
		growth = float64(headroom)
	}
	pct := 100 * growth / float64(live)
	if pct <= 100 || pct != pct { // NaN: no rate yet
		return 100
	}
	return int(pct)
}

// nextGCPercent says whether to move the percent from cur to want: not
// for a move of under a tenth either way (not worth a call), except back
// to 100, which is always taken, so a load that ends leaves no raise.
func nextGCPercent(cur, want int) bool {
	if want == cur {
		return false
	}
	return want == 100 || want*10 < cur*9 || want*10 > cur*11
}

// gcTuner sets the GC percent once a period from the live heap (as of the
// last collection) and the allocation rate over that period, so the percent
// follows the load up and, a period after it ends, back down to 100 (a
// lower percent starts a collection at once if the heap is past the new
// goal), and an idle peer does not sit on a heap grown for a burst.
type gcTuner struct {
	set  func(percent int) // debug.SetGCPercent in the peer; a recorder in tests
	stop func()            // ends the loop and puts back 100; safe to call twice

	// Owned by the loop goroutine.
	samples []metrics.Sample
	lastAt  time.Time
	lastAll uint64 // bytes allocated since the process started, at lastAt
	percent int

	// mu guards ticks, for tests.
	mu    sync.Mutex
	ticks int
}

// gcTuningWanted says whether the environment leaves the GC to the peer.
func gcTuningWanted() bool {
	return os.Getenv("GOGC") == "" && os.Getenv("GOMEMLIMIT") == ""
}

// startGCTuner starts tuning every period (which must be positive) with
// set; call stop.
func startGCTuner(set func(int), period time.Duration) *gcTuner {
	t := &gcTuner{set: set, percent: 100, samples: []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/gc/heap/allocs:bytes"},
	}}
	t.lastAt, t.lastAll, _ = t.read()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(period)
		defer tick.Stop()
		for {
			select {
			case <-done:
				t.set(100)
				return
			case <-tick.C:
				t.tune(period)
			}
		}
	}()
	var once sync.Once
	t.stop = func() {
		once.Do(func() {
			close(done)
			wg.Wait()
		})
	}
	return t
}

// setGCPercent is debug.SetGCPercent without its result.
func setGCPercent(p int) { debug.SetGCPercent(p) }

// read returns now, the bytes allocated so far and the live heap.
func (t *gcTuner) read() (time.Time, uint64, uint64) {
	metrics.Read(t.samples)
	return time.Now(), t.samples[1].Value.Uint64(), t.samples[0].Value.Uint64()
}

// tune sets the percent for the rate since the last tune.
func (t *gcTuner) tune(period time.Duration) {
	now, all, live := t.read()
	rate := 0.0
	if d := now.Sub(t.lastAt).Seconds(); d > 0 && all >= t.lastAll {
		rate = float64(all-t.lastAll) / d
	}
	t.lastAt, t.lastAll = now, all
	pct := gcPercentFor(live, rate, period, gcHeadroom)
	if nextGCPercent(t.percent, pct) {
		t.percent = pct
		t.set(pct)
	}
	t.mu.Lock()
	t.ticks++
	t.mu.Unlock()
}

// tuned returns how often the tuner has tuned.
func (t *gcTuner) tuned() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ticks
}
