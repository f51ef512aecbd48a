package lockmgr

// The simulator of the lock model test (model_test.go): a deterministic discrete-event loop
// in true time with per-node drifting clocks, a scripted network and peers that drive
// Table, Acceptor, VoterAcceptor and VoterProposer the way agent/lock_owner.go and
// agent/lock_acceptor.go do. No goroutines, no sleeps, no wall clock.

import (
	"container/heap"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// simEvent is one scheduled action; events at the same true time run in schedule order.
type simEvent struct {
	at  time.Duration
	seq uint64
	fn  func()
}

type simQueue []simEvent

func (q simQueue) Len() int { return len(q) }
func (q simQueue) Less(i, j int) bool {
	return q[i].at < q[j].at || q[i].at == q[j].at && q[i].seq < q[j].seq
}
func (q simQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *simQueue) Push(x any)   { *q = append(*q, x.(simEvent)) }
func (q *simQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// simClock is a node's clock: base + offset + t + a triangle wave of amplitude amp whose
// slope is ±rate, so the clock runs at 1±rate of true time while its offset from every other
// clock stays bounded (A1 and A2 of docs/locks.md at once).
type simClock struct {
	base   time.Time
	offset time.Duration
	amp    time.Duration
	rate   float64
	phase  time.Duration
}

func (c simClock) at(t time.Duration) time.Time {
	r := c.base.Add(c.offset + t)
	if c.amp <= 0 || c.rate <= 0 {
		return r
	}
	period := time.Duration(4 * float64(c.amp) / c.rate)
	u := (t + c.phase) % period
	var w time.Duration
	if u < period/2 {
		w = -c.amp + time.Duration(c.rate*float64(u))
	} else {
		w = c.amp - time.Duration(c.rate*float64(u-period/2))
	}
	return r.Add(w)
}

// simEpochBase and simEpochAt mirror agent.epochBase and agent.epochAt: the clock epoch is
// whole seconds since 2025-01-01 UTC, at least 1.
var simEpochBase = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func simEpochAt(t time.Time) uint32 {
	s := int64(t.Sub(simEpochBase) / time.Second)
	return uint32(min(max(s, 1), MaxEpoch))
}

// sim is one run of the model: the event queue, the network and the peers.
type sim struct {
	p        modelParams
	cfg      Config
	rng      *rand.Rand
	now      time.Duration // true time
	q        simQueue
	seq      uint64
	nodes    []*simNode
	byName   map[string]*simNode
	cut      map[[2]int]bool // directed links that drop everything
	drop     float64         // chance any one message is lost
	rec      *leaseRecorder
	clients  []*simClient
	keys     []string
	truth    map[string]int // the ring owner the views drift towards
	tracing  bool
	handoffs int // keys taken over by a transfer round
	trace    []string
}

func (s *sim) after(d time.Duration, fn func()) {
	s.seq++
	heap.Push(&s.q, simEvent{at: s.now + d, seq: s.seq, fn: fn})
}

func (s *sim) at(t time.Duration, fn func()) { s.after(max(t-s.now, 0), fn) }

func (s *sim) run() {
	for s.q.Len() > 0 {
		e := heap.Pop(&s.q).(simEvent)
		if e.at > s.p.duration {
			return
		}
		s.now = e.at
		e.fn()
	}
}

func (s *sim) tracef(format string, a ...any) {
	if s.tracing {
		s.trace = append(s.trace, fmt.Sprintf("%9.3fs ", s.now.Seconds())+fmt.Sprintf(format, a...))
	}
}

// delay is one message's transit time: mostly a few ms, sometimes most of a second.
func (s *sim) delay() time.Duration {
	d := time.Duration(1+s.rng.IntN(20)) * time.Millisecond
	if s.rng.IntN(25) == 0 {
		d += time.Duration(s.rng.IntN(900)) * time.Millisecond
	}
	return d
}

// send delivers fn at node to, unless the link from→to is cut at send or delivery time, the
// message is lost, or to is down on arrival. A node's message to itself is a local call.
func (s *sim) send(from, to int, fn func()) {
	if from == to {
		s.after(0, func() {
			if s.nodes[to].up {
				fn()
			}
		})
		return
	}
	if s.cut[[2]int{from, to}] || s.rng.Float64() < s.drop {
		return
	}
	s.after(s.delay(), func() {
		if !s.cut[[2]int{from, to}] && s.nodes[to].up {
			fn()
		}
	})
}

// simNode is one peer: owner side (table, claims, ring view), acceptor side (Acceptor,
// VoterAcceptor, their durable state) and a voter proposer.
type simNode struct {
	s      *sim
	idx    int
	name   string
	up     bool
	left   bool
	life   uint64 // bumped at every restart: owner-side state of an older life is gone
	inc    uint64 // owner incarnation
	clock  simClock
	table  *Table
	acc    *Acceptor
	vacc   *VoterAcceptor
	disk   simDisk
	claims map[string]*simClaim
	view   map[string]int // this node's ring: who owns each key
	wait   map[Ticket]*simReq
	prop   *VoterProposer
	want   VoterChange
	renew  time.Time // next claim renewal, by this node's clock
	quiet  time.Time // the acceptor promises nothing before this
}

// simDisk is what survives a restart unless the disk is lost: the acceptor's highest epochs
// (synced before answering), the voter acceptor's state and the last incarnation.
type simDisk struct {
	highest map[string]uint32
	voters  VoterAcceptorState
	inc     uint64
}

// simClaim mirrors agent's claim: the ownership lease on one key.
type simClaim struct {
	epoch      uint32
	until      time.Time
	round      *simRound
	tried      uint32
	triedUntil time.Time
	lastUsed   time.Time
	moving     int       // handed over to this node index + 1 (0: not moving)
	holdOff    time.Time // agent's noRoundBefore, after a failed handoff
}

func (n *simNode) now() time.Time { return n.s.clock(n) }

func (s *sim) clock(n *simNode) time.Time { return n.clock.at(s.now) }

// start brings the node up: a new incarnation, an empty table, an acceptor restored from
// disk and quiet for a lock-delay (agent.newAcceptorSide), its voter acceptor from disk.
func (n *simNode) start(diskLost bool) {
	s := n.s
	now := n.now()
	if diskLost {
		n.disk = simDisk{highest: map[string]uint32{}}
	}
	// The incarnation is max(last + 1, wall clock in ns), synced before serving (A3).
	n.inc = max(n.disk.inc+1, uint64(now.UnixNano()))
	n.disk.inc = n.inc
	n.life++
	n.up = true
	var err error
	if n.table, err = NewTable(s.cfg); err != nil {
		panic(err)
	}
	if n.acc, err = NewAcceptor(s.cfg); err != nil {
		panic(err)
	}
	if s.p.variant != variantNoQuiet {
		for k, e := range n.disk.highest {
			n.acc.Restore(k, e)
		}
		n.quiet = now.Add(s.cfg.LockDelay)
		n.acc.QuietUntil(n.quiet)
	}
	if n.vacc, err = NewVoterAcceptor(s.cfg, n.disk.voters, now); err != nil {
		panic(err)
	}
	n.claims = map[string]*simClaim{}
	n.wait = map[Ticket]*simReq{}
	n.prop, n.want = nil, VoterChange{}
	n.renew = now.Add(s.cfg.LockDelay / 6)
	s.tracef("%s starts, incarnation %d, disk lost %v, voters %v", n.name, n.inc, diskLost, n.vacc.Set())
	n.tick(n.life)
}

// restart crashes the node now and starts it again after down.
func (n *simNode) restart(down time.Duration, diskLost bool) {
	if !n.up || n.left {
		return
	}
	n.up = false
	n.life++
	n.s.tracef("%s crashes (down %v, disk lost %v)", n.name, down, diskLost)
	n.s.after(down, func() {
		if !n.left {
			n.start(diskLost || n.s.p.variant == variantNoQuiet)
		}
	})
}

// tick runs the node's timers every 100 ms: the table's (Table.Tick), the voter proposer's,
// and the claim renewals every lock-delay/6 (agent.renewLoop).
func (n *simNode) tick(life uint64) {
	if !n.up || n.life != life {
		return
	}
	now := n.now()
	n.dispatch(n.table.Tick(now))
	if n.prop != nil && !n.prop.NextDeadline().IsZero() && !now.Before(n.prop.NextDeadline()) {
		n.sendVoter(n.prop, n.prop.Tick(now))
	}
	if !now.Before(n.renew) {
		n.renew = now.Add(n.s.cfg.LockDelay / 6)
		n.renewClaims()
		n.handOff()
	}
	n.s.after(100*time.Millisecond, func() { n.tick(life) })
}

// persist syncs the acceptor's and the voter acceptor's durable state (before answering).
func (n *simNode) persist(keys []string) {
	for _, k := range keys {
		if h := n.acc.Highest(k); h > n.disk.highest[k] {
			n.disk.highest[k] = h
		}
	}
	n.disk.voters = n.vacc.State()
}

// simAnswer is one key's answer to a promise request (agent.promiseAnswer).
type simAnswer struct {
	ok      bool
	stale   bool
	highest uint32
}

// simPromiseReq is a lock.promise request: the owner incarnation, its voter set and the keys.
type simPromiseReq struct {
	owner  Owner
	from   *Owner // a transfer (handoff): move from's live promise to owner
	set    VoterSet
	keys   []string
	epochs []uint32
}

// answerPromise is the acceptor side (agent.acceptorSide.promise) with the voter-set check
// of lockmgr/doc.go "What the agent does with voters": CheckVersion before every promise; an
// acceptor with no set, or an older one, learns the owner's (committed) set by Commit.
func (n *simNode) answerPromise(req simPromiseReq) (out []simAnswer, newer *VoterSet) {
	now := n.now()
	err := n.vacc.CheckVersion(req.set.Cluster, req.set.Version, now)
	if errors.Is(err, ErrNoVoters) {
		n.vacc.Commit(req.set, now)
		err = n.vacc.CheckVersion(req.set.Cluster, req.set.Version, now)
	}
	out = make([]simAnswer, len(req.keys))
	if err != nil {
		var ref *VoterRefusedError
		if errors.As(err, &ref) && errors.Is(err, ErrStaleVersion) {
			set := ref.Set
			newer = &set
		}
		n.persist(nil)
		return out, newer
	}
	deadline := now.Add(n.s.cfg.LockDelay)
	for i, k := range req.keys {
		var err error
		if req.from != nil {
			_, err = n.acc.Transfer(k, *req.from, req.owner, req.epochs[i], deadline, now)
		} else {
			_, err = n.acc.Promise(k, req.owner, req.epochs[i], deadline, now)
		}
		out[i] = simAnswer{ok: err == nil, stale: errors.Is(err, ErrStaleEpoch), highest: n.acc.Highest(k)}
	}
	if req.set.Version > n.vacc.Set().Version {
		n.vacc.Commit(req.set, now) // the agent asks the owner for its set
	}
	n.persist(req.keys)
	return out, nil
}

// simRound is one promise round of an owner: a claim (one key) or a batch renewal.
type simRound struct {
	keys    []string
	epochs  []uint32
	claims  []*simClaim
	set     VoterSet
	sent    time.Time
	renewal bool
	live    bool
	try     int
	answers map[string][]simAnswer
	done    bool
	waiting []*simReq
	from    *Owner        // a transfer round (handoff)
	onDone  func(ok bool) // a transfer round's outcome
}

// ask sends one promise request to every voter of the node's set and finishes the round when
// all answered or after the RPC timeout (agent.askFrom).
func (n *simNode) ask(r *simRound) {
	s, life := n.s, n.life
	req := simPromiseReq{owner: Owner{Name: n.name, Incarnation: n.inc}, from: r.from, set: r.set, keys: r.keys, epochs: r.epochs}
	for _, m := range r.set.Members {
		to := s.byName[m]
		s.send(n.idx, to.idx, func() {
			ans, newer := to.answerPromise(req)
			s.send(to.idx, n.idx, func() {
				if n.life != life || r.done {
					return
				}
				if newer != nil {
					n.vacc.Commit(*newer, n.now())
					n.persist(nil)
				}
				r.answers[m] = ans
				if len(r.answers) == len(r.set.Members) {
					n.finish(r)
				}
			})
		})
	}
	s.after(2*time.Second, func() {
		if n.life == life {
			n.finish(r)
		}
	})
}

// finish counts a round (agent.claimRound, agent.renewBatch): only answers of members of
// the set it asked under, a strict majority needed.
func (n *simNode) finish(r *simRound) {
	if r.done {
		return
	}
	r.done = true
	need := r.set.Majority()
	if n.s.p.variant == variantMinorityQuorum {
		need = 1 // agent.brokenQuorum
	}
	for i, key := range r.keys {
		ok, highest, stale := 0, uint32(0), false
		for _, m := range r.set.Members {
			if a := r.answers[m]; a != nil {
				if a[i].ok {
					ok++
				}
				highest = max(highest, a[i].highest)
				stale = stale || a[i].stale
			}
		}
		if r.onDone != nil {
			r.onDone(ok >= need)
			continue
		}
		c := r.claims[i]
		if !r.renewal {
			c.round = nil
		}
		if ok >= need {
			n.s.tracef("%s %s round on %s epoch %d: %d of %v promised, owned until %v", n.name, map[bool]string{false: "claim", true: "renewal"}[r.renewal],
				key, r.epochs[i], ok, r.set, r.sent.Add(n.s.cfg.LockDelay).Format("15:04:05.000"))
			n.extend(key, c, r.epochs[i], r.sent.Add(n.s.cfg.LockDelay))
		} else if !r.renewal && !r.live && stale && r.try == 0 {
			n.startClaim(key, c, max(r.epochs[i], highest)+1, false, 1, r.waiting)
			continue
		}
		for _, q := range r.waiting {
			if ok >= need {
				n.serve(q) // agent.ensureOwned loops: check the coverage again
			} else {
				q.fail("no quorum")
			}
		}
	}
}

// extend records a successful round (agent.lockService.extend).
func (n *simNode) extend(key string, c *simClaim, epoch uint32, until time.Time) {
	if n.claims[key] != c || epoch < c.epoch {
		return
	}
	now := n.now()
	if epoch != c.epoch {
		if err := n.table.SetEpoch(key, epoch); err != nil {
			return
		}
		c.epoch, c.until = epoch, until
	} else if until.After(c.until) {
		c.until = until
	}
	n.table.SetOwnedUntil(key, c.until, now)
	n.dispatch(n.table.Tick(now))
}

// claimRound starts (or joins) a claim round on key for q (agent.ensureOwned and claimRound:
// the epoch is above every epoch this node knows, at least the clock epoch, and a failed
// round's epoch is asked again only within its clock second).
func (n *simNode) claimRound(key string, q *simReq) {
	now := n.now()
	c := n.claims[key]
	if c == nil {
		c = &simClaim{lastUsed: now}
		n.claims[key] = c
	}
	if c.round != nil {
		if q != nil {
			c.round.waiting = append(c.round.waiting, q)
		}
		return
	}
	var waiting []*simReq
	if q != nil {
		waiting = []*simReq{q}
	}
	if now.Before(c.holdOff) {
		if q != nil {
			q.fail("no quorum: a handoff failed midway")
		}
		return
	}
	live := c.until.After(now)
	epoch := c.epoch
	if !live {
		tableEpoch, _ := n.table.Epoch(key)
		known := max(c.epoch, tableEpoch, n.acc.Highest(key))
		reuse := c.tried != 0 && c.triedUntil.After(now) && c.tried >= simEpochAt(now)
		if reuse && c.tried > known {
			epoch = c.tried
		} else {
			epoch = known + 1
		}
	}
	n.startClaim(key, c, epoch, live, 0, waiting)
}

func (n *simNode) startClaim(key string, c *simClaim, epoch uint32, live bool, try int, waiting []*simReq) {
	now := n.now()
	fail := func(why string) {
		for _, q := range waiting {
			q.fail(why)
		}
	}
	if !live && epoch != c.tried && n.s.p.variant != variantNoQuiet {
		// agent.clockEpoch: at least the clock epoch, at most lock-delay/2 s ahead of it.
		clock := simEpochAt(now)
		epoch = max(epoch, clock)
		if epoch > clock+uint32(max(n.s.cfg.LockDelay/2/time.Second, 1)) {
			fail("epochs ran ahead of the clock")
			return
		}
	}
	set := n.vacc.Set()
	if set.Version == 0 {
		fail("no voters")
		return
	}
	if !live && epoch != c.tried {
		c.tried, c.triedUntil = epoch, now.Add(n.s.cfg.LockDelay)
	}
	r := &simRound{keys: []string{key}, epochs: []uint32{epoch}, claims: []*simClaim{c}, set: set,
		sent: now, live: live, try: try, answers: map[string][]simAnswer{}, waiting: waiting}
	c.round = r
	n.ask(r)
}

// renewClaims mirrors agent.renewClaims: renew in one batch every claim in use on a key the
// ring still gives this node; drop lapsed idle claims; claim again for waiters behind a
// lapsed claim.
func (n *simNode) renewClaims() {
	now := n.now()
	r := &simRound{set: n.vacc.Set(), sent: now, renewal: true, answers: map[string][]simAnswer{}}
	var reclaim []string
	for _, key := range n.s.keys {
		c := n.claims[key]
		if c == nil || c.round != nil {
			continue
		}
		if c.moving != 0 {
			if !c.until.After(now) {
				delete(n.claims, key) // a handoff that failed: the promises lapsed
				n.table.Remove(key)
			}
			continue
		}
		in := n.table.Info(key, now)
		busy := in.Held || in.Waiters > 0
		if !c.until.After(now) {
			switch {
			case in.Waiters > 0 && now.After(c.holdOff):
				reclaim = append(reclaim, key)
			case !busy && !now.Before(c.holdOff):
				delete(n.claims, key)
				n.table.Remove(key)
			}
			continue
		}
		if n.view[key] != n.idx {
			continue // the ring moved the key away: let the promises lapse
		}
		if busy || now.Sub(c.lastUsed) < n.s.cfg.LockDelay {
			r.keys = append(r.keys, key)
			r.epochs = append(r.epochs, c.epoch)
			r.claims = append(r.claims, c)
		}
	}
	if len(r.keys) > 0 && r.set.Version > 0 {
		n.ask(r)
	}
	for _, key := range reclaim {
		n.claimRound(key, nil)
	}
}
