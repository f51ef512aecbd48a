package crdt_test

import (
	"fmt"

	"github.com/ringleader/ringleader/crdt"
)

// Two replicas count page views on both sides of a partition; when it heals, anti-entropy by
// digest finds the one key that differs and both converge to the exact total.
func Example() {
	a, _ := crdt.New(crdt.DefaultConfig())
	b, _ := crdt.New(crdt.DefaultConfig())
	alice := crdt.ReplicaID{Node: "alice", Incarnation: 1}
	bob := crdt.ReplicaID{Node: "bob", Incarnation: 1}

	// Partitioned: each side writes on its own.
	a.Apply("views", alice, 5)
	a.Apply("views", alice, 2)
	b.Apply("views", bob, 10)
	b.Apply("views", bob, -1)
	va, _ := a.Value("views")
	vb, _ := b.Value("views")
	fmt.Println("during the partition:", va, vb)

	// Healed: compare digests, then swap the states of the keys that differ.
	reply, _ := b.CompareDigest(a.Digest())
	reply, _ = a.CompareDigest(reply)
	_, diff := b.CompareDigest(reply)
	a.Merge(b.States(diff))
	b.Merge(a.States(diff))
	va, _ = a.Value("views")
	vb, _ = b.Value("views")
	fmt.Println("differing keys:", diff)
	fmt.Println("after healing:", va, vb)
	// Output:
	// during the partition: 7 9
	// differing keys: [views]
	// after healing: 16 16
}
