package main

import (
	"os"
	"runtime"
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
// peer stays at GOGC=100 (its RSS unchanged), and a peer whose live heap is
// already past gcHeadroom (a million counters) is never raised at all.
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

// gcTuner sets the GC percent after every collection from the live heap
// and the allocation rate since the collection before. Its cleanup chain
// runs on the runtime's cleanup goroutine; stop ends it.
type gcTuner struct {
	set func(percent int) // debug.SetGCPercent in the peer; a recorder in tests

	// mu guards the fields below (a cleanup and stop may race).
	mu      sync.Mutex
	stopped bool
	percent int
	lastAt  time.Time
	lastAll uint64 // bytes allocated since the process started, at lastAt
	samples []metrics.Sample
	cycles  int // collections seen, for tests
}

// gcTuningWanted says whether the environment leaves the GC to the peer.
func gcTuningWanted() bool {
	return os.Getenv("GOGC") == "" && os.Getenv("GOMEMLIMIT") == ""
}

// startGCTuner starts tuning with set and returns the tuner; call stop.
func startGCTuner(set func(int)) *gcTuner {
	t := &gcTuner{set: set, percent: 100, samples: []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/gc/heap/allocs:bytes"},
	}}
	t.mu.Lock()
	t.lastAt, t.lastAll = t.read()
	t.mu.Unlock()
	t.arm()
	return t
}

// setGCPercent is debug.SetGCPercent without its result.
func setGCPercent(p int) { debug.SetGCPercent(p) }

// gcSentinel is allocated and dropped at once; its cleanup runs after the
// next collection.
type gcSentinel struct{ _ [16]byte }

func (t *gcTuner) arm() {
	s := &gcSentinel{}
	runtime.AddCleanup(s, func(t *gcTuner) { t.collected() }, t)
}

// read returns now and the bytes allocated so far; mu is held.
func (t *gcTuner) read() (time.Time, uint64) {
	metrics.Read(t.samples)
	return time.Now(), t.samples[1].Value.Uint64()
}

// collected runs after a collection: it tunes and re-arms.
func (t *gcTuner) collected() {
	t.mu.Lock()
	if t.stopped {
		t.mu.Unlock()
		return
	}
	now, all := t.read()
	live := t.samples[0].Value.Uint64()
	rate := 0.0
	if d := now.Sub(t.lastAt).Seconds(); d > 0 && all >= t.lastAll {
		rate = float64(all-t.lastAll) / d
	}
	t.lastAt, t.lastAll = now, all
	t.cycles++
	pct := gcPercentFor(live, rate, gcPeriod, gcHeadroom)
	// Small moves are not worth a call. set runs under mu, so stop's
	// reset cannot be overtaken.
	if pct*10 < t.percent*9 || pct*10 > t.percent*11 {
		t.percent = pct
		t.set(pct)
	}
	t.mu.Unlock()
	t.arm()
}

// stop ends the tuning and puts back Go's default percent.
func (t *gcTuner) stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.stopped {
		t.stopped = true
		t.set(100)
	}
}

// seen returns the collections the tuner has seen and its current percent.
func (t *gcTuner) seen() (cycles, percent int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cycles, t.percent
}
