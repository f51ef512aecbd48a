package ring

import (
	"fmt"
	"strconv"
	"testing"
)

// Benchmarks at several sizes. Quote medians of several runs:
//
//	go test ./ring -run '^$' -bench . -benchmem -count 6

var benchSizes = []int{10, 100, 1000}

// benchKeys are lock-like keys; lookups cycle through them so that the ring's memory, not
// one cached path, is what a lookup pays for.
var benchKeys = func() []string {
	keys := make([]string, 1<<16)
	for i := range keys {
		keys[i] = "lock/" + strconv.Itoa(i)
	}
	return keys
}()

var (
	sinkString  string
	sinkStrings []string
	sinkRing    *Ring
	sinkDiff    DiffResult
)

func BenchmarkOwner(b *testing.B) {
	for _, n := range benchSizes {
		r := mustNew(b, members("peer", n), DefaultConfig())
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				sinkString, _ = r.Owner(benchKeys[i%len(benchKeys)])
				i++
			}
		})
	}
}

// BenchmarkOwnerParallel shows that readers do not contend: ns/op should fall with
// GOMAXPROCS.
func BenchmarkOwnerParallel(b *testing.B) {
	r := mustNew(b, members("peer", 1000), DefaultConfig())
	b.Run("members=1000", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				s, _ := r.Owner(benchKeys[i%len(benchKeys)])
				_ = s
				i++
			}
		})
	})
}

func BenchmarkPreference(b *testing.B) {
	for _, n := range benchSizes {
		r := mustNew(b, members("peer", n), DefaultConfig())
		b.Run(fmt.Sprintf("members=%d/n=3", n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				sinkStrings, _ = r.Preference(benchKeys[i%len(benchKeys)], 3)
				i++
			}
		})
	}
}

func BenchmarkAppendPreference(b *testing.B) {
	for _, n := range benchSizes {
		r := mustNew(b, members("peer", n), DefaultConfig())
		b.Run(fmt.Sprintf("members=%d/n=3", n), func(b *testing.B) {
			b.ReportAllocs()
			dst := make([]string, 0, 3)
			i := 0
			for b.Loop() {
				dst, _ = r.AppendPreference(dst[:0], benchKeys[i%len(benchKeys)], 3)
				i++
			}
			sinkStrings = dst
		})
	}
}

// BenchmarkNew is the build of a ring: what every membership change costs.
func BenchmarkNew(b *testing.B) {
	for _, n := range benchSizes {
		ms := members("peer", n)
		b.Run(fmt.Sprintf("members=%d/vnodes=128", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sinkRing, _ = New(ms, DefaultConfig())
			}
		})
	}
}

// BenchmarkDiff compares the rings before and after one member joins.
func BenchmarkDiff(b *testing.B) {
	for _, n := range benchSizes {
		ms := members("peer", n+1)
		before := mustNew(b, ms[1:], DefaultConfig())
		after := mustNew(b, ms, DefaultConfig())
		b.Run(fmt.Sprintf("members=%d/join", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sinkDiff = Diff(before, after)
			}
		})
	}
}
