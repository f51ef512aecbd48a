package crdt

import (
	"fmt"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// Property tests. rapid prints the seed and a minimal failing case on failure; rerun one
// with -rapid.seed=N.

var genReplica = rapid.Custom(func(t *rapid.T) ReplicaID {
	return ReplicaID{
		Node:        rapid.SampledFrom([]string{"a", "b", "c", "d", "e", "f"}).Draw(t, "node"),
		Incarnation: rapid.Uint64Range(1, 2).Draw(t, "incarnation"),
	}
})

var genAmount = rapid.Custom(func(t *rapid.T) int64 {
	a := rapid.Int64Range(-1000, 1000).Draw(t, "amount")
	if a == 0 {
		a = 1
	}
	return a
})

var genKey = rapid.SampledFrom([]string{"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"})

func genGCounter(t *rapid.T, label string) GCounter {
	var g GCounter
	for range rapid.IntRange(0, 6).Draw(t, label+" writes") {
		if _, err := g.Increment(genReplica.Draw(t, "r"), rapid.Uint64Range(1, 1<<40).Draw(t, "n")); err != nil {
			t.Fatal(err)
		}
	}
	return g
}

func genPNCounter(t *rapid.T, label string) PNCounter {
	var c PNCounter
	for range rapid.IntRange(0, 6).Draw(t, label+" writes") {
		if _, err := c.Add(genReplica.Draw(t, "r"), genAmount.Draw(t, "amount")); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// genStoreState draws a State by writing to a store and taking its snapshot, so its counts
// are ones a real replica could hold.
func genStoreState(t *rapid.T, label string) State {
	s, _ := New(Config{Shards: rapid.SampledFrom([]int{1, 4}).Draw(t, label+" shards")})
	for range rapid.IntRange(0, 12).Draw(t, label+" writes") {
		if _, err := s.Apply(genKey.Draw(t, "key"), genReplica.Draw(t, "r"), genAmount.Draw(t, "amount")); err != nil {
			t.Fatal(err)
		}
	}
	return s.Snapshot()
}

func mergedG(cs ...GCounter) GCounter {
	var out GCounter
	for _, c := range cs {
		out.Merge(c)
	}
	return out
}

func mergedPN(cs ...PNCounter) PNCounter {
	var out PNCounter
	for _, c := range cs {
		out.Merge(c)
	}
	return out
}

// mergedStates merges states into a fresh store, in order, and returns its contents.
func mergedStates(t *rapid.T, sts ...State) map[string]PNCounter {
	s, _ := New(DefaultConfig())
	for _, st := range sts {
		if _, err := s.Merge(st); err != nil {
			t.Fatal(err)
		}
	}
	return contents(s.Snapshot())
}

func mergedState(t *rapid.T, sts ...State) State {
	s, _ := New(DefaultConfig())
	for _, st := range sts {
		if _, err := s.Merge(st); err != nil {
			t.Fatal(err)
		}
	}
	return s.Snapshot()
}

func TestGCounterMergeLaws(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a, b, c := genGCounter(t, "a"), genGCounter(t, "b"), genGCounter(t, "c")
		if !mergedG(a, b).Equal(mergedG(b, a)) {
			t.Fatal("merge is not commutative")
		}
		if !mergedG(mergedG(a, b), c).Equal(mergedG(a, mergedG(b, c))) {
			t.Fatal("merge is not associative")
		}
		if !mergedG(a, a).Equal(a) {
			t.Fatal("merge is not idempotent")
		}
	})
}

func TestPNCounterMergeLaws(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a, b, c := genPNCounter(t, "a"), genPNCounter(t, "b"), genPNCounter(t, "c")
		if !mergedPN(a, b).Equal(mergedPN(b, a)) {
			t.Fatal("merge is not commutative")
		}
		if !mergedPN(mergedPN(a, b), c).Equal(mergedPN(a, mergedPN(b, c))) {
			t.Fatal("merge is not associative")
		}
		if !mergedPN(a, a).Equal(a) {
			t.Fatal("merge is not idempotent")
		}
	})
}

// TestPNCounterDeltas checks the delta-state property: applying the deltas of a run of
// writes to the starting state, in any order and with duplicates, gives the final state.
func TestPNCounterDeltas(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		start := genPNCounter(t, "start")
		c := start.Clone()
		var deltas []PNCounter
		for range rapid.IntRange(1, 10).Draw(t, "writes") {
			d, err := c.Add(genReplica.Draw(t, "r"), genAmount.Draw(t, "amount"))
			if err != nil {
				t.Fatal(err)
			}
			deltas = append(deltas, d)
		}
		got := start.Clone()
		for _, i := range rapid.Permutation(append(deltas, deltas...)).Draw(t, "delivery") {
			got.Merge(i)
		}
		if !got.Equal(c) {
			t.Fatal("start ⊔ deltas differs from the state after the writes")
		}
	})
}

func TestStoreMergeLaws(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a, b, c := genStoreState(t, "a"), genStoreState(t, "b"), genStoreState(t, "c")
		if d := sameContents(mergedStates(t, a, b), mergedStates(t, b, a)); d != "" {
			t.Fatalf("merge is not commutative: %s", d)
		}
		if d := sameContents(mergedStates(t, mergedState(t, a, b), c), mergedStates(t, a, mergedState(t, b, c))); d != "" {
			t.Fatalf("merge is not associative: %s", d)
		}
		if d := sameContents(mergedStates(t, a, a), mergedStates(t, a)); d != "" {
			t.Fatalf("merge is not idempotent: %s", d)
		}
		s, _ := New(DefaultConfig())
		if _, err := s.Merge(a); err != nil {
			t.Fatal(err)
		}
		if changed, _ := s.Merge(a); len(changed) != 0 {
			t.Fatalf("merging a state twice reports changed keys %q", changed)
		}
	})
}

func TestStateCodecRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		st := genStoreState(t, "st")
		b, err := st.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var got State
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		if d := sameContents(contents(got), contents(st)); d != "" {
			t.Fatalf("decoded state differs: %s", d)
		}
		b2, _ := got.MarshalBinary()
		if string(b2) != string(b) {
			t.Fatal("re-encoding a decoded state gives other bytes")
		}
	})
}

func TestCounterCodecRoundTripProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		g, c := genGCounter(t, "g"), genPNCounter(t, "c")
		gb, _ := g.MarshalBinary()
		cb, _ := c.MarshalBinary()
		var g2 GCounter
		var c2 PNCounter
		if err := g2.UnmarshalBinary(gb); err != nil || !g2.Equal(g) {
			t.Fatalf("GCounter round trip: %v", err)
		}
		if err := c2.UnmarshalBinary(cb); err != nil || !c2.Equal(c) {
			t.Fatalf("PNCounter round trip: %v", err)
		}
	})
}

// TestConvergenceUnderLossDuplicationReordering: 5 to 7 replicas write at random; deltas
// (DeltasSince pages) and full states are sent as encoded messages that the network drops,
// duplicates and delivers in any order. At the end, anti-entropy by digest between every
// pair must bring every replica to exactly the sum of the acknowledged writes.
func TestConvergenceUnderLossDuplicationReordering(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(5, 7).Draw(t, "replicas")
		stores := make([]*Store, n)
		ids := make([]ReplicaID, n)
		cursors := make([][]Cursor, n) // cursors[from][to]
		for i := range stores {
			stores[i], _ = New(Config{Shards: rapid.SampledFrom([]int{1, 2, 8}).Draw(t, "shards"), Instance: uint64(i)})
			ids[i] = ReplicaID{Node: fmt.Sprintf("n%d", i), Incarnation: 1}
			cursors[i] = make([]Cursor, n)
		}
		type message struct {
			to  int
			buf []byte
		}
		var network []message
		want := make(map[string]int64)
		send := func(to int, st State) {
			buf, err := st.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			network = append(network, message{to, buf})
		}
		steps := rapid.IntRange(1, 120).Draw(t, "steps")
		for range steps {
			switch rapid.IntRange(0, 9).Draw(t, "action") {
			case 0, 1, 2, 3: // a write
				i, key, amount := rapid.IntRange(0, n-1).Draw(t, "writer"), genKey.Draw(t, "key"), genAmount.Draw(t, "amount")
				if _, err := stores[i].Apply(key, ids[i], amount); err != nil {
					t.Fatal(err)
				}
				want[key] += amount
			case 4, 5: // gossip a page of deltas
				from, to := rapid.IntRange(0, n-1).Draw(t, "from"), rapid.IntRange(0, n-1).Draw(t, "to")
				st, next, _ := stores[from].DeltasSince(cursors[from][to], rapid.IntRange(0, 3).Draw(t, "page"))
				cursors[from][to] = next
				send(to, st)
			case 6: // a full state
				from, to := rapid.IntRange(0, n-1).Draw(t, "from"), rapid.IntRange(0, n-1).Draw(t, "to")
				send(to, stores[from].Snapshot())
			case 7, 8: // deliver any message, maybe keeping a duplicate in flight
				if len(network) == 0 {
					continue
				}
				k := rapid.IntRange(0, len(network)-1).Draw(t, "message")
				m := network[k]
				if !rapid.Bool().Draw(t, "duplicate") {
					network = append(network[:k], network[k+1:]...)
				}
				var st State
				if err := st.UnmarshalBinary(m.buf); err != nil {
					t.Fatal(err)
				}
				if _, err := stores[m.to].Merge(st); err != nil {
					t.Fatal(err)
				}
			case 9: // drop any message
				if len(network) > 0 {
					k := rapid.IntRange(0, len(network)-1).Draw(t, "dropped")
					network = append(network[:k], network[k+1:]...)
				}
			}
		}
		// Anti-entropy: store 0 exchanges with every other, twice round, so all converge.
		for range 2 {
			for j := 1; j < n; j++ {
				_, diff := compareStores(stores[0], stores[j])
				repair(t, stores[0], stores[j], diff)
			}
		}
		for i, s := range stores {
			for key, total := range want {
				got, err := s.Value(key)
				if err != nil {
					t.Fatalf("replica %d: Value(%q): %v", i, key, err)
				}
				if got != total {
					t.Fatalf("replica %d: %q = %d, want exactly %d", i, key, got, total)
				}
			}
			if s.Len() != len(want) {
				t.Fatalf("replica %d holds %d keys, want %d", i, s.Len(), len(want))
			}
			if _, diff := compareStores(stores[0], s); len(diff) != 0 {
				t.Fatalf("replica %d still differs from replica 0 on %q", i, diff)
			}
		}
	})
}

// TestStoreMatchesCounterModel checks a Store against a map of PNCounters under random local
// writes and merges, with up to 12 replicas a key (genReplica), so keys cross from inline counts to the
// rest array (entry.go) and the hot replica changes often. After each step the written key's
// Value, Counter and digest hash must match the model's.
func TestStoreMatchesCounterModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s, _ := New(Config{Shards: rapid.SampledFrom([]int{1, 4}).Draw(t, "shards")})
		model := make(map[string]PNCounter)
		for range rapid.IntRange(1, 60).Draw(t, "steps") {
			key := rapid.SampledFrom([]string{"k0", "k1", "k2"}).Draw(t, "key")
			c := model[key]
			if rapid.IntRange(0, 3).Draw(t, "op") == 0 { // merge a remote state of the key
				remote := c.Clone()
				for range rapid.IntRange(1, 3).Draw(t, "remote writes") {
					if _, err := remote.Add(genReplica.Draw(t, "remote replica"), genAmount.Draw(t, "amount")); err != nil {
						t.Fatal(err)
					}
				}
				mustMerge(t, s, stateOf(key, remote))
				c.Merge(remote)
			} else {
				r, amount := genReplica.Draw(t, "replica"), genAmount.Draw(t, "amount")
				if _, err := c.Add(r, amount); err != nil {
					t.Fatal(err)
				}
				got := mustApply(t, s, key, r, amount)
				if v, _ := c.Value(); got != v {
					t.Fatalf("Apply(%q, %v, %d) = %d, want %d", key, r, amount, got, v)
				}
			}
			model[key] = c
			got, err := s.Counter(key)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(c) {
				t.Fatalf("Counter(%q) = %v, want %v", key, got, c)
			}
		}
		// Same counts, written in another order into another store: same digest.
		other, _ := New(DefaultConfig())
		for key, c := range model {
			mustMerge(t, other, stateOf(key, c))
		}
		if !slices.Equal(s.Digest().hashes, other.Digest().hashes) {
			t.Fatal("stores with the same counts have different digests")
		}
	})
}

// stateOf returns a State holding key with counter c.
func stateOf(key string, c PNCounter) State {
	st := State{keys: []string{key}}
	for i, r := range c.Replicas() {
		p, n := c.Counts(r)
		st.replicas = append(st.replicas, r)
		st.counts = append(st.counts, slot{replica: uint32(i), p: p, n: n})
	}
	st.ends = []uint32{uint32(len(st.counts))}
	return st
}
