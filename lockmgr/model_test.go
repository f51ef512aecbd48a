package lockmgr

// The lock model test of issue #6: owners with disagreeing ring views and voter sets,
// acceptors behind a scripted network, per-node drifting clocks, restarts, disk loss and
// joins during a partition, checked in true time for overlapping leases and token
// regressions. The simulator is in model_sim_test.go, the clients in model_client_test.go,
// the checker in model_check_test.go.
//
// What the model runs, and where it departs from the agent:
//   - Owners follow agent/lock_owner.go (claim rounds timed from send, epochs above every
//     epoch known and at least the clock epoch, retry once above a stale refusal, batched
//     renewals every lock-delay/6, grants only under a claim that covers the lease by the
//     drift margin), routing follows lock_route.go (serve a key the ring gives you or a live
//     claim; else forward, at most 3 hops), handoffs follow lock_handoff.go.
//   - Acceptors follow agent/lock_acceptor.go (epochs synced before answering, quiet for a
//     lock-delay after every start) plus the voter-set check of lockmgr/doc.go "What the
//     agent does with voters" (CheckVersion before every promise; the owner counts only
//     members of the set it asked under), as agent/voters.go and lock_owner.go do.
//   - A handed-off key's waiters are cancelled last to first and the key exported after, as
//     agent.handOff does (the model found the old order unsafe:
//     TestLockModelOldHandoffOrderIsCaught).
//   - Simplified: clients run on true time; the bootstrap voters form version 1 at start
//     (no --bootstrap-expect); a new owner takes a handoff without the settle wait; a
//     leaving peer leaves without handing its keys over (they lapse, as after a crash).

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// modelVariant is the protocol the model runs: the sound one, or one with a rule broken on
// purpose, to prove the checker catches what it is meant to.
type modelVariant uint8

const (
	variantSound modelVariant = iota
	// variantMinorityQuorum: an owner counts its own promise as a majority (agent.brokenQuorum).
	variantMinorityQuorum
	// variantNoQuiet: a restarted acceptor forgets its epochs and promises at once, and
	// epochs do not come from the hybrid clock.
	variantNoQuiet
	// variantNoDriftMargin: DriftMargin 0 while the clocks drift by 25 %, far beyond A1 of
	// docs/locks.md: an owner's fast clock ends leases before their clients do, and an
	// owner's slow clock outlasts its acceptors' promises.
	variantNoDriftMargin
	// variantVoterNoMajority: a voter change is committed by its proposer alone, without a
	// majority of the current voters (the rule of DESIGN.md step 4 broken).
	variantVoterNoMajority
)

func (v modelVariant) String() string {
	return [...]string{"sound", "minority-quorum", "no-quiet", "no-drift-margin", "voter-no-majority"}[v]
}

// modelParams is one run: the seed picks the clocks, the network's losses and delays, the
// clients' choices and the fault times; the scenario picks the fault script.
type modelParams struct {
	seed     uint64
	scenario modelScenario
	variant  modelVariant
	duration time.Duration
	// oldHandoffOrder exports a handed-off key, then cancels its waiters first to last:
	// agent.handOff's order before the model found that it can grant after the export
	// (TestLockModelOldHandoffOrderIsCaught).
	oldHandoffOrder bool
	// scripted: no random clients and no ring churn; the scenario's script does it all.
	scripted bool
}

// modelScenario is a fault script over nodes peers, the first voters of which form the
// bootstrap voter set; the rest join when the script starts them.
type modelScenario struct {
	name   string
	nodes  int
	voters int
	script func(s *sim, rng *rand.Rand)
}

// within returns a random true time from lo to hi.
func within(rng *rand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(rng.Int64N(int64(hi-lo)+1))
}

// partition cuts every link between the groups, both ways.
func (s *sim) partition(groups ...[]int) {
	s.tracef("partition %v", groups)
	for i, g := range groups {
		for j, h := range groups {
			if i == j {
				continue
			}
			for _, a := range g {
				for _, b := range h {
					s.cut[[2]int{a, b}] = true
				}
			}
		}
	}
}

func (s *sim) heal() {
	s.tracef("heal")
	clear(s.cut)
}

func (s *sim) setLink(a, b int, cut bool) {
	s.cut[[2]int{a, b}], s.cut[[2]int{b, a}] = cut, cut
}

// join starts node i for the first time (a fresh peer, no voter set) and has each of by
// propose adding it, as a voter that sees a new role=peer member does.
func (s *sim) join(i int, by ...int) {
	n := s.nodes[i]
	if n.up || n.left {
		return
	}
	n.start(true)
	for _, b := range by {
		s.nodes[b].propose(VoterChange{Op: VoterAdd, Member: n.name})
	}
}

// modelScenarios are the fault scripts; every run also has message loss, slow messages,
// churning ring views on every node and clients on every key.
var modelScenarios = []modelScenario{
	{"halves", 4, 4, func(s *sim, rng *rand.Rand) {
		t := within(rng, 16*time.Second, 30*time.Second)
		s.at(t, func() { s.partition([]int{0, 1}, []int{2, 3}) })
		s.at(t+within(rng, 5*time.Second, 25*time.Second), s.heal)
	}},
	{"minority", 5, 5, func(s *sim, rng *rand.Rand) {
		p := rng.Perm(5)
		t := within(rng, 16*time.Second, 30*time.Second)
		s.at(t, func() { s.partition(p[:2], p[2:]) })
		s.at(t+within(rng, 10*time.Second, 30*time.Second), s.heal)
	}},
	{"bridge", 3, 3, func(s *sim, rng *rand.Rand) {
		// a and c both see b, but not each other.
		p := rng.Perm(3)
		t := within(rng, 10*time.Second, 25*time.Second)
		s.at(t, func() { s.tracef("bridge through n%d", p[1]); s.setLink(p[0], p[2], true) })
		s.at(t+within(rng, 15*time.Second, 40*time.Second), s.heal)
	}},
	{"bridge5", 5, 5, func(s *sim, rng *rand.Rand) {
		p := rng.Perm(5)
		t := within(rng, 10*time.Second, 25*time.Second)
		s.at(t, func() {
			s.tracef("bridge through n%d", p[2])
			for _, a := range p[:2] {
				for _, c := range p[3:] {
					s.setLink(a, c, true)
				}
			}
		})
		s.at(t+within(rng, 15*time.Second, 40*time.Second), s.heal)
	}},
	{"flapping", 3, 3, func(s *sim, rng *rand.Rand) {
		a, b := rng.IntN(3), 0
		for b = rng.IntN(3); b == a; b = rng.IntN(3) {
		}
		cut := false
		for t := 15 * time.Second; t < 70*time.Second; t += within(rng, 200*time.Millisecond, 3*time.Second) {
			cut = !cut
			s.at(t, func() { s.tracef("link n%d-n%d cut %v", a, b, cut); s.setLink(a, b, cut) })
		}
	}},
	{"one-way", 4, 4, func(s *sim, rng *rand.Rand) {
		for t := 15 * time.Second; t < 70*time.Second; t += within(rng, 3*time.Second, 15*time.Second) {
			a, b := rng.IntN(4), rng.IntN(4)
			if a != b {
				s.at(t, func() { s.tracef("cut n%d→n%d", a, b); s.heal(); s.cut[[2]int{a, b}] = true })
			}
		}
	}},
	{"isolated-owner", 5, 5, func(s *sim, rng *rand.Rand) {
		// The owner that granted last is cut off from every peer (not from its clients),
		// as in the paused-or-partitioned owner of Kleppmann's Redlock critique.
		for t := 18 * time.Second; t < 75*time.Second; t += within(rng, 15*time.Second, 30*time.Second) {
			d := within(rng, 8*time.Second, 25*time.Second)
			s.at(t, func() {
				if n := s.rec.lastOwner; n != nil {
					others := slices.DeleteFunc([]int{0, 1, 2, 3, 4}, func(i int) bool { return i == n.idx })
					s.heal()
					s.partition([]int{n.idx}, others)
					s.after(d, s.heal)
				}
			})
		}
	}},
	{"owner-restart", 3, 3, func(s *sim, rng *rand.Rand) {
		// The owner that granted last restarts within its lease's TTL.
		for t := 20 * time.Second; t < 75*time.Second; t += within(rng, 4*time.Second, 12*time.Second) {
			down := within(rng, 0, 1500*time.Millisecond)
			s.at(t, func() {
				if n := s.rec.lastOwner; n != nil {
					n.restart(down, false)
				}
			})
		}
	}},
	{"acceptor-restart", 5, 5, func(s *sim, rng *rand.Rand) {
		for t := 18 * time.Second; t < 75*time.Second; t += within(rng, 3*time.Second, 10*time.Second) {
			i, down := rng.IntN(5), within(rng, 0, 5*time.Second)
			s.at(t, func() { s.nodes[i].restart(down, false) })
		}
	}},
	{"disk-loss", 3, 3, func(s *sim, rng *rand.Rand) {
		// At most one voter loses its disk between two promise rounds of a key (A6).
		for t := 18 * time.Second; t < 75*time.Second; t += within(rng, 16*time.Second, 25*time.Second) {
			i, down := rng.IntN(3), within(rng, 0, 2*time.Second)
			s.at(t, func() { s.nodes[i].restart(down, true) })
		}
	}},
	{"join-partition", 5, 3, func(s *sim, rng *rand.Rand) {
		// n0 n3 n4 | n1 n2: the new peers join n0's side, whose voters propose them; n1 and
		// n2 propose them too. Only a majority of the current set can admit anyone.
		t := within(rng, 14*time.Second, 25*time.Second)
		s.at(t, func() { s.partition([]int{0, 3, 4}, []int{1, 2}) })
		s.at(t+time.Second, func() { s.join(3, 0, 1); s.join(4, 0) })
		s.at(t+within(rng, 3*time.Second, 8*time.Second), func() { s.nodes[2].propose(VoterChange{Op: VoterAdd, Member: "n4"}) })
		s.at(t+within(rng, 15*time.Second, 40*time.Second), s.heal)
	}},
	{"split-removals", 4, 4, func(s *sim, rng *rand.Rand) {
		// n0 n1 | n2 n3, and an operator on each side force-removes a peer of the other side
		// (it looks failed from there). Neither side holds a majority of the four voters, so
		// neither removal may be committed, and neither side may grant.
		t := within(rng, 16*time.Second, 25*time.Second)
		s.at(t, func() { s.partition([]int{0, 1}, []int{2, 3}) })
		s.at(t+within(rng, time.Second, 4*time.Second), func() { s.nodes[0].propose(VoterChange{Op: VoterRemove, Member: "n2"}) })
		s.at(t+within(rng, time.Second, 4*time.Second), func() { s.nodes[3].propose(VoterChange{Op: VoterRemove, Member: "n1"}) })
		s.at(t+within(rng, 30*time.Second, 45*time.Second), s.heal)
	}},
	{"voter-churn", 5, 4, func(s *sim, rng *rand.Rand) {
		// Add n4, then a voter leaves (removes itself), then the left one is force-removed
		// from elsewhere if still there, while owners race and a link is cut.
		s.at(within(rng, 14*time.Second, 20*time.Second), func() { s.join(4, 1+rng.IntN(3)) })
		leaver := rng.IntN(4)
		s.at(within(rng, 22*time.Second, 35*time.Second), func() {
			s.nodes[leaver].propose(VoterChange{Op: VoterRemove, Member: s.nodes[leaver].name})
		})
		a, b := rng.IntN(5), rng.IntN(5)
		t := within(rng, 20*time.Second, 40*time.Second)
		s.at(t, func() { s.setLink(a, b, a != b) })
		s.at(t+within(rng, 5*time.Second, 20*time.Second), s.heal)
		s.at(within(rng, 40*time.Second, 60*time.Second), func() {
			if other := (leaver + 1) % 4; !s.nodes[leaver].left {
				s.nodes[other].propose(VoterChange{Op: VoterRemove, Member: s.nodes[leaver].name})
			}
		})
	}},
	{"mixed", 5, 4, func(s *sim, rng *rand.Rand) {
		s.at(within(rng, 14*time.Second, 30*time.Second), func() { s.join(4, rng.IntN(4)) })
		for t := 16 * time.Second; t < 75*time.Second; t += within(rng, 2*time.Second, 8*time.Second) {
			switch k := rng.IntN(5); k {
			case 0:
				p := rng.Perm(5)
				s.at(t, func() { s.heal(); s.partition(p[:2], p[2:]) })
			case 1:
				a, b := rng.IntN(5), rng.IntN(5)
				s.at(t, func() { s.cut[[2]int{a, b}] = a != b })
			case 2:
				s.at(t, s.heal)
			case 3:
				i, down := rng.IntN(5), within(rng, 0, 3*time.Second)
				s.at(t, func() { s.nodes[i].restart(down, false) })
			case 4:
				s.at(t, func() {
					if n := s.rec.lastOwner; n != nil {
						n.restart(within(rng, 0, time.Second), false)
					}
				})
			}
		}
	}},
}

// newSim builds a run: clocks within the drift bound, the bootstrap voters up, the others
// waiting to join, clients and the background processes scheduled.
func newSim(p modelParams) *sim {
	rng := rand.New(rand.NewPCG(p.seed, uint64(len(p.scenario.name))))
	cfg := DefaultConfig()
	cfg.TTLSlack = cfg.LockDelay / 20 // as the agent sets it
	cfg.Rand = rand.NewChaCha8([32]byte{byte(p.seed), byte(p.seed >> 8), byte(p.seed >> 16), 7})
	// A1: a (LockDelay − DriftMargin) span of one clock is not longer in true time than a
	// LockDelay of another: (LD−DM)/(1−d) ≤ LD/(1+d), so d ≤ DM/(2·LD−DM) (7.1 % with the
	// defaults). The clocks use up to 90 % of that.
	maxDrift := 0.9 * float64(cfg.DriftMargin) / float64(2*cfg.LockDelay-cfg.DriftMargin)
	if p.variant == variantNoDriftMargin {
		cfg.DriftMargin = 0
		maxDrift = 0.25
	}
	s := &sim{p: p, cfg: cfg, rng: rng, byName: map[string]*simNode{}, cut: map[[2]int]bool{},
		drop: 0.01 + 0.04*rng.Float64(), truth: map[string]int{}, keys: []string{"k0", "k1", "k2", "k3", "k4"}}
	s.rec = &leaseRecorder{s: s, byID: map[LeaseID]*leaseRec{}, last: map[string]int64{}, lastBy: map[string]string{}}
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var members []string
	for i := range p.scenario.nodes {
		// A2: offsets (constant part plus wave) differ by at most 2·(0.5 s + 1.2 s), below
		// lock-delay/2 − drift margin − 1 s.
		clock := simClock{base: base, offset: within(rng, -500*time.Millisecond, 500*time.Millisecond),
			amp: within(rng, 200*time.Millisecond, 1200*time.Millisecond), rate: maxDrift * rng.Float64(),
			phase: within(rng, 0, time.Minute)}
		if rng.IntN(2) == 0 {
			clock.rate = maxDrift
		}
		if p.variant == variantNoDriftMargin {
			clock.amp = within(rng, 2*time.Second, 6*time.Second)
		}
		n := &simNode{s: s, idx: i, name: fmt.Sprintf("n%d", i), view: map[string]int{}, clock: clock,
			disk: simDisk{highest: map[string]uint32{}}}
		s.nodes = append(s.nodes, n)
		s.byName[n.name] = n
		if i < p.scenario.voters {
			members = append(members, n.name)
		}
	}
	boot, err := BootstrapSet(members)
	if err != nil {
		panic(err)
	}
	for i := range p.scenario.voters {
		s.nodes[i].disk.voters = VoterAcceptorState{Set: boot}
		s.nodes[i].start(false)
	}
	for _, k := range s.keys {
		s.truth[k] = rng.IntN(p.scenario.voters)
		for _, n := range s.nodes {
			n.view[k] = s.truth[k]
		}
	}
	for i := range 6 {
		c := &simClient{s: s, name: fmt.Sprintf("c%d", i), view: maps.Clone(s.truth), scripted: p.scripted}
		s.clients = append(s.clients, c)
		if !p.scripted {
			s.after(within(rng, 10*time.Second, 15*time.Second), c.step)
		}
	}
	if !p.scripted {
		s.at(0, s.churnViews)
	}
	p.scenario.script(s, rng)
	return s
}

// churnViews moves keys on the ring and lets each node's view lag or disagree: some nodes
// see the new owner, others a random one, others keep the old one.
func (s *sim) churnViews() {
	key := s.keys[s.rng.IntN(len(s.keys))]
	if s.rng.IntN(4) == 0 {
		s.truth[key] = s.rng.IntN(len(s.nodes))
	}
	for _, n := range s.nodes {
		switch s.rng.IntN(3) {
		case 0:
			n.view[key] = s.truth[key]
		case 1:
			if s.rng.IntN(3) == 0 {
				n.view[key] = s.rng.IntN(len(s.nodes))
			}
		}
	}
	s.after(within(s.rng, 300*time.Millisecond, 4*time.Second), s.churnViews)
}

// runModel runs one seed and returns its violations and how many leases it granted.
func runModel(p modelParams) (bad []modelViolation, st modelStats) {
	s := newSim(p)
	s.run()
	st.grants, st.handovers, st.handoffs = len(s.rec.all), s.rec.handovers, s.handoffs
	for _, n := range s.nodes {
		if n.vacc != nil {
			st.version = max(st.version, n.vacc.Set().Version)
		}
	}
	return s.rec.check(), st
}

// modelStats says how much a run exercised: leases granted, grants by another owner than the
// key's previous one, and the newest voter-set version any peer reached.
type modelStats struct {
	grants, handovers, handoffs int
	version                     uint64
}

// traceModel runs one seed again with the trace on until a violation's time and returns the
// trace's last lines.
func traceModel(p modelParams, v modelViolation, lines int) string {
	p.duration = v.at
	s := newSim(p)
	s.tracing = true
	s.run()
	tr := s.trace
	if len(tr) > lines {
		tr = tr[len(tr)-lines:]
	}
	return strings.Join(tr, "\n")
}

// modelSeeds is how many seeds TestLockModel runs: 60 per scenario, 8 with -short.
func modelSeeds() int {
	if testing.Short() {
		return 8 * len(modelScenarios)
	}
	return 60 * len(modelScenarios)
}

const modelDuration = 100 * time.Second

// TestLockModel runs every scenario over many seeds (each seed picks one scenario in turn)
// and checks that no two leases on one key overlap in true time and that tokens per key
// strictly increase in grant order.
func TestLockModel(t *testing.T) {
	stats := map[string]modelStats{}
	for seed := range uint64(modelSeeds()) {
		sc := modelScenarios[int(seed)%len(modelScenarios)]
		p := modelParams{seed: seed, scenario: sc, variant: variantSound, duration: modelDuration}
		bad, st := runModel(p)
		sum := stats[sc.name]
		sum.grants += st.grants
		sum.handovers += st.handovers
		sum.handoffs += st.handoffs
		sum.version = max(sum.version, st.version)
		stats[sc.name] = sum
		if len(bad) > 0 {
			t.Errorf("seed %d, scenario %s: %d violations, first: %s\ntrace (last 60 events):\n%s",
				seed, sc.name, len(bad), bad[0], traceModel(p, bad[0], 60))
		}
	}
	for _, sc := range modelScenarios {
		if st := stats[sc.name]; st.grants == 0 || st.handovers == 0 {
			t.Errorf("scenario %s: %d grants, %d by a new owner: the model exercises too little", sc.name, st.grants, st.handovers)
		}
		t.Logf("%-16s %5d grants, %4d by another owner than the last, %4d handoffs, voter-set version up to %d",
			sc.name, stats[sc.name].grants, stats[sc.name].handovers, stats[sc.name].handoffs, stats[sc.name].version)
	}
}

func scenarioNamed(name string) modelScenario {
	for _, sc := range modelScenarios {
		if sc.name == name {
			return sc
		}
	}
	panic("no scenario " + name)
}

// TestLockModelHasTeeth runs the model with one protocol rule broken and expects the checker
// to catch it for at least one seed.
func TestLockModelHasTeeth(t *testing.T) {
	for _, tc := range []struct {
		variant   modelVariant
		scenarios []string
	}{
		{variantMinorityQuorum, []string{"halves", "minority", "bridge"}},
		{variantNoQuiet, []string{"disk-loss", "acceptor-restart", "owner-restart"}},
		{variantNoDriftMargin, []string{"halves", "minority", "mixed"}},
		{variantVoterNoMajority, []string{"split-removals"}},
	} {
		t.Run(tc.variant.String(), func(t *testing.T) {
			for seed := range uint64(60) {
				p := modelParams{seed: seed, scenario: scenarioNamed(tc.scenarios[int(seed)%len(tc.scenarios)]),
					variant: tc.variant, duration: modelDuration}
				if bad, _ := runModel(p); len(bad) > 0 {
					t.Logf("caught at seed %d, scenario %s: %s", seed, p.scenario.name, bad[0])
					return
				}
			}
			t.Errorf("the checker caught no violation of the %v variant in 60 seeds", tc.variant)
		})
	}
}

// TestLockModelHandoffWaiters runs handoffWaiters with the model's handoff (waiters cancelled
// last to first) over 20 seeds: the old owner grants nothing after the export.
func TestLockModelHandoffWaiters(t *testing.T) {
	for seed := range uint64(20) {
		p := modelParams{seed: seed, scenario: handoffWaiters, duration: 40 * time.Second, scripted: true}
		if bad, _ := runModel(p); len(bad) > 0 {
			t.Errorf("seed %d: %s\ntrace:\n%s", seed, bad[0], traceModel(p, bad[0], 40))
		}
	}
}

// handoffWaiters sets up the case of TestLockModelOldHandoffOrderIsCaught: n0 owns
// k0; c0 holds it briefly, c1 (13 s) and c2 (5 s) queue behind; c0 releases, so k0 is free
// while c1's lease does not fit the ownership until the next renewal; then every ring moves
// k0 to n1 and n0 hands it over. c3 then asks n1 for it.
var handoffWaiters = modelScenario{"handoff-waiters", 3, 3, func(s *sim, rng *rand.Rand) {
	c := s.clients
	s.at(0, func() {
		for _, n := range s.nodes {
			n.view["k0"] = 0
		}
	})
	s.at(18*time.Second, func() { c[0].request(0, opAcquire, "k0", 3*time.Second, 0) })
	s.at(18500*time.Millisecond, func() { c[1].request(0, opAcquire, "k0", 13*time.Second, 20*time.Second) })
	s.at(18600*time.Millisecond, func() { c[2].request(0, opAcquire, "k0", 5*time.Second, 20*time.Second) })
	t := within(rng, 19*time.Second, 21*time.Second)
	s.at(t, func() { c[0].request(0, opRelease, "k0", 0, 0) })
	s.at(t+50*time.Millisecond, func() {
		for _, n := range s.nodes {
			n.view["k0"] = 1
		}
	})
	for i := range 8 {
		s.at(t+time.Duration(i+1)*time.Second, func() { c[3].request(1, opAcquire, "k0", 5*time.Second, 0) })
	}
}}

// handoffCancelSeed is a seed whose handoffWaiters run hands k0 over while it is free.
const handoffCancelSeed = 2

// TestLockModelOldHandoffOrderIsCaught keeps the model's finding: agent.handOff used to
// export a key, then cancel its waiters first to last with Table.Cancel; Cancel hands a free
// key to the next waiter whose lease fits, so the old owner granted after the export, and the
// new owner, importing the older state, granted the same token again beside it. It needs a
// free key whose first waiter's TTL does not fit the ownership lease (it waits for a renewal)
// while a later one's does. The agent now cancels last to first and exports after. The test
// checks that the old order grants after the export and the new one does not, and that the
// model catches the old order (its teeth for handoffs).
func TestLockModelOldHandoffOrderIsCaught(t *testing.T) {
	queue := func(t *testing.T) (*Table, time.Time) {
		tab := newTestTable(t, 1)
		now := at(0)
		tab.SetEpoch("k", 1)
		tab.SetOwnedUntil("k", now.Add(10*time.Second), now)
		long, err := tab.Acquire("k", "long", 12*time.Second, time.Minute, now) // 12 s + 2 s margin > 10 s: waits
		if err != nil || long.Granted {
			t.Fatalf("long: %+v, %v; want a ticket", long, err)
		}
		short, err := tab.Acquire("k", "short", 5*time.Second, time.Minute, now) // behind it
		if err != nil || short.Granted {
			t.Fatalf("short: %+v, %v; want a ticket", short, err)
		}
		return tab, now
	}
	t.Run("old order grants after the export", func(t *testing.T) {
		tab, now := queue(t)
		st, _ := tab.Export("k", now)
		for _, w := range st.Waiters {
			tab.Cancel(w.Ticket, now)
		}
		granted := false
		for _, e := range tab.Tick(now) {
			granted = granted || e.Kind == WaiterGranted
		}
		if !granted {
			t.Fatal("first-to-last cancel after the export granted nothing; the case no longer shows the old order's fault")
		}
	})
	t.Run("agent order grants nothing the export misses", func(t *testing.T) {
		tab, now := queue(t)
		queued, _ := tab.Export("k", now)
		for i := len(queued.Waiters) - 1; i >= 0; i-- {
			tab.Cancel(queued.Waiters[i].Ticket, now)
		}
		st, _ := tab.Export("k", now)
		for _, e := range tab.Tick(now) {
			if e.Kind == WaiterGranted && (st.Held == nil || st.Held.Lease.ID != e.Lease.ID) {
				t.Errorf("granted token %d to %s, which the export (held %v, sequence %d) does not carry", e.Lease.Token, e.Holder, st.Held != nil, st.Sequence)
			}
		}
	})
	t.Run("model catches the old order", func(t *testing.T) {
		p := modelParams{seed: handoffCancelSeed, scenario: handoffWaiters, duration: 40 * time.Second, scripted: true, oldHandoffOrder: true}
		if bad, _ := runModel(p); len(bad) == 0 {
			t.Errorf("seed %d, scenario %s: the old handoff order passed the checker", p.seed, p.scenario.name)
		}
	})
}
