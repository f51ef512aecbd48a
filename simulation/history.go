package simulation

import (
	"slices"
	"sync"
	"time"
)

// Outcome is what a client learned from one request.
type Outcome string

// Outcomes.
const (
	// Acked: the peer acknowledged the write; it must count exactly once.
	Acked Outcome = "acked"
	// Failed: the write was certainly not applied (the peer was down,
	// not ready, or refused it); it must not count.
	Failed Outcome = "failed"
	// Ambiguous: the write may or may not have been applied (a timeout, a
	// majority write that reached only its own peer, the peer crashed
	// while answering); it may count once or not at all.
	Ambiguous Outcome = "ambiguous"
)

// Op is one counter write of the workload and its answer. Times are
// seconds of wall time since the run began.
type Op struct {
	ID          int     `json:"id"`
	Client      int     `json:"client"`
	Peer        string  `json:"peer"`
	Key         string  `json:"key"`
	Delta       int64   `json:"delta"`
	Consistency string  `json:"consistency"`
	Start       float64 `json:"start"`
	End         float64 `json:"end"`
	Outcome     Outcome `json:"outcome"`
	// Value is the counter's value in the answer (acked only).
	Value int64  `json:"value,omitempty"`
	Err   string `json:"error,omitempty"`
}

// Fault is one fault window: from the step that made it until the step
// that removed it (End is the run's end if none did).
type Fault struct {
	Line  int     `json:"line"`
	Kind  string  `json:"kind"`
	Text  string  `json:"text"`
	Start float64 `json:"start"`
	End   float64 `json:"end"`
	open  bool
	peer  string
}

// Wipe records that a peer's disk was lost (restart --empty) or that it
// was still down at the end: local writes it had acknowledged but not yet
// spread may be gone, as documented.
type Wipe struct {
	Peer   string  `json:"peer"`
	At     float64 `json:"at"`
	Reason string  `json:"reason"`
}

// Sample is the cluster seen at one moment, for the timeline.
type Sample struct {
	// T is when the sample ended: the counters were read by then.
	T float64 `json:"t"`
	// ViewT is when the members and ring of every peer had been read (they
	// are read first); 0 in a sample made by hand means T.
	ViewT float64 `json:"view_t,omitempty"`
	// Running is how many peers run.
	Running int `json:"running"`
	// RingViews is how many distinct ring checksums the running peers hold.
	RingViews int `json:"ring_views"`
	// RingOK says every running peer holds a ring of exactly the running
	// peers, the same one.
	RingOK bool `json:"ring_ok"`
	// MembersOK says every running peer sees exactly the running peers
	// alive.
	MembersOK bool `json:"members_ok"`
	// Spread is the largest difference between two running peers' values
	// of one key.
	Spread int64 `json:"spread"`
}

// LockOp is one lock request of the lock workload and its answer. Times
// are seconds of wall time since the run began.
type LockOp struct {
	ID     int `json:"id"`
	Client int `json:"client"`
	// Hold numbers the client's holds: an acquire and the renews and the
	// release that follow it share it.
	Hold int    `json:"hold"`
	Op   string `json:"op"` // acquire, renew, release
	Key  string `json:"key"`
	Peer string `json:"peer"`
	// Start is when the request was sent, End when its answer came.
	Start  float64    `json:"start"`
	End    float64    `json:"end"`
	Answer LockAnswer `json:"answer"`
	// Token, Lease, Owner and TTL (seconds left when answered) are a
	// successful acquire's or renew's.
	Token int64   `json:"token,omitempty"`
	Lease string  `json:"lease,omitempty"`
	Owner string  `json:"owner,omitempty"`
	TTL   float64 `json:"ttl_s,omitempty"`
	Err   string  `json:"error,omitempty"`
}

// LockAnswer is what a lock request got.
type LockAnswer string

// Lock answers.
const (
	LockOK           LockAnswer = "ok" // granted, renewed or released
	LockHeld         LockAnswer = "held"
	LockNoQuorum     LockAnswer = "no-quorum"
	LockUnavailable  LockAnswer = "unavailable"
	LockUnknownLease LockAnswer = "unknown-lease"
	LockBad          LockAnswer = "bad-request"
	LockDown         LockAnswer = "peer-down" // the peer asked was not running
	// LockAmbiguous: no answer (a timeout, the peer crashed meanwhile):
	// the request may or may not have taken effect.
	LockAmbiguous LockAnswer = "ambiguous"
	// LockHung: the agent did not answer long after the request's
	// deadline (a liveness bug of the agent, reported as a violation).
	LockHung LockAnswer = "hung"
)

// Topology is the network's shape from From until To (seconds of wall
// time): From is taken after the change that made it, To before the
// change that ended it, so it certainly held in between.
type Topology struct {
	From float64 `json:"from"`
	To   float64 `json:"to"`
	// Voters are the peers started and not left (crashed ones count);
	// Running those of them that run.
	Voters  []string `json:"voters"`
	Running []string `json:"running"`
	// Groups is the partition, nil for none.
	Groups [][]string `json:"groups,omitempty"`
	// Cuts are the one-way cut links, [from, to].
	Cuts [][2]string `json:"cuts,omitempty"`
}

func (t *Topology) same(o Topology) bool {
	return slices.Equal(t.Voters, o.Voters) && slices.Equal(t.Running, o.Running) &&
		slices.EqualFunc(t.Groups, o.Groups, slices.Equal) && slices.Equal(t.Cuts, o.Cuts)
}

// Reach returns how many running voters owner can exchange messages with
// both ways, itself included: the most promises it can collect.
func (t *Topology) Reach(owner string) int {
	if !slices.Contains(t.Running, owner) {
		return 0
	}
	group := func(p string) int {
		for i, g := range t.Groups {
			if slices.Contains(g, p) {
				return i
			}
		}
		return -1
	}
	n := 0
	for _, p := range t.Running {
		if p != owner && (group(p) != group(owner) || slices.Contains(t.Cuts, [2]string{owner, p}) || slices.Contains(t.Cuts, [2]string{p, owner})) {
			continue
		}
		n++
	}
	return n
}

// Minority reports whether owner could not collect promises from a strict
// majority of the voters.
func (t *Topology) Minority(owner string) bool { return 2*t.Reach(owner) <= len(t.Voters) }

// LockCrash records a crash and the lock keys the crashed peer owned then.
type LockCrash struct {
	Peer string   `json:"peer"`
	At   float64  `json:"at"`
	Keys []string `json:"keys"`
}

// history records what happened during a run. Safe for concurrent use.
type history struct {
	begin time.Time

	// mu guards the slices below.
	mu      sync.Mutex
	ops     []Op
	faults  []Fault
	wipes   []Wipe
	samples []Sample
	heals   []float64
	locks   []LockOp
	topo    []Topology
	crashes []LockCrash
}

func newHistory() *history { return &history{begin: time.Now()} }

// now is the time since the run began, in seconds.
func (h *history) now() float64 { return time.Since(h.begin).Seconds() }

func (h *history) addOp(op Op) {
	h.mu.Lock()
	defer h.mu.Unlock()
	op.ID = len(h.ops) + 1
	h.ops = append(h.ops, op)
}

// openFault starts a fault window; peer, if set, ties it to one peer (a
// pause, a crash) so that closeFaults can end it alone.
func (h *history) openFault(st Step, kind, peer string) { h.openFaultAt(h.now(), st, kind, peer) }

// openFaultAt starts a fault window that began at start (a crash begins
// before Crash returns).
func (h *history) openFaultAt(start float64, st Step, kind, peer string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.faults = append(h.faults, Fault{Line: st.Line, Kind: kind, Text: st.Text, Start: start, open: true, peer: peer})
}

// closeFaults ends the open windows that match.
func (h *history) closeFaults(match func(f *Fault) bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t := h.now()
	for i := range h.faults {
		if f := &h.faults[i]; f.open && match(f) {
			f.open, f.End = false, t
		}
	}
}

// addHeal notes a heal now and returns its time.
func (h *history) addHeal() float64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	t := h.now()
	h.heals = append(h.heals, t)
	return t
}

func (h *history) addWipe(peer, reason string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.wipes = append(h.wipes, Wipe{Peer: peer, At: h.now(), Reason: reason})
}

func (h *history) addLockOp(op LockOp) {
	h.mu.Lock()
	defer h.mu.Unlock()
	op.ID = len(h.locks) + 1
	h.locks = append(h.locks, op)
}

// noteTopology records the network's shape t, which holds from now; the
// shape before it held until before.
func (h *history) noteTopology(before float64, t Topology) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if n := len(h.topo); n > 0 {
		if h.topo[n-1].same(t) {
			return
		}
		h.topo[n-1].To = before
	}
	t.From, t.To = h.now(), -1
	h.topo = append(h.topo, t)
}

func (h *history) addCrash(c LockCrash) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.crashes = append(h.crashes, c)
}

// lockSnapshot returns copies of the lock history; the last topology
// lasts until now.
func (h *history) lockSnapshot() ([]LockOp, []Topology, []LockCrash) {
	h.mu.Lock()
	defer h.mu.Unlock()
	topo := slices.Clone(h.topo)
	if n := len(topo); n > 0 && topo[n-1].To < 0 {
		topo[n-1].To = h.now()
	}
	return slices.Clone(h.locks), topo, slices.Clone(h.crashes)
}

const maxSamples = 20000

func (h *history) addSample(s Sample) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.samples) < maxSamples {
		h.samples = append(h.samples, s)
	}
}

// snapshot returns copies of everything recorded, closing open fault
// windows at now.
func (h *history) snapshot() ([]Op, []Fault, []Wipe, []Sample, []float64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t := h.now()
	faults := make([]Fault, len(h.faults))
	for i, f := range h.faults {
		if f.open {
			f.End = t
		}
		faults[i] = f
	}
	return append([]Op(nil), h.ops...), faults, append([]Wipe(nil), h.wipes...), append([]Sample(nil), h.samples...), append([]float64(nil), h.heals...)
}
