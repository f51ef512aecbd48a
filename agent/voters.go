package agent

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/serf/serf"
	"github.com/ringleader/ringleader/lockmgr"
)

// The voter set (lockmgr/doc.go, "Voters"; docs/locks.md, "Voters"): the
// peers whose strict majority promises ownership leases. It is persisted in
// the store, changed one member at a time by single-decree Paxos among the
// current voters (lockmgr.VoterProposer and VoterAcceptor), and named by
// (cluster, version) in every promise request.

// Peer RPC methods of the voter set.
const (
	methodVoterMsg = "voters.msg" // a VoterProposer's Prepare, Accept or Commit
	methodVoterGet = "voters.get" // the committed set, for a peer that has none
)

// metaVoters is the meta value holding the VoterAcceptorState.
const metaVoters = "voters"

// TagVoters carries this peer's committed voter set as
// "<cluster hex>/<version>/<members>", or "0" for none. Peers read it to
// bootstrap (nobody has a set yet), to learn that a set exists, and to
// detect a merge of two clusters.
const TagVoters = "rl-voters"

// voterTag formats TagVoters.
func voterTag(s lockmgr.VoterSet) string {
	if s.Version == 0 {
		return "0"
	}
	return fmt.Sprintf("%x/%d/%d", s.Cluster, s.Version, len(s.Members))
}

// voterTagInfo is a parsed TagVoters.
type voterTagInfo struct {
	cluster, version uint64
	size             int
}

// parseVoterTag reads TagVoters; ok is false for a missing or bad tag (a
// stock serf agent, an older peer).
func parseVoterTag(tag string) (t voterTagInfo, ok bool) {
	if tag == "0" {
		return t, true
	}
	parts := strings.Split(tag, "/")
	if len(parts) != 3 {
		return t, false
	}
	var err1, err2, err3 error
	t.cluster, err1 = strconv.ParseUint(parts[0], 16, 64)
	t.version, err2 = strconv.ParseUint(parts[1], 10, 64)
	t.size, err3 = strconv.Atoi(parts[2])
	if err1 != nil || err2 != nil || err3 != nil || t.version == 0 || t.size < 1 {
		return voterTagInfo{}, false
	}
	return t, true
}

// wireSet is a VoterSet on the wire; the receiver validates it.
type wireSet struct {
	Cluster uint64   `msgpack:"c"`
	Version uint64   `msgpack:"v"`
	Members []string `msgpack:"m"`
}

func toWireSet(s lockmgr.VoterSet) *wireSet {
	return &wireSet{Cluster: s.Cluster, Version: s.Version, Members: s.Members}
}

func (w *wireSet) set() lockmgr.VoterSet {
	if w == nil {
		return lockmgr.VoterSet{}
	}
	return lockmgr.VoterSet{Cluster: w.Cluster, Version: w.Version, Members: w.Members}
}

// voterMsgRequest is a lockmgr.VoterMsg on the wire.
type voterMsgRequest struct {
	Kind     uint8   `msgpack:"k"`
	Set      wireSet `msgpack:"s"`
	Round    uint64  `msgpack:"r,omitempty"`
	Proposer string  `msgpack:"p,omitempty"`
	Op       uint8   `msgpack:"o,omitempty"`
	Member   string  `msgpack:"mb,omitempty"`
}

func toVoterRequest(m lockmgr.VoterMsg) *voterMsgRequest {
	return &voterMsgRequest{Kind: uint8(m.Kind), Set: *toWireSet(m.Set), Round: m.Ballot.Round,
		Proposer: m.Ballot.Proposer, Op: uint8(m.Change.Op), Member: m.Change.Member}
}

func (r *voterMsgRequest) msg() lockmgr.VoterMsg {
	return lockmgr.VoterMsg{Kind: lockmgr.VoterMsgKind(r.Kind), Set: r.Set.set(),
		Ballot: lockmgr.Ballot{Round: r.Round, Proposer: r.Proposer},
		Change: lockmgr.VoterChange{Op: lockmgr.VoterOp(r.Op), Member: r.Member}}
}

// voterMsgResponse is a VoterAnswer, or a refusal (Refused names the
// lockmgr error; Set, PRound/PProposer and Wait carry its details).
type voterMsgResponse struct {
	Kind        uint8         `msgpack:"k,omitempty"`
	Version     uint64        `msgpack:"v,omitempty"`
	Round       uint64        `msgpack:"r,omitempty"`
	Proposer    string        `msgpack:"p,omitempty"`
	AccRound    uint64        `msgpack:"ar,omitempty"`
	AccProposer string        `msgpack:"ap,omitempty"`
	Op          uint8         `msgpack:"o,omitempty"`
	Member      string        `msgpack:"mb,omitempty"`
	Refused     string        `msgpack:"e,omitempty"`
	Set         *wireSet      `msgpack:"s,omitempty"`
	PRound      uint64        `msgpack:"pr,omitempty"`
	PProposer   string        `msgpack:"pp,omitempty"`
	Wait        time.Duration `msgpack:"w,omitempty"`
}

// voterRefusals names the refusals a VoterAcceptor gives, for the wire.
var voterRefusals = map[string]error{
	"stale":         lockmgr.ErrStaleVersion,
	"ballot":        lockmgr.ErrBallot,
	"other-cluster": lockmgr.ErrOtherCluster,
	"settling":      lockmgr.ErrSettling,
	"no-voters":     lockmgr.ErrNoVoters,
}

func refusalName(err error) string {
	for name, e := range voterRefusals {
		if errors.Is(err, e) {
			return name
		}
	}
	return ""
}

func toVoterResponse(ans lockmgr.VoterAnswer, err error) (*voterMsgResponse, error) {
	if err != nil {
		var ref *lockmgr.VoterRefusedError
		if !errors.As(err, &ref) {
			return nil, err
		}
		return &voterMsgResponse{Refused: refusalName(ref.Err), Set: toWireSet(ref.Set),
			PRound: ref.Promised.Round, PProposer: ref.Promised.Proposer, Wait: ref.Wait}, nil
	}
	return &voterMsgResponse{Kind: uint8(ans.Kind), Version: ans.Version, Round: ans.Ballot.Round,
		Proposer: ans.Ballot.Proposer, AccRound: ans.Accepted.Round, AccProposer: ans.Accepted.Proposer,
		Op: uint8(ans.Change.Op), Member: ans.Change.Member}, nil
}

// answer turns a response back into what VoterProposer.Handle takes.
func (r *voterMsgResponse) answer() (lockmgr.VoterAnswer, error) {
	if r.Refused != "" {
		e, ok := voterRefusals[r.Refused]
		if !ok {
			return lockmgr.VoterAnswer{}, fmt.Errorf("unknown voter refusal %q", r.Refused)
		}
		return lockmgr.VoterAnswer{}, &lockmgr.VoterRefusedError{Err: e, Set: r.Set.set(),
			Promised: lockmgr.Ballot{Round: r.PRound, Proposer: r.PProposer}, Wait: r.Wait}
	}
	return lockmgr.VoterAnswer{Kind: lockmgr.VoterMsgKind(r.Kind), Version: r.Version,
		Ballot:   lockmgr.Ballot{Round: r.Round, Proposer: r.Proposer},
		Accepted: lockmgr.Ballot{Round: r.AccRound, Proposer: r.AccProposer},
		Change:   lockmgr.VoterChange{Op: lockmgr.VoterOp(r.Op), Member: r.Member}}, nil
}

// voterGetResponse answers methodVoterGet.
type voterGetResponse struct {
	Set wireSet `msgpack:"s"`
	// Quiet is how long the answering peer still promises nothing (it
	// started, or gave up a set, within the last lock-delay); 0 when it
	// promises now. Peers that predate it never send it.
	Quiet time.Duration `msgpack:"q,omitempty"`
}

// VoterSet describes the committed voter set as this peer knows it.
type VoterSet struct {
	// Cluster names the history (hex); Version 0 means none has formed.
	Cluster  string
	Version  uint64
	Members  []string
	Majority int
}

// Voters returns this peer's committed voter set.
func (a *Agent) Voters() (VoterSet, error) {
	ls, err := a.lockService()
	if err != nil {
		return VoterSet{}, err
	}
	s := ls.acceptor.voterSet()
	out := VoterSet{Version: s.Version, Members: s.Members}
	if s.Version > 0 {
		out.Cluster, out.Majority = fmt.Sprintf("%016x", s.Cluster), s.Majority()
	}
	return out, nil
}

func (a *Agent) handleVoterMsg(ctx context.Context, req *voterMsgRequest) (*voterMsgResponse, error) {
	ls, err := a.lockService()
	if err != nil {
		return nil, err
	}
	ans, err := ls.acceptor.handleVoterMsg(req.msg())
	ls.kickVoters()
	return toVoterResponse(ans, err)
}

func (a *Agent) handleVoterGet(ctx context.Context, _ *struct{}) (*voterGetResponse, error) {
	ls, err := a.lockService()
	if err != nil {
		return nil, err
	}
	return &voterGetResponse{Set: *toWireSet(ls.acceptor.voterSet()), Quiet: ls.acceptor.quietFor(a.clock.Now())}, nil
}

// kickVoters wakes the voter loop (after a set was learned or a member
// changed).
func (ls *lockService) kickVoters() {
	select {
	case ls.voterKick <- struct{}{}:
	default:
	}
}

// memberInfo is what the voter loop needs of a serf member.
type memberInfo struct {
	name   string
	status serf.MemberStatus
	tag    voterTagInfo
	tagged bool
}

func (a *Agent) peerMembers() []memberInfo {
	s, err := a.serfOrErr()
	if err != nil {
		return nil
	}
	var out []memberInfo
	for _, m := range s.Members() {
		if m.Tags[TagRole] != RolePeer {
			continue
		}
		t, ok := parseVoterTag(m.Tags[TagVoters])
		out = append(out, memberInfo{name: m.Name, status: m.Status, tag: t, tagged: ok})
	}
	return out
}

// voterLoop keeps the voter set in step with the membership: it forms the
// first set (bootstrap), learns the set of the cluster this peer joined,
// gives up this peer's set when it lost a merge of two clusters, adds
// peers that joined and removes peers that left, one at a time, and keeps
// TagVoters current. Owned by the agent's wait group.
func (ls *lockService) voterLoop() {
	defer ls.a.wg.Done()
	for {
		ls.voterStep()
		t := ls.a.clock.NewTimer(ls.cfg.VoterRetry)
		select {
		case <-t.C():
		case <-ls.voterKick:
			t.Stop()
		case <-ls.a.stop:
			t.Stop()
			return
		}
	}
}

// voterStep is one pass of voterLoop.
func (ls *lockService) voterStep() {
	a := ls.a
	ls.syncVoterTag()
	members := a.peerMembers()
	set := ls.acceptor.voterSet()
	if set.Version == 0 {
		ls.formOrLearn(members)
		return
	}
	if ls.lostMerge(set, members) {
		return
	}
	if ls.leaving.Load() {
		return
	}
	ls.noteRemovals(set)
	change, ok := ls.wantedChange(set, members)
	if !ok {
		ls.wantSince = time.Time{}
		return
	}
	now := a.clock.Now()
	if ls.wantSince.IsZero() {
		ls.wantSince = now
	}
	// One proposer at a time, usually: the first alive voter by name. Any
	// voter takes over when a change has waited ten retries (that one may
	// be cut off); concurrent proposers are safe, only slower.
	if !ls.firstAliveVoter(set, members) && now.Sub(ls.wantSince) < 10*ls.cfg.VoterRetry {
		return
	}
	ctx, cancel := a.runContext(2 * (ls.cfg.LockDelay + ls.cfg.DriftMargin))
	defer cancel()
	// Drop the change once it is no longer wanted (the peer to add left
	// meanwhile); another proposer may still choose it, and the loop then
	// takes the peer out again.
	wanted := func() bool {
		c, ok := ls.wantedChange(set, a.peerMembers())
		return ok && c == change
	}
	if change.Op == lockmgr.VoterAdd {
		if err := ls.addKeepsQuorum(ctx, set, change.Member); err != nil {
			a.log.Debug("voter change waits", "change", change.String(), "err", err)
			return
		}
	}
	if _, err := ls.propose(ctx, set, change, wanted); err != nil {
		a.log.Debug("voter change not made yet", "change", change.String(), "err", err)
	}
}

// syncVoterTag sets TagVoters to the committed set when it changed. serf
// applies new tags at once but SetTags then waits (up to serf's broadcast
// timeout, 5 s) for the gossip to go out, also when serf is shut down
// meanwhile; so the wait runs in a goroutine of its own, one at a time,
// which Shutdown does not wait for.
func (ls *lockService) syncVoterTag() {
	s, err := ls.a.serfOrErr()
	if err != nil {
		return
	}
	want := voterTag(ls.acceptor.voterSet())
	tags := s.LocalMember().Tags
	if tags[TagVoters] == want || !ls.tagging.CompareAndSwap(false, true) {
		return
	}
	tags = maps.Clone(tags)
	tags[TagVoters] = want
	go func() {
		defer ls.tagging.Store(false)
		if err := s.SetTags(tags); err != nil && s.State() == serf.SerfAlive {
			ls.a.log.Debug("voter tag update not yet gossiped", "err", err)
		}
		ls.kickVoters() // the set may have changed again meanwhile
	}()
}

// formOrLearn runs on a peer with no committed set: it learns the set of a
// member that has one, or, when it sees --bootstrap-expect peers (or more,
// and it is the first of them by name) and none has a set, forms version 1
// from them.
func (ls *lockService) formOrLearn(members []memberInfo) {
	a := ls.a
	view := a.view.load()
	var alive []string
	for _, m := range members {
		if m.tagged && m.tag.version > 0 && !ls.acceptor.abandoned(m.tag.cluster) {
			addr, ok := view.RPC[m.name]
			if !ok {
				continue
			}
			ctx, cancel := a.runContext(a.cfg.RPCTimeout)
			var resp voterGetResponse
			err := a.call(ctx, addr, methodVoterGet, &struct{}{}, &resp)
			cancel()
			if err == nil && resp.Set.Version > 0 {
				if err := ls.acceptor.learnSet(resp.Set.set()); err != nil {
					a.log.Debug("cannot learn the voter set", "from", m.name, "err", err)
					continue
				}
				a.log.Info("learned the voter set", "from", m.name, "voters", ls.acceptor.voterSet().String())
				ls.syncVoterTag()
				return
			}
			continue
		}
		if m.tagged && m.tag.version > 0 {
			continue // of a history this peer gave up
		}
		if m.status == serf.StatusAlive {
			alive = append(alive, m.name)
		}
	}
	for _, m := range members {
		if m.tagged && m.tag.version > 0 {
			return // a set exists: wait to be added, or to reach its holder
		}
	}
	// Only the first by name forms it, from all it sees (N or more: peers
	// that all joined each other with the default 1); the others learn it.
	// Its cluster ID is random: a cluster formed again under the same names
	// (a peer that lost its disk, started alone) is another history.
	slices.Sort(alive)
	ls.seen.Store(int64(len(alive)))
	n := a.cfg.Locks.BootstrapExpect
	if !ls.joinSettled() || len(alive) < n || len(alive) == 0 || alive[0] != a.cfg.NodeName {
		return
	}
	set, err := lockmgr.BootstrapSet(alive)
	if err == nil {
		set.Cluster, err = randomCluster()
	}
	if err != nil {
		a.log.Error("cannot form the voter set", "err", err)
		return
	}
	if err := ls.acceptor.learnSet(set); err != nil {
		a.log.Error("cannot record the voter set", "err", err)
		return
	}
	a.log.Info("formed the voter set", "voters", set.String())
	ls.syncVoterTag()
}

// randomCluster returns a random, non-zero cluster ID.
func randomCluster() (uint64, error) {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return 0, err
		}
		if id := binary.BigEndian.Uint64(b[:]); id != 0 {
			return id, nil
		}
	}
}

// joinSettled says whether this peer may bootstrap a set alone: it was not
// asked to join anyone, or its join went through, or one lock-delay passed
// since it started (its acceptor promised nothing before then anyway).
func (ls *lockService) joinSettled() bool {
	a := ls.a
	if !a.rejoining {
		return true
	}
	return a.hasOtherAlive() || a.clock.Now().Sub(a.startedAt) >= ls.cfg.LockDelay
}

// lostMerge handles two clusters that merged (lockmgr/doc.go, "Voters"):
// the set with more members survives, on a tie the smaller cluster. A peer
// of the other history gives its set up, promises nothing for one
// lock-delay, and is added to the survivors' set like any new peer.
func (ls *lockService) lostMerge(set lockmgr.VoterSet, members []memberInfo) bool {
	for _, m := range members {
		t := m.tag
		if m.status != serf.StatusAlive || !m.tagged || t.version == 0 || t.cluster == set.Cluster {
			continue
		}
		if t.size > len(set.Members) || t.size == len(set.Members) && t.cluster < set.Cluster {
			ls.a.log.Warn("this peer's cluster merged with a larger one: giving up its voter set; it will be added to theirs",
				"ours", set.String(), "theirs", fmt.Sprintf("%x/v%d (%d voters) via %s", t.cluster, t.version, t.size, m.name))
			if err := ls.acceptor.abandon(); err != nil {
				ls.a.log.Error("cannot record the abandoned voter set", "err", err)
			}
			ls.syncVoterTag()
			return true
		}
	}
	return false
}

// wantedChange picks the next voter change: remove a voter that left
// (gracefully or by force-leave), else add an alive peer that is not one
// (of this cluster, or with no set).
func (ls *lockService) wantedChange(set lockmgr.VoterSet, members []memberInfo) (lockmgr.VoterChange, bool) {
	status := map[string]memberInfo{}
	for _, m := range members {
		status[m.name] = m
	}
	for _, name := range set.Members {
		m, known := status[name]
		left := known && m.status == serf.StatusLeft
		if (left || ls.forgotten(name, known)) && len(set.Members) > 1 && name != ls.a.cfg.NodeName {
			return lockmgr.VoterChange{Op: lockmgr.VoterRemove, Member: name}, true
		}
	}
	var adds []string
	now := ls.a.clock.Now()
	for _, m := range members {
		if m.status != serf.StatusAlive || set.Contains(m.name) || !m.tagged {
			continue
		}
		if at, ok := ls.removed[m.name]; ok && now.Sub(at) < ls.cfg.LockDelay {
			continue // it left: serf still shows it alive for a moment
		}
		if m.tag.version == 0 || m.tag.cluster == set.Cluster {
			adds = append(adds, m.name)
		}
	}
	if len(adds) == 0 {
		return lockmgr.VoterChange{}, false
	}
	slices.Sort(adds)
	return lockmgr.VoterChange{Op: lockmgr.VoterAdd, Member: adds[0]}, true
}

// addKeepsQuorum says whether adding member to set keeps locks available:
// a strict majority of the larger set can promise right now (every member
// asked, by voters.get in parallel, answers and is not in its quiet
// period), or the current set cannot either (locks are down anyway, as
// while a new cluster's first peers are all quiet) and a majority of the
// larger set answers. Else the add waits: with a voter down, adding a peer
// that just started (or while another voter restarts) would leave too few
// promising voters, and every lock would stop until the quiet periods
// ended, losing the leases that could not be renewed meanwhile. Removals
// never need this: the majority of the smaller set is never larger.
func (ls *lockService) addKeepsQuorum(ctx context.Context, set lockmgr.VoterSet, member string) error {
	a := ls.a
	names := append(slices.Clone(set.Members), member)
	type state struct {
		name  string
		ready bool
	}
	view := a.view.load()
	answers := make(chan state, len(names))
	var wg sync.WaitGroup
	for _, name := range names {
		if name == a.cfg.NodeName {
			answers <- state{name, ls.acceptor.quietFor(a.clock.Now()) == 0}
			continue
		}
		addr, ok := view.RPC[name]
		if !ok {
			continue // failed or not yet alive here
		}
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, a.cfg.RPCTimeout)
			defer cancel()
			var resp voterGetResponse
			if err := a.call(cctx, addr, methodVoterGet, &struct{}{}, &resp); err == nil {
				answers <- state{name, resp.Quiet == 0}
			}
		})
	}
	wg.Wait()
	close(answers)
	var ready []string
	answered, readyNow := 0, 0
	for st := range answers {
		answered++
		if st.ready {
			ready = append(ready, st.name)
			if st.name != member {
				readyNow++
			}
		}
	}
	need := len(names)/2 + 1
	if len(ready) >= need || (readyNow < set.Majority() && answered >= need) {
		return nil
	}
	slices.Sort(ready)
	return fmt.Errorf("adding %s now would leave %d of %d voters able to promise (%s), %d needed; it waits until more can",
		member, len(ready), len(names), strings.Join(ready, ", "), need)
}

// noteRemovals remembers when members dropped out of the voter set (voter
// loop only): a peer that just took itself out before leaving is still
// alive to serf for a moment, and must not be added straight back.
func (ls *lockService) noteRemovals(set lockmgr.VoterSet) {
	if ls.removed == nil {
		ls.removed = map[string]time.Time{}
	}
	now := ls.a.clock.Now()
	if ls.lastSet.Cluster == set.Cluster {
		for _, m := range ls.lastSet.Members {
			if !set.Contains(m) {
				ls.removed[m] = now
			}
		}
	}
	for m, at := range ls.removed {
		if now.Sub(at) >= ls.cfg.LockDelay {
			delete(ls.removed, m)
		}
	}
	ls.mu.Lock()
	for m := range ls.pruned {
		if !set.Contains(m) {
			delete(ls.pruned, m) // out: nothing left to do for it
		}
	}
	ls.mu.Unlock()
	ls.lastSet = set
}

// forgotten reports a voter that `peer force-leave --prune` removed here:
// serf forgets a pruned member at once, so its "left" may never be seen.
func (ls *lockService) forgotten(name string, known bool) bool {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if known {
		return false
	}
	return ls.pruned[name]
}

// firstAliveVoter says whether this peer is the first voter by name among
// those it sees alive (itself included).
func (ls *lockService) firstAliveVoter(set lockmgr.VoterSet, members []memberInfo) bool {
	alive := map[string]bool{ls.a.cfg.NodeName: true}
	for _, m := range members {
		if m.status == serf.StatusAlive {
			alive[m.name] = true
		}
	}
	for _, name := range set.Members {
		if alive[name] {
			return name == ls.a.cfg.NodeName
		}
	}
	return false
}

// voterReply is one voter's answer to a proposer's message.
type voterReply struct {
	from string
	ans  lockmgr.VoterAnswer
	err  error
}

// propose drives one change through a VoterProposer on top of base until it
// ends or ctx is done, and learns the set it ends with. The result says
// which change was chosen (maybe another proposer's).
func (ls *lockService) propose(ctx context.Context, base lockmgr.VoterSet, change lockmgr.VoterChange, wanted func() bool) (lockmgr.VoterResult, error) {
	a := ls.a
	p, err := lockmgr.NewVoterProposer(ls.cfg, a.cfg.NodeName, base, change)
	if err != nil {
		return lockmgr.VoterResult{}, err
	}
	done := make(chan struct{})
	defer close(done)
	replies := make(chan voterReply, 16)
	send := func(msgs []lockmgr.VoterMsg) {
		view := a.view.load()
		for _, m := range msgs {
			if m.To == a.cfg.NodeName {
				ans, err := ls.acceptor.handleVoterMsg(m)
				if m.Kind != lockmgr.VoterCommit {
					go func() {
						select {
						case replies <- voterReply{from: m.To, ans: ans, err: err}:
						case <-done:
						}
					}()
				}
				continue
			}
			addr, ok := view.RPC[m.To]
			if !ok {
				continue // failed or not yet alive: resent on the next tick
			}
			if m.Kind == lockmgr.VoterCommit {
				ls.sendCommit(addr, m)
				continue
			}
			go func() {
				cctx, cancel := context.WithTimeout(ctx, a.cfg.RPCTimeout)
				defer cancel()
				var resp voterMsgResponse
				r := voterReply{from: m.To}
				if r.err = a.call(cctx, addr, methodVoterMsg, toVoterRequest(m), &resp); r.err == nil {
					r.ans, r.err = resp.answer()
				}
				select {
				case replies <- r:
				case <-done:
				}
			}()
		}
	}
	send(p.Start(a.clock.Now()))
	for {
		if res, ended := p.Result(); ended {
			if res.Set.Version > base.Version {
				if err := ls.acceptor.learnSet(res.Set); err != nil {
					return res, err
				}
				if res.Known && res.Own {
					a.log.Info("voter set changed", "change", change.String(), "voters", res.Set.String())
				}
				ls.syncVoterTag()
			}
			return res, nil
		}
		wait := max(p.NextDeadline().Sub(a.clock.Now()), 0)
		t := a.clock.NewTimer(wait)
		select {
		case r := <-replies:
			t.Stop()
			send(p.Handle(r.from, r.ans, r.err, a.clock.Now()))
		case <-t.C():
			if wanted != nil && !wanted() {
				return lockmgr.VoterResult{}, fmt.Errorf("voter change %v no longer wanted", change)
			}
			send(p.Tick(a.clock.Now()))
		case <-ctx.Done():
			t.Stop()
			return lockmgr.VoterResult{}, fmt.Errorf("%w: voter change %v on %v: %v", ErrUnavailable, change, base, ctx.Err())
		}
	}
}

// sendCommit tells one voter of a committed set, in the background: it
// learns the set from later requests anyway if this is lost.
func (ls *lockService) sendCommit(addr string, m lockmgr.VoterMsg) {
	a := ls.a
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		ctx, cancel := a.runContext(a.cfg.RPCTimeout)
		defer cancel()
		var resp voterMsgResponse
		if err := a.call(ctx, addr, methodVoterMsg, toVoterRequest(m), &resp); err != nil {
			a.log.Debug("voter set commit not delivered", "to", m.To, "err", err)
		}
	}()
}

// leaveVoters takes this peer out of the voter set before a graceful
// leave, if a majority of the set is alive to admit it. It takes at most
// two RPC timeouts and half of what is left of ctx, so the leave itself
// still goes out; when it gives up (the change waits for older promises to
// run out, or voters do not answer), a voter of the set removes this peer
// once serf reports it left.
func (ls *lockService) leaveVoters(ctx context.Context) {
	a := ls.a
	limit := 2 * a.cfg.RPCTimeout
	if dl, ok := ctx.Deadline(); ok {
		limit = min(limit, time.Until(dl)/2)
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	set := ls.acceptor.voterSet()
	if !set.Contains(a.cfg.NodeName) || len(set.Members) < 2 {
		return
	}
	view := a.view.load()
	alive := 1
	for _, m := range set.Members {
		if _, ok := view.RPC[m]; ok && m != a.cfg.NodeName {
			alive++
		}
	}
	if alive < set.Majority() {
		a.log.Info("leaving without taking this peer out of the voter set: too few voters alive; the others will once they see it left",
			"alive", alive, "voters", len(set.Members))
		return
	}
	res, err := ls.propose(ctx, set, lockmgr.VoterChange{Op: lockmgr.VoterRemove, Member: a.cfg.NodeName}, nil)
	switch {
	case err != nil:
		a.log.Info("leaving without taking this peer out of the voter set; the others will once they see it left", "err", err)
	case !res.Known || !res.Own:
		a.log.Info("leaving while another voter change went first; the others will take this peer out once they see it left", "voters", res.Set.String())
	}
}

// forceLeaveVoter takes a force-left member out of the voter set: the
// voter loop removes it, even if serf forgot it (--prune).
func (ls *lockService) forceLeaveVoter(name string) {
	ls.mu.Lock()
	if ls.pruned == nil {
		ls.pruned = map[string]bool{}
	}
	ls.pruned[name] = true
	ls.mu.Unlock()
	ls.kickVoters()
}
