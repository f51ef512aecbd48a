package lockmgr

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// voterSim runs voter acceptors and several concurrent proposers over a network that loses,
// duplicates and reorders messages, and restarts acceptors from their encoded durable
// state. It checks, after every step, that each version has at most one committed set
// (one chosen change) and that each committed set differs from its predecessor by exactly
// one member.
type voterSim struct {
	t       *rapid.T
	cfg     Config
	now     time.Time
	peers   []string                  // every peer with an acceptor
	accs    map[string]*VoterAcceptor // by peer name
	props   []*simProposer
	net     []simMsg            // in flight
	chosen  map[uint64]VoterSet // committed set per version, as first seen anywhere
	rounds  []ownerRound        // successful ownership promise rounds, newest last
	accepts map[slotBallot]*ballotAccepts
	chosenB map[uint64]Ballot // lowest ballot a majority accepted, per version
}

// ownerRound is an ownership promise round that passed CheckVersion at a majority of the
// owner's set: its majority holds promises until the deadline.
type ownerRound struct {
	version  uint64
	by       []string
	deadline time.Time
}

// round is an owner's ownership promise round, reduced to the voter side: the owner asks the
// members of its committed set (some unreachable), each checks the owner's version; with a
// strict majority of passes the owner holds its lease for LockDelay from now. Every two
// rounds live at once must share an acceptor — that acceptor's per-key exclusivity (Acceptor)
// is what keeps two owners apart; so their versions must not be two apart.
func (s *voterSim) round(t *rapid.T) {
	owner := rapid.SampledFrom(s.peers).Draw(t, "owner")
	set := s.accs[owner].Set()
	if set.Version == 0 {
		if err := s.accs[owner].CheckVersion(0, 0, s.now); err != ErrNoVoters {
			t.Fatalf("CheckVersion with no set: %v", err)
		}
		return
	}
	var by []string
	for _, m := range set.Members {
		if !rapid.Bool().Draw(t, "reachable") {
			continue
		}
		err := s.accs[m].CheckVersion(set.Cluster, set.Version, s.now)
		switch {
		case err == nil:
			by = append(by, m)
		case errors.Is(err, ErrStaleVersion), errors.Is(err, ErrNoVoters):
		default:
			t.Fatalf("CheckVersion on %s: %v", m, err)
		}
	}
	if len(by) < set.Majority() {
		return
	}
	r := ownerRound{version: set.Version, by: by, deadline: s.now.Add(s.cfg.LockDelay)}
	for _, o := range s.rounds {
		if !o.deadline.After(s.now) {
			continue
		}
		shared := false
		for _, m := range o.by {
			shared = shared || slices.Contains(by, m)
		}
		if !shared {
			t.Fatalf("two live ownership rounds with disjoint majorities: version %d by %v until %v, version %d by %v",
				o.version, o.by, o.deadline, r.version, r.by)
		}
	}
	s.rounds = append(s.rounds, r)
}

// slotBallot is one ballot of the Paxos instance for one version.
type slotBallot struct {
	version uint64
	ballot  Ballot
}

// ballotAccepts is who accepted which change under one ballot, seen by a global observer.
type ballotAccepts struct {
	change VoterChange
	base   VoterSet
	by     map[string]bool
}

type simProposer struct {
	name  string
	wants []VoterChange // changes this peer wants, in order
	p     *VoterProposer
	gen   int // bumped on a proposer crash: answers to the old one are dropped
}

// simMsg is a request to an acceptor (ans == false) or an answer to a proposer.
type simMsg struct {
	prop, gen int // the proposer that sent the request
	req       VoterMsg
	ans       bool
	from      string // answers: the acceptor
	answer    VoterAnswer
	err       error
}

func newVoterSim(t *rapid.T) *voterSim {
	n := rapid.IntRange(3, 7).Draw(t, "voters")
	var voters []string
	for i := range n {
		voters = append(voters, fmt.Sprintf("v%d", i))
	}
	joiners := []string{"x0", "x1", "x2"}
	cfg := DefaultConfig()
	cfg.Rand = rand.NewChaCha8([32]byte{byte(rapid.IntRange(0, 255).Draw(t, "seed"))})
	s := &voterSim{t: t, cfg: cfg, now: t0, accs: map[string]*VoterAcceptor{}, chosen: map[uint64]VoterSet{},
		accepts: map[slotBallot]*ballotAccepts{}, chosenB: map[uint64]Ballot{}}
	v1, err := BootstrapSet(voters)
	if err != nil {
		t.Fatal(err)
	}
	s.record(v1)
	for _, name := range slices.Concat(voters, joiners) {
		st := VoterAcceptorState{}
		if slices.Contains(voters, name) {
			st.Set = v1
		}
		a, err := NewVoterAcceptor(cfg, st, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		s.accs[name] = a
		s.peers = append(s.peers, name)
	}
	// Proposers on some voters, each wanting its own changes (adds of joiners, removes of
	// voters): concurrent proposals for the same version usually differ.
	changes := []VoterChange{{VoterAdd, "x0"}, {VoterAdd, "x1"}, {VoterAdd, "x2"}}
	for _, v := range voters[1:] {
		changes = append(changes, VoterChange{VoterRemove, v})
	}
	perm := rapid.Permutation(changes).Draw(t, "changes")
	np := rapid.IntRange(2, min(4, n)).Draw(t, "proposers")
	for i := range np {
		sp := &simProposer{name: voters[i]}
		for j := i; j < len(perm) && len(sp.wants) < 2; j += np {
			sp.wants = append(sp.wants, perm[j])
		}
		s.props = append(s.props, sp)
	}
	return s
}

// record checks a committed set against every other one seen.
func (s *voterSim) record(set VoterSet) {
	if set.Version == 0 {
		return
	}
	if err := set.Validate(); err != nil {
		s.t.Fatalf("invalid committed set %v: %v", set, err)
	}
	if old, ok := s.chosen[set.Version]; ok {
		if !old.Equal(set) {
			s.t.Fatalf("two sets committed for version %d: %v and %v", set.Version, old, set)
		}
		return
	}
	if prev, ok := s.chosen[set.Version-1]; ok {
		if _, ok := prev.Diff(set); !ok {
			s.t.Fatalf("version %d does not differ from %d by one member: %v -> %v", set.Version, set.Version-1, prev, set)
		}
	}
	if next, ok := s.chosen[set.Version+1]; ok {
		if _, ok := set.Diff(next); !ok {
			s.t.Fatalf("version %d does not differ from %d by one member: %v -> %v", set.Version+1, set.Version, set, next)
		}
	}
	s.chosen[set.Version] = VoterSet{Cluster: set.Cluster, Version: set.Version, Members: slices.Clone(set.Members)}
}

// accepted checks Paxos' invariant as a global observer sees it: one change per ballot, and
// once a majority accepted a change under ballot b, every change accepted under a ballot
// above b is the same one — whether or not any proposer has learned it yet.
func (s *voterSim) accepted(by string, m VoterMsg) {
	v := m.Set.Version + 1
	k := slotBallot{v, m.Ballot}
	ba := s.accepts[k]
	if ba == nil {
		ba = &ballotAccepts{change: m.Change, base: m.Set, by: map[string]bool{}}
		s.accepts[k] = ba
	}
	if ba.change != m.Change {
		s.t.Fatalf("two changes accepted under ballot %v for version %d: %v and %v", m.Ballot, v, ba.change, m.Change)
	}
	ba.by[by] = true
	if len(ba.by) >= ba.base.Majority() {
		if b, ok := s.chosenB[v]; !ok || m.Ballot.Compare(b) < 0 {
			s.chosenB[v] = m.Ballot
		}
		next, err := ba.base.Apply(ba.change)
		if err != nil {
			s.t.Fatal(err)
		}
		s.record(next)
	}
	b, ok := s.chosenB[v]
	if !ok {
		return
	}
	chosen := s.accepts[slotBallot{v, b}].change
	for k, o := range s.accepts {
		if k.version == v && k.ballot.Compare(b) > 0 && o.change != chosen {
			s.t.Fatalf("version %d: %v chosen under ballot %v, but %v accepted under the higher ballot %v", v, chosen, b, o.change, k.ballot)
		}
	}
}

func (s *voterSim) send(i int, msgs []VoterMsg) {
	for _, m := range msgs {
		if m.Kind == VoterCommit {
			s.record(m.Set)
		}
		s.net = append(s.net, simMsg{prop: i, gen: s.props[i].gen, req: m})
	}
	s.ended(i)
}

// ended handles a proposer that finished: the agent gives the result to its own acceptor,
// and starts a proposer for its next change that still applies.
func (s *voterSim) ended(i int) {
	sp := s.props[i]
	if sp.p == nil {
		return
	}
	r, done := sp.p.Result()
	if !done {
		return
	}
	s.record(r.Set)
	if r.Known {
		base := sp.p.base
		want, err := base.Apply(r.Chosen)
		if err != nil || r.Set.Version == base.Version+1 && !want.Equal(r.Set) {
			s.t.Fatalf("proposer on %v reports %v chosen, but the set is %v", base, r.Chosen, r.Set)
		}
		if want.Version == base.Version+1 {
			s.record(want)
		}
	}
	s.local(sp.name, VoterMsg{Kind: VoterCommit, Set: r.Set})
	sp.p = nil
}

// local delivers a message to the proposer's own acceptor at once (no loss).
func (s *voterSim) local(name string, m VoterMsg) (VoterAnswer, error) {
	ans, err := s.accs[name].Handle(m, s.now)
	s.record(s.accs[name].Set())
	return ans, err
}

// start starts a proposer for the first change the peer still wants that applies to its
// acceptor's committed set; it drops the changes already in force.
func (s *voterSim) start(i int, fresh bool) {
	sp := s.props[i]
	if sp.p != nil && !fresh {
		return
	}
	base := s.accs[sp.name].Set()
	for len(sp.wants) > 0 {
		c := sp.wants[0]
		if _, err := base.Apply(c); err != nil {
			sp.wants = sp.wants[1:] // in force already, or no longer possible
			continue
		}
		p, err := NewVoterProposer(s.cfg, sp.name, base, c)
		if err != nil {
			s.t.Fatal(err)
		}
		sp.gen++
		sp.p = p
		s.send(i, p.Start(s.now))
		return
	}
	sp.p = nil
}

func (s *voterSim) deliver(k int, dup bool) {
	m := s.net[k]
	if !dup {
		s.net = slices.Delete(s.net, k, k+1)
	}
	sp := s.props[m.prop]
	if m.ans {
		if sp.p == nil || sp.gen != m.gen {
			return
		}
		s.send(m.prop, sp.p.Handle(m.from, m.answer, m.err, s.now))
		return
	}
	a := s.accs[m.req.To]
	if a == nil {
		return
	}
	ans, err := a.Handle(m.req, s.now)
	s.record(a.Set())
	if m.req.Kind == VoterAccept && err == nil {
		s.accepted(m.req.To, m.req)
	}
	if m.req.Kind != VoterCommit {
		s.net = append(s.net, simMsg{prop: m.prop, gen: m.gen, ans: true, from: m.req.To, answer: ans, err: err})
	}
}

func (s *voterSim) tick(d time.Duration) {
	s.now = s.now.Add(d)
	for i, sp := range s.props {
		if sp.p == nil {
			s.start(i, false)
			continue
		}
		s.send(i, sp.p.Tick(s.now))
	}
}

// restart rebuilds an acceptor from its encoded durable state, as after a crash.
func (s *voterSim) restart(name string) {
	b, err := s.accs[name].State().MarshalBinary()
	if err != nil {
		s.t.Fatal(err)
	}
	var st VoterAcceptorState
	if err := st.UnmarshalBinary(b); err != nil {
		s.t.Fatalf("state of %s does not decode: %v", name, err)
	}
	a, err := NewVoterAcceptor(s.cfg, st, s.now)
	if err != nil {
		s.t.Fatal(err)
	}
	s.accs[name] = a
}

// Steps of the lossy period, by weight.
const (
	opDeliver = iota // 20: one of the four oldest messages arrives, sometimes twice
	opOld            // 2: a message from long ago arrives
	opLose           // 4
	opTime           // 6: up to 300 ms pass, proposers tick
	opRestart        // 2: an acceptor crashes and restarts with its durable state
	opRound          // 3: an owner runs an ownership promise round over its set
	opCrash          // 1: a proposer's peer crashes; a new proposer, maybe for another change
	opStart          // 2: idle proposers start
)

var voterOpWeights = []int{opDeliver: 20, opOld: 2, opLose: 4, opTime: 6, opRestart: 2, opRound: 3, opCrash: 1, opStart: 2}

func drawOp(t *rapid.T) int {
	total := 0
	for _, w := range voterOpWeights {
		total += w
	}
	x := rapid.IntRange(0, total-1).Draw(t, "op")
	for op, w := range voterOpWeights {
		if x < w {
			return op
		}
		x -= w
	}
	return opStart
}

func (s *voterSim) step(t *rapid.T) {
	switch drawOp(t) {
	case opDeliver:
		if len(s.net) > 0 {
			k := rapid.IntRange(0, min(len(s.net), 4)-1).Draw(t, "msg")
			s.deliver(k, rapid.IntRange(0, 5).Draw(t, "dup") == 0)
		}
	case opOld:
		if len(s.net) > 0 {
			s.deliver(rapid.IntRange(0, len(s.net)-1).Draw(t, "old msg"), false)
		}
	case opLose:
		if len(s.net) > 0 {
			k := rapid.IntRange(0, len(s.net)-1).Draw(t, "lost")
			s.net = slices.Delete(s.net, k, k+1)
		}
	case opTime:
		s.tick(time.Duration(rapid.IntRange(0, 300).Draw(t, "ms")) * time.Millisecond)
	case opRestart:
		s.restart(rapid.SampledFrom(s.peers).Draw(t, "restart"))
	case opRound:
		s.round(t)
	case opCrash:
		i := rapid.IntRange(0, len(s.props)-1).Draw(t, "crash")
		if len(s.props[i].wants) > 1 && rapid.Bool().Draw(t, "rotate") {
			w := s.props[i].wants
			s.props[i].wants = append(w[1:], w[0])
		}
		s.start(i, true)
	default:
		s.tick(0)
	}
}

// settle runs with no loss, duplication or restart: every message is delivered (in random
// order) before time moves on by 200 ms, until every proposer has run out of changes.
func (s *voterSim) settle(t *rapid.T) {
	deadline := s.now.Add(30 * time.Minute)
	for s.now.Before(deadline) {
		for len(s.net) > 0 {
			s.deliver(rapid.IntRange(0, len(s.net)-1).Draw(t, "final msg"), false)
		}
		busy := false
		for _, sp := range s.props {
			busy = busy || sp.p != nil || len(sp.wants) > 0
		}
		if !busy {
			return
		}
		s.tick(200 * time.Millisecond)
	}
	for i, sp := range s.props {
		var b Ballot
		if sp.p != nil {
			b = sp.p.Ballot()
		}
		t.Logf("proposer %d on %s: wants %v, ballot %v", i, sp.name, sp.wants, b)
	}
	t.Fatalf("no progress in the loss-free period: chosen up to version %d", len(s.chosen))
}

// Concurrent proposers with different changes, over a network that loses, duplicates and
// reorders, with acceptor restarts that keep durable state and proposer crashes: at most one
// set is ever committed per version, each differs from its predecessor by exactly one
// member, and once the network is loss-free every proposer gets through its changes (each is
// committed, or no longer applies) — so some proposal commits.
func TestVoterProtocolProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := newVoterSim(t)
		s.tick(0)
		for range rapid.IntRange(0, 300).Draw(t, "steps") {
			s.step(t)
		}
		s.settle(t)
		if len(s.chosen) < 2 {
			t.Fatalf("nothing committed: %v", s.chosen)
		}
		// Everyone who heard of the last set agrees with it; the voters of the last set learn
		// it from one more commit round (here: the record of each acceptor's set).
		for _, name := range s.peers {
			s.record(s.accs[name].Set())
		}
	})
}
