package lockmgr

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
)

// VoterMsgKind says what a VoterMsg asks.
type VoterMsgKind uint8

const (
	// VoterPrepare is Paxos phase 1: VoterAcceptor.Prepare(Set, Ballot).
	VoterPrepare VoterMsgKind = 1
	// VoterAccept is Paxos phase 2: VoterAcceptor.Accept(Set, Ballot, Change).
	VoterAccept VoterMsgKind = 2
	// VoterCommit makes a chosen set known: VoterAcceptor.Commit(Set). It has no answer.
	VoterCommit VoterMsgKind = 3
)

func (k VoterMsgKind) String() string {
	switch k {
	case VoterPrepare:
		return "prepare"
	case VoterAccept:
		return "accept"
	case VoterCommit:
		return "commit"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// VoterMsg is a request from a VoterProposer to the VoterAcceptor of peer To. Set is the
// proposer's committed (base) set for Prepare and Accept, and the newly committed set for
// Commit; Ballot is used by Prepare and Accept, Change by Accept.
type VoterMsg struct {
	To     string
	Kind   VoterMsgKind
	Set    VoterSet
	Ballot Ballot
	Change VoterChange
}

// VoterResult is how a VoterProposer ended. Set is the newest committed set it knows: the
// one it committed, or a newer one an acceptor reported (ErrStaleVersion). When Known, Chosen
// is the change chosen for version base.Version+1, and Own says whether it is the proposer's
// own change; when a newer set skipped past that version, Known is false. Either way the
// agent checks whether the change it wants still applies to Set (Set.Apply), and if so
// starts a new proposer on top of Set.
type VoterResult struct {
	Set    VoterSet
	Chosen VoterChange
	Known  bool
	Own    bool
}

type proposerPhase uint8

const (
	phaseWaiting proposerPhase = iota // until next: a new ballot (after Start, or preempted)
	phasePrepare
	phaseAccept
	phaseDone
)

// VoterProposer drives one voter change through single-decree Paxos for version
// base.Version+1 against the members of base: phase 1 (Prepare) until a majority promised
// its ballot; phase 2 (Accept) with the change accepted under the highest ballot those
// promises report — or, if none reports one, its own change — until a majority accepted;
// then the change is chosen and it sends Commit to the members of the old and the new set.
// So at most one change is ever chosen per version, whatever proposers run at once.
//
// Lost messages are sent again every Config.VoterRetry (to the members that have not said
// yes, under the same ballot); a proposer refused with ErrBallot waits a random time below
// twice VoterRetry and starts again above the ballot that beat it, so dueling proposers stop
// dueling. A proposer refused with ErrStaleVersion ends at once with the newer set.
//
// It is a deterministic state machine with no clock, I/O or goroutine: Start, Handle and
// Tick return the messages to send; the agent sends them (one to its own VoterAcceptor,
// handled locally), feeds each answer to Handle and calls Tick at NextDeadline. It never gives
// up by itself (a majority may be out of reach for a long time): the agent drops it when it
// no longer wants the change or after a deadline of its own; dropping needs no cleanup. A
// proposer keeps nothing durable: after a crash the agent starts a new one. Not safe for
// concurrent use.
type VoterProposer struct {
	cfg  Config
	rand io.Reader
	name string
	base VoterSet
	own  VoterChange

	phase    proposerPhase
	ballot   Ballot
	maxRound uint64          // highest round seen, ours or an acceptor's
	yes      map[string]bool // members that said yes to ballot in this phase
	best     Ballot          // highest accepted ballot reported in phase 1
	value    VoterChange     // phase 1: best's change; phase 2: the change proposed
	next     time.Time       // when Tick acts
	result   VoterResult
}

// NewVoterProposer returns a proposer of change on top of base, the proposer's committed set,
// for the peer name. Its ballots carry name, '#' and 16 random hex digits from Config.Rand:
// Paxos needs one change per ballot, and the random part keeps two proposers apart even when
// they share a name and a round (a peer that restarted, or that gave up on a proposer and
// started another on the same base), so the agent keeps nothing about proposers. It refuses a
// bad config (ErrBadConfig), a bad name or a change that does not apply to base
// (ErrBadVoterChange, ErrBadVoterSet), and a failing random source (ErrRandom). The proposer
// does nothing until Start.
func NewVoterProposer(cfg Config, name string, base VoterSet, change VoterChange) (*VoterProposer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := checkMember(name); err != nil {
		return nil, fmt.Errorf("%w: proposer %w", ErrBadVoterChange, err)
	}
	if _, err := base.Apply(change); err != nil {
		return nil, err
	}
	r := cfg.Rand
	if r == nil {
		r = rand.Reader
	}
	var nonce [8]byte
	if _, err := io.ReadFull(r, nonce[:]); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRandom, err)
	}
	id := fmt.Sprintf("%s#%016x", name, binary.BigEndian.Uint64(nonce[:]))
	base.Members = slices.Clone(base.Members)
	return &VoterProposer{cfg: cfg, rand: r, name: id, base: base, own: change, phase: phaseWaiting}, nil
}

// Start begins phase 1 under round 1 (or above every round seen) and returns the Prepare
// messages, one per member of base. Calling it again, or after the proposer ended, returns
// nothing.
func (p *VoterProposer) Start(now time.Time) []VoterMsg {
	if p.phase != phaseWaiting || p.ballot.Round != 0 {
		return nil
	}
	return p.prepare(now)
}

func (p *VoterProposer) prepare(now time.Time) []VoterMsg {
	p.maxRound++
	p.ballot = Ballot{Round: p.maxRound, Proposer: p.name}
	p.phase = phasePrepare
	p.yes = map[string]bool{}
	p.best = Ballot{}
	p.value = VoterChange{}
	return p.send(now)
}

// send (re)sends the current phase's request to every member that has not said yes.
func (p *VoterProposer) send(now time.Time) []VoterMsg {
	p.next = now.Add(p.cfg.VoterRetry)
	kind := VoterPrepare
	if p.phase == phaseAccept {
		kind = VoterAccept
	}
	var out []VoterMsg
	for _, m := range p.base.Members {
		if !p.yes[m] {
			msg := VoterMsg{To: m, Kind: kind, Set: p.base, Ballot: p.ballot}
			if kind == VoterAccept {
				msg.Change = p.value
			}
			out = append(out, msg)
		}
	}
	return out
}

// Handle takes the answer of member from's VoterAcceptor (ans when err is nil, else the
// refusal) and returns the messages to send next. Answers to an older ballot or phase, from
// non-members, duplicates and unknown errors are ignored. Check Result after each call.
func (p *VoterProposer) Handle(from string, ans VoterAnswer, err error, now time.Time) []VoterMsg {
	if p.phase == phaseDone {
		return nil
	}
	if err != nil {
		return p.refused(err, now)
	}
	if !p.base.Contains(from) || p.yes[from] || ans.Ballot != p.ballot || ans.Version != p.base.Version {
		return nil
	}
	switch {
	case p.phase == phasePrepare && ans.Kind == VoterPrepare:
		p.yes[from] = true
		if !ans.Accepted.IsZero() && ans.Accepted.Compare(p.best) > 0 {
			if _, err := p.base.Apply(ans.Change); err == nil {
				p.best, p.value = ans.Accepted, ans.Change
			}
		}
		if len(p.yes) < p.base.Majority() {
			return nil
		}
		if p.best.IsZero() {
			p.value = p.own
		}
		p.phase = phaseAccept
		p.yes = map[string]bool{}
		return p.send(now)
	case p.phase == phaseAccept && ans.Kind == VoterAccept:
		p.yes[from] = true
		if len(p.yes) < p.base.Majority() {
			return nil
		}
		next, _ := p.base.Apply(p.value) // checked when value was taken
		p.finish(VoterResult{Set: next, Chosen: p.value, Known: true, Own: p.value == p.own})
		var out []VoterMsg
		for _, m := range mergeMembers(p.base.Members, next.Members) {
			out = append(out, VoterMsg{To: m, Kind: VoterCommit, Set: next})
		}
		return out
	}
	return nil
}

func (p *VoterProposer) refused(err error, now time.Time) []VoterMsg {
	var e *VoterRefusedError
	if !errors.As(err, &e) {
		return nil
	}
	switch e.Err {
	case ErrStaleVersion:
		if e.Set.Cluster != p.base.Cluster || e.Set.Version <= p.base.Version || e.Set.Validate() != nil {
			return nil
		}
		r := VoterResult{Set: e.Set}
		r.Set.Members = slices.Clone(e.Set.Members)
		if c, ok := p.base.Diff(e.Set); ok {
			r.Chosen, r.Known, r.Own = c, true, c == p.own
		}
		p.finish(r)
	case ErrBallot:
		if e.Promised.Compare(p.ballot) <= 0 {
			return nil // a late answer to an older ballot of ours
		}
		p.maxRound = max(p.maxRound, e.Promised.Round)
		if p.phase == phasePrepare || p.phase == phaseAccept {
			p.phase = phaseWaiting
			p.next = now.Add(p.jitter(2 * p.cfg.VoterRetry))
		}
	}
	// ErrSettling: Tick asks again. ErrOtherCluster: that member is not one of ours (the
	// agent learns of the merge from its own acceptor and CheckVersion); it never says yes.
	return nil
}

func (p *VoterProposer) jitter(limit time.Duration) time.Duration {
	var b [8]byte
	if _, err := io.ReadFull(p.rand, b[:]); err != nil || limit <= 0 {
		return limit
	}
	return time.Duration(binary.LittleEndian.Uint64(b[:]) % uint64(limit))
}

func (p *VoterProposer) finish(r VoterResult) {
	p.phase = phaseDone
	p.result = r
	p.yes = nil
	p.next = time.Time{}
}

// Tick resends the current phase's requests to the members that have not said yes, or, after
// a preemption, starts a new ballot; it does nothing before NextDeadline.
func (p *VoterProposer) Tick(now time.Time) []VoterMsg {
	if p.phase == phaseDone || p.ballot.Round == 0 || now.Before(p.next) {
		return nil
	}
	if p.phase == phaseWaiting {
		return p.prepare(now)
	}
	return p.send(now)
}

// NextDeadline is when Tick next has work (the zero time once the proposer ended or before
// Start).
func (p *VoterProposer) NextDeadline() time.Time { return p.next }

// Result returns how the proposer ended, and whether it has.
func (p *VoterProposer) Result() (VoterResult, bool) { return p.result, p.phase == phaseDone }

// Ballot returns the proposer's current ballot (zero before Start).
func (p *VoterProposer) Ballot() Ballot { return p.ballot }

// mergeMembers returns the sorted union of two sorted lists.
func mergeMembers(a, b []string) []string {
	out := slices.Concat(a, b)
	slices.Sort(out)
	return slices.Compact(out)
}
