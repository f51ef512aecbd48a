package main

import (
	"math/bits"
	"time"
)

// histogram counts latencies in log-linear buckets: exact below 128 ns,
// then 64 buckets per power of two, so a bucket is at most 1/64 (1.6 %) of
// its values wide. One histogram belongs to one goroutine; merge combines
// them afterwards.
type histogram struct {
	counts [histBuckets]uint64
	n      uint64
	max    time.Duration
}

const (
	histSubBits = 6
	histSub     = 1 << histSubBits // buckets per power of two
	// histBuckets covers every non-negative int64: the largest value has
	// 63 bits, so shift 63-7 = 56 and index 56*64 + 127.
	histBuckets = (63-histSubBits-1)*histSub + 2*histSub
)

// histIndex is the bucket of d nanoseconds (negative counts as 0).
func histIndex(d time.Duration) int {
	if d < 0 {
		d = 0
	}
	v := uint64(d)
	shift := max(0, bits.Len64(v)-(histSubBits+1))
	return shift*histSub + int(v>>shift)
}

// histLow is the smallest value of bucket i; histLow(i+1)-1 the largest.
func histLow(i int) time.Duration {
	if i < 2*histSub {
		return time.Duration(i)
	}
	shift := i/histSub - 1
	m := i - shift*histSub
	return time.Duration(uint64(m) << shift)
}

func (h *histogram) record(d time.Duration) {
	h.counts[histIndex(d)]++
	h.n++
	h.max = max(h.max, d)
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// quantile is the q-quantile (0 < q ≤ 1): the midpoint of the bucket
// holding the ceil(q·n)-th smallest value, capped at the exact maximum;
// 0 when empty.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q * float64(h.n))
	if float64(rank) < q*float64(h.n) {
		rank++
	}
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			if i == histBuckets-1 {
				return h.max
			}
			lo, hi := histLow(i), histLow(i+1)-1
			return min(lo+(hi-lo)/2, h.max)
		}
	}
	return h.max
}
