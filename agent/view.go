package agent

import (
	"slices"
	"sync/atomic"
	"time"

	"github.com/hashicorp/serf/serf"

	"github.com/ringleader/ringleader/ring"
)

// View is an immutable snapshot of the ring and of where each ring member
// answers peer RPC. A new View is built on every membership change and
// swapped in whole, so readers never lock and never see half an update.
type View struct {
	// Ring holds the alive role=peer members.
	Ring *ring.Ring
	// RPC maps each ring member to its peer RPC address.
	RPC map[string]string
	// since is when this peer last saw each ring member become alive.
	since map[string]time.Time
	// peers maps every peer member but this one that has not left to its
	// RPC address, "" unless alive (see identityPeers). Read-only.
	peers map[string]string
}

type viewHolder struct{ p atomic.Pointer[View] }

func (h *viewHolder) load() *View   { return h.p.Load() }
func (h *viewHolder) store(v *View) { h.p.Store(v) }

func emptyView(vnodes int) *View {
	r, err := ring.New(nil, ring.Config{VNodes: vnodes})
	if err != nil {
		// vnodes was validated by New; an empty ring cannot fail otherwise.
		r = nil
	}
	return &View{Ring: r, RPC: map[string]string{}}
}

// View returns the current ring snapshot.
func (a *Agent) View() *View { return a.view.load() }

// buildView computes the view from serf's members: alive members tagged
// role=peer, whatever order serf lists them in.
func buildView(members []serf.Member, vnodes int) (*View, error) {
	return buildViewFrom(members, vnodes, nil)
}

// buildViewFrom is buildView reusing old, the previous ring, when its
// members are the same: a member event that leaves the alive peers as they
// were (a tag update, a failure and return within one drained burst, a
// non-peer member) then costs no ring build. With 200 peers a build hashes
// and sorts 25,600 points, and a membership storm brings every peer
// hundreds of events.
func buildViewFrom(members []serf.Member, vnodes int, old *ring.Ring) (*View, error) {
	v := &View{RPC: make(map[string]string)}
	var rm []ring.Member
	for _, m := range members {
		if !inRing(m) {
			continue
		}
		rm = append(rm, ring.Member{Name: m.Name, Weight: 1})
		v.RPC[m.Name] = m.Tags[TagRPC]
	}
	slices.SortFunc(rm, func(x, y ring.Member) int {
		switch {
		case x.Name < y.Name:
			return -1
		case x.Name > y.Name:
			return 1
		}
		return 0
	})
	if old != nil && old.VNodes() == vnodes && slices.Equal(old.Members(), rm) {
		v.Ring = old
		return v, nil
	}
	// NewFrom reuses the virtual nodes of the members old has too: a
	// member coming back or going away costs a merge, not a hash and sort
	// of all 25,600 points (a fifth of the CPU of 200 simulated peers
	// after a heal went into ring builds).
	r, err := ring.NewFrom(old, rm, ring.Config{VNodes: vnodes})
	if err != nil {
		return nil, err
	}
	v.Ring = r
	return v, nil
}

// inRing reports whether m belongs in the ring: an alive role=peer member.
func inRing(m serf.Member) bool {
	return m.Status == serf.StatusAlive && m.Tags[TagRole] == RolePeer
}

// isOtherPeer reports whether m belongs in View.peers: a role=peer member
// other than self that has not left.
func isOtherPeer(m serf.Member, self string) bool {
	return m.Name != self && m.Tags[TagRole] == RolePeer && m.Status != serf.StatusLeft
}

// peerAddr is m's address in View.peers: its RPC address while alive, else
// empty.
func peerAddr(m serf.Member) string {
	if m.Status != serf.StatusAlive {
		return ""
	}
	return m.Tags[TagRPC]
}

// peerAddrs returns the peer members (role=peer, not left, not self) with
// their RPC address, empty for members that are not alive.
func peerAddrs(members []serf.Member, self string) map[string]string {
	out := make(map[string]string, len(members))
	for _, m := range members {
		if isOtherPeer(m, self) {
			out[m.Name] = peerAddr(m)
		}
	}
	return out
}

// viewStale reports whether v is not what rebuildView would make of
// members: another ring, other RPC addresses or other peers. It allocates
// nothing, so watchMembers can ask it every probe interval.
func viewStale(v *View, members []serf.Member, self string) bool {
	ring, peers := 0, 0
	for _, m := range members {
		if inRing(m) {
			ring++
			if addr, ok := v.RPC[m.Name]; !ok || addr != m.Tags[TagRPC] {
				return true
			}
		}
		if isOtherPeer(m, self) {
			peers++
			if addr, ok := v.peers[m.Name]; !ok || addr != peerAddr(m) {
				return true
			}
		}
	}
	return ring != len(v.RPC) || peers != len(v.peers)
}

// rebuildView rebuilds the ring from serf's members and swaps it in.
func (a *Agent) rebuildView(members []serf.Member) {
	old := a.view.load()
	var oldRing *ring.Ring
	if old != nil {
		oldRing = old.Ring
	}
	v, err := buildViewFrom(members, a.cfg.VNodes, oldRing)
	if err != nil {
		a.log.Error("ring rebuild failed; keeping the previous ring", "err", err)
		return
	}
	v.peers = peerAddrs(members, a.cfg.NodeName)
	now := a.clock.Now()
	v.since = make(map[string]time.Time, len(v.RPC))
	for name := range v.RPC {
		v.since[name] = now
		if old != nil {
			if t, ok := old.since[name]; ok {
				v.since[name] = t
			}
		}
	}
	a.view.store(v)
	if old != nil && old.Ring != nil && old.Ring.Checksum() == v.Ring.Checksum() && mapsEqual(old.RPC, v.RPC) {
		return
	}
	switch {
	case a.ctr == nil || old == nil || old.Ring == nil:
	case len(old.RPC) > 1:
		// Keys' preference lists changed in a cluster this peer was already
		// part of (not the others it finds when it starts): the records
		// it holds go to the peers that entered them.
		a.ctr.queueIdemMove(old.Ring, "")
	case len(v.RPC) > 1:
		// The first view with others since this peer started: it may have
		// come back before they saw it fail, with no ring change to bring
		// it the records it lost with its data dir.
		a.wg.Add(1)
		go a.pullIdem(v)
	}
	a.metrics.ringRebuilds.Inc()
	if ls, err := a.lockService(); err == nil {
		ls.ringChanged()
	}
	a.log.Info("ring rebuilt", "members", v.Ring.Len(), "checksum", v.Ring.ChecksumHex())
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// watchMembers rebuilds the view on every member event, draining bursts so a
// storm of events costs one rebuild, and keeps the saved known peers current.
//
// Serf also changes member statuses with no event: a leave intent turns an
// alive member leaving, and a join intent newer than the leave intent turns
// it alive again (serf.go, handleNodeLeaveIntent and handleNodeJoinIntent).
// A peer pruned with force-leave and restarted hits the second: serf keeps
// the prune's leave intent, lists the returning member as leaving with its
// EventMemberJoin, and turns it alive when its join intent comes. So every
// probe interval watchMembers also compares serf's members with the view
// and rebuilds when they differ; otherwise the ring would miss the member
// until some unrelated event, 12-15 s later in a test with real processes.
func (a *Agent) watchMembers(events <-chan serf.Event) {
	defer a.wg.Done()
	var known []string
	var before []serf.Member // the members at the last rebuild
	apply := func(members []serf.Member) {
		a.rebuildView(members)
		known = a.recordKnownPeers(members, known)
		a.noteReturns(before, members)
		before = members
	}
	every := a.cfg.Timings.ProbeInterval
	recheck := a.clock.NewTimer(every)
	defer func() { recheck.Stop() }()
	for {
		select {
		case e := <-events:
			rebuild := isMemberEvent(e)
		drain:
			for {
				select {
				case e := <-events:
					rebuild = rebuild || isMemberEvent(e)
				default:
					break drain
				}
			}
			s, err := a.serfOrErr()
			if rebuild && err == nil {
				apply(s.Members())
			}
		case <-recheck.C():
			recheck = a.clock.NewTimer(every)
			s, err := a.serfOrErr()
			if err != nil {
				continue
			}
			if members := s.Members(); viewStale(a.view.load(), members, a.cfg.NodeName) {
				a.log.Debug("serf changed a member status with no event; rebuilding the ring")
				apply(members)
			}
		case <-a.stop:
			return
		}
	}
}

func isMemberEvent(e serf.Event) bool {
	_, ok := e.(serf.MemberEvent)
	return ok
}
