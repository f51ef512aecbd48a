package crdt

import (
	"errors"
	"slices"
	"testing"
)

// TestReplicaIdentityRollback plays the startup check of the package documentation: a peer
// whose data dir was rolled back finds that a peer holds more for its replica ID than it
// does, and must take a new incarnation; with one, its writes count again.
func TestReplicaIdentityRollback(t *testing.T) {
	self := ReplicaID{Node: "n1", Incarnation: 1}
	local, peer := mustStore(t), mustStore(t)
	mustApply(t, local, "a", self, 5)
	mustApply(t, local, "b", self, -2)
	backup := local.Snapshot() // the backup is taken here
	mustApply(t, local, "a", self, 3)
	mustMerge(t, peer, local.Snapshot()) // spread, then the data dir is lost

	restored := mustStore(t)
	if err := restored.Restore(backup); err != nil {
		t.Fatal(err)
	}
	behind, err := restored.ReplicaCounts(self).Behind(peer.ReplicaCounts(self))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(behind, []string{"a"}) {
		t.Fatalf("Behind = %q, want [a]", behind)
	}
	// Reusing the ID would swallow the next write: the peer already holds a higher count.
	reuse := mustStore(t)
	mustMerge(t, reuse, backup)
	mustApply(t, reuse, "a", self, 1) // P = 6 < 8 at the peer
	mustMerge(t, reuse, peer.Snapshot())
	if v, _ := reuse.Value("a"); v != 8 {
		t.Fatalf("reused ID: value %d, want 8 (the write is swallowed, which is why the rule exists)", v)
	}
	// A new incarnation above every known one counts again.
	maxInc, ok := peer.MaxIncarnation("n1")
	if !ok || maxInc != 1 {
		t.Fatalf("MaxIncarnation = %d, %v, want 1, true", maxInc, ok)
	}
	fresh := ReplicaID{Node: "n1", Incarnation: maxInc + 1}
	mustApply(t, restored, "a", fresh, 1)
	mustMerge(t, restored, peer.Snapshot())
	mustMerge(t, peer, restored.Snapshot())
	for _, s := range []*Store{restored, peer} {
		if v, _ := s.Value("a"); v != 9 {
			t.Fatalf("with a new incarnation: value %d, want 9", v)
		}
	}
}

func TestReplicaCounts(t *testing.T) {
	s := mustStore(t)
	mustApply(t, s, "x", ra, 4)
	mustApply(t, s, "x", ra, -1)
	mustApply(t, s, "y", rb, 2)
	mustApply(t, s, "a", ra, 2)
	rc := s.ReplicaCounts(ra)
	if rc.Replica() != ra || rc.Len() != 2 {
		t.Fatalf("ReplicaCounts(ra): replica %s, %d keys, want ra, 2", rc.Replica(), rc.Len())
	}
	if p, n := rc.Counts("x"); p != 4 || n != 1 {
		t.Fatalf("Counts(x) = %d, %d, want 4, 1", p, n)
	}
	if p, n := rc.Counts("y"); p != 0 || n != 0 {
		t.Fatalf("Counts(y) = %d, %d, want 0, 0", p, n)
	}
	if got := s.ReplicaCounts(rc.Replica()); !slices.Equal(got.keys, []string{"a", "x"}) {
		t.Fatalf("keys %q, want sorted [a x]", got.keys)
	}
	if unknown := s.ReplicaCounts(ReplicaID{Node: "zz"}); unknown.Len() != 0 {
		t.Fatalf("unknown replica has %d keys", unknown.Len())
	}
	if _, err := rc.Behind(s.ReplicaCounts(rb)); !errors.Is(err, ErrBadReplica) {
		t.Fatalf("Behind across replicas = %v, want ErrBadReplica", err)
	}
	if _, ok := s.MaxIncarnation("nobody"); ok {
		t.Fatal("MaxIncarnation of an unknown node reports one")
	}
	b, err := rc.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var rc2 ReplicaCounts
	if err := rc2.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if behind, err := rc2.Behind(rc); err != nil || len(behind) != 0 || rc2.Len() != rc.Len() || rc2.Replica() != ra {
		t.Fatalf("round trip: %v, behind %q", err, behind)
	}
}
