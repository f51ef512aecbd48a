package crdt

import (
	"fmt"
	"slices"
	"testing"
)

// Comparing in parts finds exactly the keys the whole level-2 digest finds,
// each part within the byte bound (or a single leaf), and every part encodes.
func TestDigestSplitFindsTheSameKeys(t *testing.T) {
	a, _ := New(Config{Shards: 4})
	b, _ := New(Config{Shards: 8})
	ra, _ := NewReplicaID("a", 1)
	rb, _ := NewReplicaID("b", 1)
	for i := range 5000 {
		k := fmt.Sprintf("k%05d", i)
		a.Apply(k, ra, 1)
		if i%3 != 0 {
			b.Apply(k, ra, 1) // same state
		}
		if i%7 == 0 {
			b.Apply(k, rb, 2)
		}
	}
	reply, _ := b.CompareDigest(a.Digest())
	keysDigest, _ := a.CompareDigest(reply)
	_, want := b.CompareDigest(keysDigest)
	if len(want) == 0 {
		t.Fatal("stores do not differ")
	}
	for _, max := range []int{1, 160, 5000, 1 << 30} {
		var got []string
		parts := keysDigest.Split(max)
		for _, p := range parts {
			size := 0
			for _, k := range p.keys {
				size += len(k) + splitKeyOverhead
			}
			if size > max && len(p.nodes) > 1 {
				t.Fatalf("max %d: a part of %d leaves has %d bytes", max, len(p.nodes), size)
			}
			enc, err := p.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var back Digest
			if err := back.UnmarshalBinary(enc); err != nil {
				t.Fatalf("max %d: part does not decode: %v", max, err)
			}
			_, diff := b.CompareDigest(back)
			got = append(got, diff...)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("max %d: %d parts found %d keys, want %d", max, len(parts), len(got), len(want))
		}
	}
}
