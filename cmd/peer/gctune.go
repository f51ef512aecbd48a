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
// assists showed up in request latency (lock pairs p99 9.2 ms with
// GOGC=100, 7.6 ms with GOGC=400, same run). gcTuner raises the GC percent
// only while the allocation rate would otherwise collect more often than
// once per gcPeriod, and by at most gcHeadroom bytes of extra heap: an idle
// peer stays at GOGC=100 (its RSS unchanged), a peer whose load ends is
// back at 100 a period later, and a peer whose live heap is already past
// gcHeadroom (a million counters) is never raised at all.
// GOGC or GOMEMLIMIT set in the environment turns it off: the operator
// chose.
const (
	gcPeriod   = time.Second
	gcHeadroom = 64 << 20
	// gcMaxPercent caps the percent for a tiny heap.
	gcMaxPercent = 2000
)

// gcPercentFor returns the GC percent that lets the heap grow by what is
// allocated in period at rate (bytes a second) before the next collection,
// bounded by headroom bytes of extra heap, and never below Go's default 100.
func gcPercentFor(live uint64, rate float64, period time.Duration, headroom uint64) int {
	if live == 0 {
		live = 1
	}
	growth := rate * period.Seconds()
	if growth > float64(headroom) {
		growth = float64(headroom)
	}
	pct := 100 * growth / float64(live)
	switch {
	case pct <= 100 || pct != pct: // NaN: no rate yet
		return 100
	case pct > gcMaxPercent:
		return gcMaxPercent
	}
	return int(pct)
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

// startGCTuner starts tuning every period with set; call stop.
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
	// Small moves are not worth a call.
	if pct*10 < t.percent*9 || pct*10 > t.percent*11 {
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
