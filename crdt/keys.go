package crdt

import (
	"container/heap"
	"slices"
	"strings"
)

// Keys returns, in byte order, up to limit keys that start with prefix and sort after after
// (all of them if limit <= 0), and whether more such keys follow. To page through, pass the
// last key of one page as after for the next; "" starts at the beginning.
//
// The store is hash-sharded, not ordered, so each call scans every key, keeping only the
// limit smallest: O(keys · log limit) time, O(limit) memory. That suits listings by an
// operator; it is not meant for a hot path.
func (s *Store) Keys(prefix, after string, limit int) (keys []string, more bool) {
	var h keyHeap // max-heap of the smallest keys found, while limit > 0
	for si := range s.shards {
		sh := &s.shards[si]
		sh.mu.Lock()
		for i := range sh.count {
			k := sh.at(i).key
			if k <= after || !strings.HasPrefix(k, prefix) {
				continue
			}
			switch {
			case limit <= 0 || len(h) < limit:
				heap.Push(&h, k)
			case k < h[0]:
				h[0] = k
				heap.Fix(&h, 0)
				more = true
			default:
				more = true
			}
		}
		sh.mu.Unlock()
	}
	keys = []string(h)
	slices.Sort(keys)
	return keys, more
}

// keyHeap is a max-heap of strings for container/heap.
type keyHeap []string

func (h keyHeap) Len() int           { return len(h) }
func (h keyHeap) Less(i, j int) bool { return h[i] > h[j] }
func (h keyHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *keyHeap) Push(x any)        { *h = append(*h, x.(string)) }
func (h *keyHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
