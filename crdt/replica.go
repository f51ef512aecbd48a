package crdt

import (
	"cmp"
	"fmt"
	"strconv"
)

// MaxNodeLen is the longest node name a ReplicaID may carry, in bytes.
const MaxNodeLen = 255

// ReplicaID names one writer of counts: a node, in one incarnation. See the package
// documentation for the rule that keeps an ID from ever restarting at a lower count.
//
// The zero ReplicaID is not valid. ReplicaID is comparable and can be a map key.
type ReplicaID struct {
	// Node is the node's stable name (a serf member name), 1 to MaxNodeLen bytes.
	Node string
	// Incarnation distinguishes lives of the node that do not share durable counts. It only
	// ever grows for a given node.
	Incarnation uint64
}

// NewReplicaID returns the ReplicaID of node in the given incarnation, or ErrBadReplica.
func NewReplicaID(node string, incarnation uint64) (ReplicaID, error) {
	r := ReplicaID{Node: node, Incarnation: incarnation}
	return r, r.Validate()
}

// Validate returns ErrBadReplica (wrapped) if r's node name is empty or longer than MaxNodeLen.
func (r ReplicaID) Validate() error {
	if len(r.Node) == 0 || len(r.Node) > MaxNodeLen {
		return fmt.Errorf("%w: node name must be 1 to %d bytes, got %d", ErrBadReplica, MaxNodeLen, len(r.Node))
	}
	return nil
}

// String returns "node/incarnation".
func (r ReplicaID) String() string {
	return r.Node + "/" + strconv.FormatUint(r.Incarnation, 10)
}

// Compare orders replica IDs by node, then incarnation. It returns -1, 0 or +1.
func (r ReplicaID) Compare(o ReplicaID) int {
	if c := cmp.Compare(r.Node, o.Node); c != 0 {
		return c
	}
	return cmp.Compare(r.Incarnation, o.Incarnation)
}
