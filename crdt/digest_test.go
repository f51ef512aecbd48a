package crdt

import (
	"slices"
	"strconv"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// compareStores runs the digest protocol from a to b, encoding and decoding every message as
// the agent would, and returns the bytes exchanged and the keys found to differ. It does not
// repair them.
func compareStores(a, b *Store) (bytes int, diff []string) {
	send := func(d Digest) Digest {
		buf, err := d.MarshalBinary()
		if err != nil {
			panic(err)
		}
		bytes += len(buf)
		var out Digest
		if err := out.UnmarshalBinary(buf); err != nil {
			panic(err)
		}
		return out
	}
	msg := send(a.Digest())
	for side := 1; ; side++ {
		s := b
		if side%2 == 0 {
			s = a
		}
		reply, d := s.CompareDigest(msg)
		if reply.IsZero() {
			return bytes, d
		}
		msg = send(reply)
	}
}

// repair ships the states of diff both ways, as step 4 of the protocol, and returns the
// bytes shipped: the list of keys (msgpack, as the agent would frame it) and both States.
func repair(t tb, a, b *Store, diff []string) int {
	t.Helper()
	keyList, err := msgpack.Marshal(diff)
	if err != nil {
		t.Fatal(err)
	}
	n := len(keyList)
	for _, pair := range [][2]*Store{{a, b}, {b, a}} {
		buf, err := pair[0].States(diff).MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		n += len(buf)
		var st State
		if err := st.UnmarshalBinary(buf); err != nil {
			t.Fatal(err)
		}
		mustMerge(t, pair[1], st)
	}
	return n
}

func TestDigestFindsExactlyTheDifferingKeys(t *testing.T) {
	tests := []struct {
		name    string
		keys    int
		changes func(a, b *Store) []string // returns the keys it made differ
	}{
		{name: "equal stores", keys: 1000, changes: func(a, b *Store) []string { return nil }},
		{name: "empty stores", keys: 0, changes: func(a, b *Store) []string { return nil }},
		{name: "one side ahead", keys: 1000, changes: func(a, b *Store) []string {
			mustApply(t, a, "key/7", ra, 1)
			return []string{"key/7"}
		}},
		{name: "both sides ahead", keys: 1000, changes: func(a, b *Store) []string {
			mustApply(t, a, "key/7", ra, 1)
			mustApply(t, b, "key/8", rb, -1)
			return []string{"key/7", "key/8"}
		}},
		{name: "key held by one side only", keys: 1000, changes: func(a, b *Store) []string {
			mustApply(t, b, "only-b", rc, 3)
			return []string{"only-b"}
		}},
		{name: "same key on both sides differently", keys: 1000, changes: func(a, b *Store) []string {
			mustApply(t, a, "key/9", ra, 1)
			mustApply(t, b, "key/9", rb, 1)
			return []string{"key/9"}
		}},
		{name: "empty against full", keys: 0, changes: func(a, b *Store) []string {
			for i := range 50 {
				mustApply(t, b, "k"+strconv.Itoa(i), rb, 1)
			}
			keys, _ := b.Keys("", "", 0)
			return keys
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := mustStore(t), mustStore(t)
			fillMixed(t, a, tt.keys)
			mustMerge(t, b, a.Snapshot())
			want := tt.changes(a, b)
			slices.Sort(want)
			_, diff := compareStores(a, b)
			if !slices.Equal(diff, want) {
				t.Fatalf("a→b digest found %q, want %q", diff, want)
			}
			_, diff = compareStores(b, a)
			if !slices.Equal(diff, want) {
				t.Fatalf("b→a digest found %q, want %q", diff, want)
			}
			repair(t, a, b, diff)
			assertSameStore(t, a, b)
			if _, diff := compareStores(a, b); len(diff) != 0 {
				t.Fatalf("after repair the digests still differ on %q", diff)
			}
		})
	}
}

// TestDigestLargeStoresFewDifferences is the Must-reach check: two 100k-key stores with 5
// replicas a key that differ in 100 keys; the digest finds exactly those keys and the bytes
// exchanged (digest messages and the repair states, both ways) stay under 5% of the encoded
// full state. Run with -v to see the ratio.
func TestDigestLargeStoresFewDifferences(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two 100k-key stores")
	}
	const nkeys, ndiff = 100_000, 100
	a := mustStore(t)
	rs := benchReplicas(5)
	keys := benchKeys(nkeys)
	fillStore(t, a, keys, rs, 12345)
	b := mustStore(t)
	full := a.Snapshot()
	mustMerge(t, b, full)
	fullBytes, err := full.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range ndiff {
		k := keys[(i*7919)%nkeys]
		if i%2 == 0 {
			mustApply(t, a, k, rs[i%5], 1)
		} else {
			mustApply(t, b, k, rs[i%5], -1)
		}
		want = append(want, k)
	}
	slices.Sort(want)
	digestBytes, diff := compareStores(a, b)
	if !slices.Equal(diff, want) {
		t.Fatalf("digest found %d keys, want exactly the %d changed (first found %q)", len(diff), len(want), diff[:min(3, len(diff))])
	}
	repairBytes := repair(t, a, b, diff)
	ratio := float64(digestBytes+repairBytes) / float64(len(fullBytes))
	t.Logf("full state %d bytes; digest messages %d bytes + repair (key list and states both ways) %d bytes = %.2f%% of the full state",
		len(fullBytes), digestBytes, repairBytes, 100*ratio)
	if ratio > 0.05 {
		t.Fatalf("anti-entropy exchanged %.2f%% of the full state, want ≤ 5%%", 100*ratio)
	}
	if _, diff := compareStores(a, b); len(diff) != 0 {
		t.Fatalf("after repair the stores still differ on %d keys", len(diff))
	}
}
