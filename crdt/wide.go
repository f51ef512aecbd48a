package crdt

import (
	"math"
	"math/bits"
)

// wide is a two's-complement 128-bit integer. Counter values are summed in it so that a sum
// of per-replica uint64 counts never wraps; the result is then checked against the range of
// the counter's type. With at most MaxReplicas replicas the sums fit in 96 bits.
type wide struct{ hi, lo uint64 }

func (w wide) addUint(x uint64) wide {
	lo, carry := bits.Add64(w.lo, x, 0)
	return wide{w.hi + carry, lo}
}

func (w wide) subUint(x uint64) wide {
	lo, borrow := bits.Sub64(w.lo, x, 0)
	return wide{w.hi - borrow, lo}
}

func (w wide) addInt(x int64) wide {
	if x >= 0 {
		return w.addUint(uint64(x))
	}
	return w.subUint(magnitude(x))
}

// int64 returns w as an int64 and whether it fits.
func (w wide) int64() (int64, bool) {
	switch {
	case w.hi == 0 && w.lo <= math.MaxInt64:
		return int64(w.lo), true
	case w.hi == math.MaxUint64 && w.lo >= 1<<63:
		return int64(w.lo), true
	}
	return 0, false
}

// uint64 returns w as a uint64 and whether it fits.
func (w wide) uint64() (uint64, bool) {
	return w.lo, w.hi == 0
}

// magnitude returns |x| as a uint64; it is exact for math.MinInt64 too.
func magnitude(x int64) uint64 {
	if x >= 0 {
		return uint64(x)
	}
	return uint64(-(x + 1)) + 1
}
