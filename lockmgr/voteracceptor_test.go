package lockmgr

import (
	"errors"
	"testing"
	"time"
)

// voterStep is one call on a VoterAcceptor in a table test.
type voterStep struct {
	kind    VoterMsgKind // VoterPrepare, VoterAccept, VoterCommit; 0: CheckVersion
	at      time.Duration
	set     VoterSet // base (Prepare, Accept), committed set (Commit)
	ballot  Ballot
	change  VoterChange
	version uint64 // CheckVersion
	err     error
	// checks after the call
	wantAccepted Ballot      // Prepare: the accepted ballot reported
	wantChange   VoterChange // Prepare: the accepted change reported
	wantVersion  uint64      // the acceptor's committed version afterwards
	wantPromised Ballot      // ErrBallot: the ballot in the refusal
	wantSet      uint64      // ErrStaleVersion: the version of the set in the refusal
}

func TestVoterAcceptor(t *testing.T) {
	s := time.Second
	v1 := mustBootstrap(t, "a", "b", "c")
	addD := VoterChange{VoterAdd, "d"}
	rmC := VoterChange{VoterRemove, "c"}
	v2, _ := v1.Apply(addD)
	v2rm, _ := v1.Apply(rmC)
	v3, _ := v2.Apply(VoterChange{VoterAdd, "e"})
	other := mustBootstrap(t, "x", "y")
	b1a, b1b, b2a := Ballot{1, "a"}, Ballot{1, "b"}, Ballot{2, "a"}
	settle := DefaultConfig().LockDelay + DefaultConfig().DriftMargin

	tests := []struct {
		name  string
		start VoterAcceptorState
		steps []voterStep
	}{
		{"prepare then accept", VoterAcceptorState{Set: v1}, []voterStep{
			{kind: VoterPrepare, set: v1, ballot: b1a, wantVersion: 1},
			{kind: VoterAccept, set: v1, ballot: b1a, change: addD, wantVersion: 1},
			{kind: VoterPrepare, set: v1, ballot: b2a, wantAccepted: b1a, wantChange: addD, wantVersion: 1},
		}},
		{"lower ballot refused", VoterAcceptorState{Set: v1}, []voterStep{
			{kind: VoterPrepare, set: v1, ballot: b1b, wantVersion: 1},
			{kind: VoterPrepare, set: v1, ballot: b1a, err: ErrBallot, wantPromised: b1b, wantVersion: 1},
			{kind: VoterAccept, set: v1, ballot: b1a, change: rmC, err: ErrBallot, wantPromised: b1b, wantVersion: 1},
			{kind: VoterPrepare, set: v1, ballot: b1b, wantVersion: 1}, // a duplicate is answered again
		}},
		{"accept without prepare, then a later ballot sees it", VoterAcceptorState{Set: v1}, []voterStep{
			{kind: VoterAccept, set: v1, ballot: b1b, change: rmC, wantVersion: 1},
			{kind: VoterPrepare, set: v1, ballot: b1a, err: ErrBallot, wantPromised: b1b, wantVersion: 1},
			{kind: VoterPrepare, set: v1, ballot: b2a, wantAccepted: b1b, wantChange: rmC, wantVersion: 1},
		}},
		{"one ballot one change", VoterAcceptorState{Set: v1}, []voterStep{
			{kind: VoterAccept, set: v1, ballot: b1a, change: addD, wantVersion: 1},
			{kind: VoterAccept, set: v1, ballot: b1a, change: rmC, err: ErrBadVoterMsg, wantVersion: 1},
		}},
		{"stale base refused with the newer set", VoterAcceptorState{Set: v2}, []voterStep{
			{kind: VoterPrepare, set: v1, ballot: b1a, err: ErrStaleVersion, wantSet: 2, wantVersion: 2},
			{kind: VoterAccept, set: v1, ballot: b1a, change: rmC, err: ErrStaleVersion, wantSet: 2, wantVersion: 2},
		}},
		{"newer base learned, old slot forgotten", VoterAcceptorState{Set: v1, Promised: b2a, Accepted: b2a, Change: rmC}, []voterStep{
			{kind: VoterPrepare, set: v2, ballot: b1a, wantVersion: 2},
		}},
		{"a new peer learns the base", VoterAcceptorState{}, []voterStep{
			{version: 1, err: ErrNoVoters},
			{kind: VoterPrepare, set: v2, ballot: b1a, wantVersion: 2},
			{version: 2, wantVersion: 2},
		}},
		{"same version other members", VoterAcceptorState{Set: v2}, []voterStep{
			{kind: VoterPrepare, set: v2rm, ballot: b1a, err: ErrOtherCluster, wantVersion: 2},
			{kind: VoterCommit, set: v2rm, err: ErrOtherCluster, wantVersion: 2},
		}},
		{"other cluster", VoterAcceptorState{Set: v1}, []voterStep{
			{kind: VoterPrepare, set: other, ballot: b1a, err: ErrOtherCluster, wantVersion: 1},
			{kind: VoterCommit, set: other, err: ErrOtherCluster, wantVersion: 1},
		}},
		{"commit learns newer, ignores older and repeats", VoterAcceptorState{Set: v1}, []voterStep{
			{kind: VoterCommit, set: v3, wantVersion: 3},
			{kind: VoterCommit, set: v2, wantVersion: 3},
			{kind: VoterCommit, set: v3, wantVersion: 3},
		}},
		{"bad requests", VoterAcceptorState{Set: v1}, []voterStep{
			{kind: VoterPrepare, set: v1, ballot: Ballot{}, err: ErrBadVoterMsg, wantVersion: 1},
			{kind: VoterPrepare, set: v1, ballot: Ballot{1, ""}, err: ErrBadVoterMsg, wantVersion: 1},
			{kind: VoterPrepare, set: VoterSet{Version: 2}, ballot: b1a, err: ErrBadVoterMsg, wantVersion: 1},
			{kind: VoterAccept, set: v1, ballot: b1a, change: VoterChange{VoterAdd, "a"}, err: ErrBadVoterChange, wantVersion: 1},
			{kind: VoterCommit, set: VoterSet{Version: 5}, err: ErrBadVoterMsg, wantVersion: 1},
			{kind: 9, err: ErrBadVoterMsg, wantVersion: 1},
		}},
		{"check version", VoterAcceptorState{Set: v2}, []voterStep{
			{version: 1, err: ErrStaleVersion, wantSet: 2, wantVersion: 2},
			{version: 2, wantVersion: 2},
			{version: 5, wantVersion: 2}, // ahead: passes, learns nothing
		}},
		{"settling after a promise under an older version", VoterAcceptorState{Set: v1}, []voterStep{
			{version: 1, at: 10 * s, wantVersion: 1},
			{kind: VoterCommit, at: 11 * s, set: v2, wantVersion: 2},
			{kind: VoterPrepare, at: 12 * s, set: v2, ballot: b1a, wantVersion: 2},
			{kind: VoterAccept, at: 12 * s, set: v2, ballot: b1a, change: rmC, err: ErrSettling, wantVersion: 2},
			{kind: VoterAccept, at: 10*s + settle, set: v2, ballot: b1a, change: rmC, wantVersion: 2},
		}},
		{"settling when the base is learned by the accept itself", VoterAcceptorState{Set: v1}, []voterStep{
			{version: 1, at: 0, wantVersion: 1},
			{kind: VoterAccept, at: s, set: v2, ballot: b1a, change: rmC, err: ErrSettling, wantVersion: 2},
			{kind: VoterAccept, at: settle - 1, set: v2, ballot: b1a, change: rmC, err: ErrSettling, wantVersion: 2},
			{kind: VoterAccept, at: settle, set: v2, ballot: b1a, change: rmC, wantVersion: 2},
		}},
		{"no settling without promises", VoterAcceptorState{Set: v1}, []voterStep{
			{kind: VoterCommit, set: v2, wantVersion: 2},
			{kind: VoterAccept, set: v2, ballot: b1a, change: rmC, wantVersion: 2},
		}},
		{"other cluster on check", VoterAcceptorState{Set: v1}, []voterStep{
			{version: 1, set: other, err: ErrOtherCluster, wantVersion: 1},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := NewVoterAcceptor(DefaultConfig(), tt.start, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			for i, st := range tt.steps {
				now := at(st.at)
				var ans VoterAnswer
				var err error
				if st.kind == 0 {
					cluster := a.Set().Cluster
					if st.set.Version != 0 {
						cluster = st.set.Cluster
					}
					err = a.CheckVersion(cluster, st.version, now)
				} else {
					ans, err = a.Handle(VoterMsg{Kind: st.kind, Set: st.set, Ballot: st.ballot, Change: st.change}, now)
				}
				if !errors.Is(err, st.err) || (err != nil && st.err == nil) {
					t.Fatalf("step %d: err %v, want %v", i, err, st.err)
				}
				if got := a.Set().Version; got != st.wantVersion {
					t.Fatalf("step %d: committed version %d, want %d", i, got, st.wantVersion)
				}
				var re *VoterRefusedError
				if errors.As(err, &re) {
					if re.Promised != st.wantPromised {
						t.Fatalf("step %d: refusal names ballot %v, want %v", i, re.Promised, st.wantPromised)
					}
					if st.wantSet != 0 && re.Set.Version != st.wantSet {
						t.Fatalf("step %d: refusal carries %v, want version %d", i, re.Set, st.wantSet)
					}
					if errors.Is(err, ErrSettling) && re.Wait <= 0 {
						t.Fatalf("step %d: settling with wait %v", i, re.Wait)
					}
					if re.Error() == "" {
						t.Fatal("empty message")
					}
				}
				if err == nil && st.kind == VoterPrepare {
					if ans.Kind != VoterPrepare || ans.Ballot != st.ballot || ans.Version != st.set.Version ||
						ans.Accepted != st.wantAccepted || ans.Change != st.wantChange {
						t.Fatalf("step %d: answer %+v, want accepted %v %v", i, ans, st.wantAccepted, st.wantChange)
					}
				}
				if err == nil && st.kind == VoterAccept && (ans.Kind != VoterAccept || ans.Ballot != st.ballot) {
					t.Fatalf("step %d: answer %+v", i, ans)
				}
				if err := a.State().Validate(); err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
			}
		})
	}
}

// A restarted acceptor keeps its promise and accepted change (from its durable state) and
// accepts nothing for one settling period.
func TestVoterAcceptorRestart(t *testing.T) {
	v1 := mustBootstrap(t, "a", "b", "c")
	a, _ := NewVoterAcceptor(DefaultConfig(), VoterAcceptorState{Set: v1}, time.Time{})
	ch := VoterChange{VoterAdd, "d"}
	if _, err := a.Accept(v1, Ballot{3, "b"}, ch, t0); err != nil {
		t.Fatal(err)
	}
	b, err := a.State().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var st VoterAcceptorState
	if err := st.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	r, err := NewVoterAcceptor(DefaultConfig(), st, at(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Prepare(v1, Ballot{2, "z"}, at(time.Second)); !errors.Is(err, ErrBallot) {
		t.Fatalf("restarted acceptor forgot its promise: %v", err)
	}
	ans, err := r.Prepare(v1, Ballot{4, "a"}, at(time.Second))
	if err != nil || ans.Accepted != (Ballot{3, "b"}) || ans.Change != ch {
		t.Fatalf("restarted acceptor forgot its accepted change: %+v %v", ans, err)
	}
	if _, err := r.Accept(v1, Ballot{4, "a"}, ch, at(2*time.Second)); !errors.Is(err, ErrSettling) {
		t.Fatalf("restarted acceptor accepted at once: %v", err)
	}
	settle := DefaultConfig().LockDelay + DefaultConfig().DriftMargin
	if _, err := r.Accept(v1, Ballot{4, "a"}, ch, at(time.Second+settle)); err != nil {
		t.Fatal(err)
	}
	if _, err := NewVoterAcceptor(DefaultConfig(), VoterAcceptorState{Promised: Ballot{1, "a"}}, t0); !errors.Is(err, ErrBadEncoding) {
		t.Fatalf("bad state accepted: %v", err)
	}
	if _, err := NewVoterAcceptor(Config{}, VoterAcceptorState{}, t0); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("bad config accepted: %v", err)
	}
	r.Abandon()
	if r.Set().Version != 0 || r.CheckVersion(v1.Cluster, 1, t0) != ErrNoVoters {
		t.Fatal("Abandon kept the set")
	}
}

func TestVoterAcceptorStateValidate(t *testing.T) {
	v1 := mustBootstrap(t, "a", "b")
	tests := []struct {
		name string
		st   VoterAcceptorState
		ok   bool
	}{
		{"zero", VoterAcceptorState{}, true},
		{"set only", VoterAcceptorState{Set: v1}, true},
		{"accepted", VoterAcceptorState{Set: v1, Promised: Ballot{2, "a"}, Accepted: Ballot{1, "b"}, Change: VoterChange{VoterAdd, "c"}}, true},
		{"promise without a set", VoterAcceptorState{Promised: Ballot{1, "a"}}, false},
		{"members without a version", VoterAcceptorState{Set: VoterSet{Members: []string{"a"}}}, false},
		{"accepted above promised", VoterAcceptorState{Set: v1, Promised: Ballot{1, "a"}, Accepted: Ballot{2, "a"}, Change: VoterChange{VoterAdd, "c"}}, false},
		{"change without ballot", VoterAcceptorState{Set: v1, Change: VoterChange{VoterAdd, "c"}}, false},
		{"change that does not apply", VoterAcceptorState{Set: v1, Promised: Ballot{1, "a"}, Accepted: Ballot{1, "a"}, Change: VoterChange{VoterAdd, "a"}}, false},
		{"bad promised ballot", VoterAcceptorState{Set: v1, Promised: Ballot{0, "a"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.st.Validate()
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrBadEncoding)) {
				t.Fatalf("Validate = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

// The hazard the settling rule closes: an owner holds a majority {a, b} of v1 = {a, b, c};
// d and then e are added quickly; a majority {c, d, e} of v3 is disjoint from {a, b}. So v3
// must not be chosen while the v1 promises may live: a and b, which let the v1 round through
// before they learned v2, refuse to accept on top of v2 until LockDelay + DriftMargin after.
func TestVoterSettlingKeepsMajoritiesIntersecting(t *testing.T) {
	v1 := mustBootstrap(t, "a", "b", "c")
	accs := newTestAcceptors(t, v1, "a", "b", "c")
	accs["d"], _ = NewVoterAcceptor(DefaultConfig(), VoterAcceptorState{}, time.Time{})
	accs["e"], _ = NewVoterAcceptor(DefaultConfig(), VoterAcceptorState{}, time.Time{})
	for _, m := range []string{"a", "b"} {
		if err := accs[m].CheckVersion(v1.Cluster, 1, t0); err != nil {
			t.Fatal(err)
		}
	}
	run := func(p *VoterProposer, now time.Time) {
		msgs := p.Start(now)
		if msgs == nil {
			msgs = p.Tick(now)
		}
		for len(msgs) > 0 {
			msgs = exchange(p, accs, msgs, now)
		}
		exchange(p, accs, msgs, now)
	}
	p2, _ := NewVoterProposer(testVoterConfig(1), "c", v1, VoterChange{VoterAdd, "d"})
	run(p2, at(time.Second))
	r2, done := p2.Result()
	if !done || r2.Set.Version != 2 {
		t.Fatalf("adding d: %+v %v", r2, done)
	}
	for _, m := range []string{"a", "b", "c", "d"} {
		accs[m].Commit(r2.Set, at(time.Second))
	}
	p3, _ := NewVoterProposer(testVoterConfig(2), "c", r2.Set, VoterChange{VoterAdd, "e"})
	settle := DefaultConfig().LockDelay + DefaultConfig().DriftMargin
	for now := at(2 * time.Second); now.Before(at(settle)); now = now.Add(time.Second) {
		run(p3, now)
		if r, done := p3.Result(); done {
			t.Fatalf("v3 %v chosen at %v, while the v1 round may live", r.Set, now.Sub(t0))
		}
	}
	run(p3, at(settle))
	if r, done := p3.Result(); !done || r.Set.Version != 3 {
		t.Fatalf("v3 not chosen after settling: %+v", r)
	}
}
