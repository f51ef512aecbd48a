// Command example shows two counter replicas diverging during a network partition and
// converging to the exact total when it heals. Run it with
//
//	go run ./crdt/example
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/ringleader/ringleader/crdt"
)

// replica is one peer: its store, its own replica ID, and how far it has gossiped.
type replica struct {
	name  string
	id    crdt.ReplicaID
	store *crdt.Store
	sent  crdt.Cursor // what this replica has already gossiped to the other
}

func newReplica(name string) *replica {
	s, err := crdt.New(crdt.DefaultConfig())
	check(err)
	return &replica{name: name, id: crdt.ReplicaID{Node: name, Incarnation: 1}, store: s}
}

func (r *replica) add(key string, amount int64) {
	v, err := r.store.Apply(key, r.id, amount)
	check(err)
	fmt.Printf("  %-5s %+4d on %-10s -> %s now reads %d\n", r.name, amount, key, r.name, v)
}

// gossip sends this replica's changes since the last gossip to peer, as an encoded message,
// unless the network is cut; then the message is lost.
func (r *replica) gossip(peer *replica, cut bool) {
	st, next, _ := r.store.DeltasSince(r.sent, 0)
	r.sent = next
	msg, err := st.MarshalBinary()
	check(err)
	if cut {
		fmt.Printf("  %s gossips %d changed key(s) to %s: lost in the partition\n", r.name, st.Len(), peer.name)
		return
	}
	var got crdt.State
	check(got.UnmarshalBinary(msg))
	changed, err := peer.store.Merge(got)
	check(err)
	fmt.Printf("  %s gossips %d changed key(s) to %s (%d bytes); %s updates %s\n",
		r.name, st.Len(), peer.name, len(msg), peer.name, strings.Join(changed, ", "))
}

func (r *replica) value(key string) string {
	v, err := r.store.Value(key)
	if err != nil {
		return "-"
	}
	return fmt.Sprint(v)
}

func main() {
	alice, bob := newReplica("alice"), newReplica("bob")
	keys := []string{"page.views", "signups"}
	show := func() {
		for _, k := range keys {
			fmt.Printf("  %-10s alice reads %-4s bob reads %s\n", k, alice.value(k), bob.value(k))
		}
	}
	total := map[string]int64{}
	add := func(r *replica, key string, amount int64) {
		r.add(key, amount)
		total[key] += amount
	}

	fmt.Println("Two replicas, alice and bob, each keep a copy of the same counters.")
	fmt.Println("A write is applied locally at once, then spread to the other replica.")
	fmt.Println("Each replica counts its own additions and subtractions; a merge keeps, for every")
	fmt.Println("replica, the larger of the two counts it sees. So merging twice, late or out of")
	fmt.Println("order never double-counts, and nothing acknowledged is lost.")
	fmt.Println()
	fmt.Println("1. Connected: writes spread by gossip.")
	add(alice, "page.views", 3)
	add(bob, "page.views", 4)
	alice.gossip(bob, false)
	bob.gossip(alice, false)
	show()

	fmt.Println()
	fmt.Println("2. Partition: the link is cut. Both sides keep accepting writes.")
	add(alice, "page.views", 10)
	add(alice, "page.views", 5)
	add(bob, "page.views", 2)
	add(bob, "page.views", -1)
	add(bob, "signups", 1)
	alice.gossip(bob, true)
	bob.gossip(alice, true)
	show()
	fmt.Println("  The replicas disagree, and the deltas that would fix it were lost.")

	fmt.Println()
	fmt.Println("3. Heal: anti-entropy compares digests (hashes of buckets of keys, then of the")
	fmt.Println("   keys in the buckets that differ) and ships only the keys that differ.")
	bytes := 0
	send := func(d crdt.Digest) crdt.Digest {
		msg, err := d.MarshalBinary()
		check(err)
		bytes += len(msg)
		var got crdt.Digest
		check(got.UnmarshalBinary(msg))
		return got
	}
	msg := send(alice.store.Digest()) // alice -> bob: top-level hashes
	msg = send(must(bob.store.CompareDigest(msg)))
	msg = send(must(alice.store.CompareDigest(msg)))
	_, diff := bob.store.CompareDigest(msg)
	fmt.Printf("  3 digest messages, %d bytes, find the keys that differ: %s\n", bytes, strings.Join(diff, ", "))
	for _, pair := range [][2]*replica{{bob, alice}, {alice, bob}} {
		from, to := pair[0], pair[1]
		st := from.store.States(diff)
		msg, err := st.MarshalBinary()
		check(err)
		var got crdt.State
		check(got.UnmarshalBinary(msg))
		changed, err := to.store.Merge(got)
		check(err)
		fmt.Printf("  %s sends its state of those keys to %s (%d bytes); %s updates %s\n",
			from.name, to.name, len(msg), to.name, strings.Join(changed, ", "))
	}
	show()

	fmt.Println()
	for _, k := range keys {
		fmt.Printf("Every write counted exactly once: %s = %d on both replicas.\n", k, total[k])
		for _, r := range []*replica{alice, bob} {
			if r.value(k) != fmt.Sprint(total[k]) {
				fmt.Fprintf(os.Stderr, "%s reads %s for %s, want %d\n", r.name, r.value(k), k, total[k])
				os.Exit(1)
			}
		}
	}
	// A late duplicate of an old delta changes nothing: merge keeps the larger count.
	old := bob.store.States([]string{"page.views"})
	if changed, _ := alice.store.Merge(old); len(changed) == 0 {
		fmt.Println("Merging the same state again changes nothing, so duplicates and replays are harmless.")
	}
}

func must(d crdt.Digest, _ []string) crdt.Digest { return d }

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "example:", err)
		os.Exit(1)
	}
}
