package agent

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/serf/serf"
)

// ErrUnknownMember is returned (wrapped) for a member name serf does not
// know.
var ErrUnknownMember = errors.New("agent: unknown member")

// ErrMemberAlive is returned (wrapped) by ForceLeave for a member that is
// not failed.
var ErrMemberAlive = errors.New("agent: member is not failed")

// Member is one cluster member as this peer sees it.
type Member struct {
	Name string `json:"name"`
	// Addr is the gossip address, host:port.
	Addr string `json:"addr"`
	// RPCAddr is the peer RPC address (empty for non-peers).
	RPCAddr string `json:"rpc_addr,omitempty"`
	// Status is serf's: alive, leaving, left or failed.
	Status string            `json:"status"`
	Tags   map[string]string `json:"tags"`
	// Peer says whether the member is a Ringleader peer (role=peer).
	Peer bool `json:"peer"`
	// InRing says whether it is in this peer's current ring.
	InRing bool `json:"in_ring"`
}

// Members lists every member serf knows, sorted by name.
func (a *Agent) Members() ([]Member, error) {
	s, err := a.serfOrErr()
	if err != nil {
		return nil, err
	}
	v := a.view.load()
	var out []Member
	for _, m := range s.Members() {
		_, inRing := v.RPC[m.Name]
		out = append(out, Member{
			Name:    m.Name,
			Addr:    net.JoinHostPort(m.Addr.String(), strconv.Itoa(int(m.Port))),
			RPCAddr: m.Tags[TagRPC],
			Status:  m.Status.String(),
			Tags:    m.Tags,
			Peer:    m.Tags[TagRole] == RolePeer,
			InRing:  inRing,
		})
	}
	slices.SortFunc(out, func(x, y Member) int { return strings.Compare(x.Name, y.Name) })
	return out, nil
}

// AlivePeers returns the names of the role=peer members serf sees alive,
// this peer included, sorted. It is Members cut down to what a watcher of
// convergence polls (the simulation asks every peer many times a second).
func (a *Agent) AlivePeers() ([]string, error) {
	s, err := a.serfOrErr()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range s.Members() {
		if m.Status == serf.StatusAlive && m.Tags[TagRole] == RolePeer {
			out = append(out, m.Name)
		}
	}
	slices.Sort(out)
	return out, nil
}

// memberCounts counts members by serf status.
func (a *Agent) memberCounts() map[string]int {
	counts := map[string]int{}
	s, err := a.serfOrErr()
	if err != nil {
		return counts
	}
	for _, m := range s.Members() {
		counts[m.Status.String()]++
	}
	return counts
}

// ForceLeave removes a failed member: it is marked left (prune: forgotten
// entirely) and serf stops trying to reconnect to it. Like serf's
// force-leave it refuses members that are alive: they would refute it.
func (a *Agent) ForceLeave(name string, prune bool) error {
	s, err := a.serfOrErr()
	if err != nil {
		return err
	}
	var found *serf.Member
	for _, m := range s.Members() {
		if m.Name == name {
			found = &m
			break
		}
	}
	switch {
	case found == nil:
		return fmt.Errorf("%w: %q (see `peer members`)", ErrUnknownMember, name)
	case found.Status == serf.StatusAlive || found.Status == serf.StatusLeaving:
		return fmt.Errorf("%w: %q is %s; force-leave only removes failed members (stop it, or let it leave)", ErrMemberAlive, name, found.Status)
	}
	if prune {
		err = s.RemoveFailedNodePrune(name)
	} else {
		err = s.RemoveFailedNode(name)
	}
	if err != nil {
		return fmt.Errorf("agent: force-leave %q: %w", name, err)
	}
	a.log.Info("forced member to leave", "member", name, "prune", prune)
	if ls, err := a.lockService(); err == nil {
		ls.forceLeaveVoter(name)
	}
	return nil
}
