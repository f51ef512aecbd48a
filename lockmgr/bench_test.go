package lockmgr

import (
	"fmt"
	"testing"
	"time"
)

// Uncontended Acquire+Release pairs over warm keys, with lease IDs from crypto/rand (the
// production source). Run with
//
//	go test ./lockmgr -run '^$' -bench . -benchmem -count 5
func BenchmarkAcquireRelease(b *testing.B) {
	for _, n := range []int{1, 1000, 100000} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			tab, err := NewTable(DefaultConfig())
			if err != nil {
				b.Fatal(err)
			}
			keys := make([]string, n)
			for i := range keys {
				keys[i] = fmt.Sprintf("key-%d", i)
				tab.SetEpoch(keys[i], 1)
			}
			now := t0
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				a, err := tab.Acquire(keys[i%n], "h", 0, 0, now)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := tab.Release(a.Lease, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// A contended handover on one key: the holder releases, the first of the waiters is
// granted, and the old holder queues again at the back, so the queue stays this long.
func BenchmarkHandover(b *testing.B) {
	for _, waiters := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("waiters=%d", waiters), func(b *testing.B) {
			tab, err := NewTable(DefaultConfig())
			if err != nil {
				b.Fatal(err)
			}
			tab.SetEpoch("k", 1)
			now := t0
			a, _ := tab.Acquire("k", "h", 0, 0, now)
			cur := a.Lease
			for range waiters {
				if _, err := tab.Acquire("k", "w", 0, time.Minute, now); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				ev, err := tab.Release(cur, now)
				if err != nil || len(ev) != 1 || ev[0].Kind != WaiterGranted {
					b.Fatalf("release: %v %+v", err, ev)
				}
				cur = ev[0].Lease
				if _, err := tab.Acquire("k", "w", 0, time.Minute, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
