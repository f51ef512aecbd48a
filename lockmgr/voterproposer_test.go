package lockmgr

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

func testVoterConfig(seed byte) Config {
	cfg := DefaultConfig()
	cfg.Rand = rand.NewChaCha8([32]byte{seed})
	return cfg
}

func newTestAcceptors(t testing.TB, set VoterSet, names ...string) map[string]*VoterAcceptor {
	t.Helper()
	accs := map[string]*VoterAcceptor{}
	for _, n := range names {
		st := VoterAcceptorState{}
		if set.Version > 0 {
			st.Set = set
		}
		a, err := NewVoterAcceptor(DefaultConfig(), st, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		accs[n] = a
	}
	return accs
}

// exchange delivers msgs (to the acceptors present in accs, in order) and feeds each answer
// back to p; it returns the messages p sent in reply.
func exchange(p *VoterProposer, accs map[string]*VoterAcceptor, msgs []VoterMsg, now time.Time) []VoterMsg {
	var out []VoterMsg
	for _, m := range msgs {
		a := accs[m.To]
		if a == nil {
			continue
		}
		ans, err := a.Handle(m, now)
		if m.Kind == VoterCommit {
			continue
		}
		out = append(out, p.Handle(m.To, ans, err, now)...)
	}
	return out
}

func tos(msgs []VoterMsg) (kinds []VoterMsgKind, to []string) {
	for _, m := range msgs {
		kinds = append(kinds, m.Kind)
		to = append(to, m.To)
	}
	return kinds, to
}

func TestVoterProposerCommits(t *testing.T) {
	v1 := mustBootstrap(t, "a", "b", "c")
	accs := newTestAcceptors(t, v1, "a", "b", "c")
	ch := VoterChange{VoterAdd, "d"}
	p, err := NewVoterProposer(testVoterConfig(1), "a", v1, ch)
	if err != nil {
		t.Fatal(err)
	}
	prep := p.Start(t0)
	if k, to := tos(prep); !slices.Equal(to, []string{"a", "b", "c"}) || k[0] != VoterPrepare {
		t.Fatalf("start sent %v to %v", k, to)
	}
	if p.Start(t0) != nil {
		t.Fatal("second Start sent again")
	}
	// Only a and b answer: a majority.
	acc := exchange(p, accs, prep[:2], t0)
	if k, to := tos(acc); !slices.Equal(to, []string{"a", "b", "c"}) || k[0] != VoterAccept || acc[0].Change != ch {
		t.Fatalf("phase 2 sent %v to %v", k, to)
	}
	// c's late promise changes nothing.
	if out := exchange(p, accs, prep[2:], t0); out != nil {
		t.Fatalf("late promise sent %v", out)
	}
	commits := exchange(p, accs, acc[1:], t0)
	r, done := p.Result()
	if !done || !r.Known || !r.Own || r.Chosen != ch || r.Set.Version != 2 || !r.Set.Contains("d") {
		t.Fatalf("result %+v done %v", r, done)
	}
	if k, to := tos(commits); !slices.Equal(to, []string{"a", "b", "c", "d"}) || k[0] != VoterCommit {
		t.Fatalf("commit sent %v to %v", k, to)
	}
	exchange(p, accs, commits, t0)
	for n, a := range accs {
		if !a.Set().Equal(r.Set) {
			t.Fatalf("%s has %v after the commit", n, a.Set())
		}
	}
	if p.Tick(t0.Add(time.Hour)) != nil || !p.NextDeadline().IsZero() {
		t.Fatal("an ended proposer still works")
	}
}

// A proposer whose majority reports an accepted change proposes that one, not its own.
func TestVoterProposerAdoptsAcceptedChange(t *testing.T) {
	v1 := mustBootstrap(t, "a", "b", "c")
	accs := newTestAcceptors(t, v1, "a", "b", "c")
	rm := VoterChange{VoterRemove, "c"}
	if _, err := accs["b"].Accept(v1, Ballot{1, "0"}, rm, t0); err != nil {
		t.Fatal(err)
	}
	p, _ := NewVoterProposer(testVoterConfig(1), "a", v1, VoterChange{VoterAdd, "d"})
	msgs := p.Start(t0)
	for !func() bool { _, done := p.Result(); return done }() {
		msgs = exchange(p, accs, msgs, t0)
		if len(msgs) == 0 {
			t.Fatal("stalled")
		}
	}
	r, _ := p.Result()
	if !r.Known || r.Own || r.Chosen != rm || r.Set.Contains("c") {
		t.Fatalf("result %+v, want the accepted %v chosen", r, rm)
	}
}

func TestVoterProposerCatchesUp(t *testing.T) {
	v1 := mustBootstrap(t, "a", "b", "c")
	ch := VoterChange{VoterAdd, "d"}
	v2, _ := v1.Apply(ch)
	v3, _ := v2.Apply(VoterChange{VoterAdd, "e"})
	tests := []struct {
		name  string
		newer VoterSet
		own   VoterChange
		known bool
		isOwn bool
	}{
		{"own change chosen", v2, ch, true, true},
		{"other change chosen", v2, VoterChange{VoterRemove, "b"}, true, false},
		{"skipped past", v3, ch, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			accs := newTestAcceptors(t, v1, "a", "b", "c")
			accs["b"], _ = NewVoterAcceptor(DefaultConfig(), VoterAcceptorState{Set: tt.newer}, time.Time{})
			p, _ := NewVoterProposer(testVoterConfig(1), "a", v1, tt.own)
			out := exchange(p, accs, p.Start(t0)[1:2], t0) // b answers first
			r, done := p.Result()
			if out != nil || !done || !r.Set.Equal(tt.newer) || r.Known != tt.known || r.Own != tt.isOwn {
				t.Fatalf("result %+v done %v sent %v", r, done, out)
			}
			if tt.known && r.Chosen != ch {
				t.Fatalf("chosen %v, want %v", r.Chosen, ch)
			}
		})
	}
}

func TestVoterProposerRetries(t *testing.T) {
	v1 := mustBootstrap(t, "a", "b", "c")
	accs := newTestAcceptors(t, v1, "a", "b", "c")
	cfg := testVoterConfig(2)
	p, _ := NewVoterProposer(cfg, "a", v1, VoterChange{VoterAdd, "d"})
	prep := p.Start(t0)
	exchange(p, accs, prep[:1], t0) // only a's promise arrives
	if got := p.Tick(t0.Add(cfg.VoterRetry - 1)); got != nil {
		t.Fatalf("tick before the deadline sent %v", got)
	}
	if !p.NextDeadline().Equal(t0.Add(cfg.VoterRetry)) {
		t.Fatalf("next deadline %v", p.NextDeadline())
	}
	again := p.Tick(t0.Add(cfg.VoterRetry))
	if _, to := tos(again); !slices.Equal(to, []string{"b", "c"}) || again[0].Ballot != p.Ballot() || p.Ballot().Round != 1 || !strings.HasPrefix(p.Ballot().Proposer, "a#") {
		t.Fatalf("resent %v", again)
	}

	// b promises a higher ballot to someone else: a backs off, then goes above it.
	now := t0.Add(cfg.VoterRetry)
	if _, err := accs["b"].Prepare(v1, Ballot{7, "z"}, now); err != nil {
		t.Fatal(err)
	}
	if out := exchange(p, accs, again[:1], now); out != nil {
		t.Fatalf("preempted proposer sent %v", out)
	}
	dl := p.NextDeadline()
	if dl.Before(now) || !dl.Before(now.Add(2*cfg.VoterRetry)) {
		t.Fatalf("backoff until %v, want within 2 retries of %v", dl, now)
	}
	next := p.Tick(dl)
	if len(next) != 3 || next[0].Kind != VoterPrepare || next[0].Ballot.Round != 8 {
		t.Fatalf("after backoff sent %v", next)
	}
	// A late refusal of the old ballot changes nothing.
	if out := p.Handle("c", VoterAnswer{}, &VoterRefusedError{Err: ErrBallot, Promised: Ballot{1, "a"}}, dl); out != nil {
		t.Fatal(out)
	}
	// Settling acceptors are asked again at the next tick.
	if out := p.Handle("c", VoterAnswer{}, &VoterRefusedError{Err: ErrSettling, Wait: time.Second}, dl); out != nil {
		t.Fatal(out)
	}
	msgs := next
	for range 10 {
		if _, done := p.Result(); done {
			break
		}
		msgs = exchange(p, accs, msgs, dl)
	}
	if r, done := p.Result(); !done || !r.Own || r.Set.Version != 2 {
		t.Fatalf("result %+v done %v", r, done)
	}
}

func TestNewVoterProposerRefuses(t *testing.T) {
	v1 := mustBootstrap(t, "a", "b")
	tests := []struct {
		name   string
		cfg    Config
		pname  string
		base   VoterSet
		change VoterChange
		err    error
	}{
		{"bad config", Config{}, "a", v1, VoterChange{VoterAdd, "c"}, ErrBadConfig},
		{"no name", DefaultConfig(), "", v1, VoterChange{VoterAdd, "c"}, ErrBadVoterChange},
		{"no base", DefaultConfig(), "a", VoterSet{}, VoterChange{VoterAdd, "c"}, ErrBadVoterSet},
		{"change does not apply", DefaultConfig(), "a", v1, VoterChange{VoterRemove, "c"}, ErrBadVoterChange},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewVoterProposer(tt.cfg, tt.pname, tt.base, tt.change); !errors.Is(err, tt.err) {
				t.Fatalf("err %v, want %v", err, tt.err)
			}
		})
	}
}

// Answers that do not belong to the current ballot and phase change nothing.
func TestVoterProposerIgnores(t *testing.T) {
	v1 := mustBootstrap(t, "a", "b", "c")
	p, _ := NewVoterProposer(testVoterConfig(3), "a", v1, VoterChange{VoterAdd, "d"})
	if p.Tick(t0.Add(time.Hour)) != nil || !p.NextDeadline().IsZero() {
		t.Fatal("a proposer worked before Start")
	}
	p.Start(t0)
	b := p.Ballot()
	ok := VoterAnswer{Kind: VoterPrepare, Version: 1, Ballot: b}
	for name, h := range map[string]func() []VoterMsg{
		"non-member": func() []VoterMsg { return p.Handle("z", ok, nil, t0) },
		"other ballot": func() []VoterMsg {
			return p.Handle("b", VoterAnswer{Kind: VoterPrepare, Version: 1, Ballot: Ballot{9, "q"}}, nil, t0)
		},
		"other version": func() []VoterMsg {
			return p.Handle("b", VoterAnswer{Kind: VoterPrepare, Version: 7, Ballot: b}, nil, t0)
		},
		"wrong phase": func() []VoterMsg {
			return p.Handle("b", VoterAnswer{Kind: VoterAccept, Version: 1, Ballot: b}, nil, t0)
		},
		"other cluster": func() []VoterMsg { return p.Handle("b", VoterAnswer{}, &VoterRefusedError{Err: ErrOtherCluster}, t0) },
		"plain error":   func() []VoterMsg { return p.Handle("b", VoterAnswer{}, ErrBadVoterMsg, t0) },
		"older stale set": func() []VoterMsg {
			return p.Handle("b", VoterAnswer{}, &VoterRefusedError{Err: ErrStaleVersion, Set: v1}, t0)
		},
		"duplicate": func() []VoterMsg { p.Handle("a", ok, nil, t0); return p.Handle("a", ok, nil, t0) },
	} {
		if out := h(); out != nil {
			t.Fatalf("%s: sent %v", name, out)
		}
		if _, done := p.Result(); done {
			t.Fatalf("%s: ended the proposer", name)
		}
	}
	// One more promise makes the majority.
	if out := p.Handle("c", ok, nil, t0); len(out) != 3 || out[0].Kind != VoterAccept {
		t.Fatalf("majority sent %v", out)
	}
}
