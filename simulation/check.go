package simulation

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/ringleader/ringleader/simulation/memnet"
)

// Violation is one broken invariant.
type Violation struct {
	// Checker is counters, membership, ring or liveness (harness: the run
	// itself failed).
	Checker string `json:"checker"`
	// Kind: lost, doubled, diverged, members, ring, not-converged, step.
	Kind   string `json:"kind"`
	Peer   string `json:"peer,omitempty"`
	Key    string `json:"key,omitempty"`
	Amount int64  `json:"amount,omitempty"`
	Msg    string `json:"message"`
}

func (v Violation) String() string { return v.Checker + ": " + v.Msg }

// KeyCheck is the counters checker's account of one key.
type KeyCheck struct {
	Key string `json:"key"`
	// Acked is the sum of acknowledged deltas: the value every peer must
	// hold when nothing ambiguous happened.
	Acked int64 `json:"acked"`
	// Min and Max bound the allowed value: Acked plus any subset of the
	// ambiguous deltas (and of the at-risk local writes of a peer that
	// lost its disk).
	Min int64 `json:"min"`
	Max int64 `json:"max"`
	// Ambiguous counts the writes that may or may not count; AtRisk the
	// acknowledged local writes of a peer that lost its disk.
	Ambiguous int `json:"ambiguous"`
	AtRisk    int `json:"at_risk"`
	// Values are each running peer's value at the end.
	Values map[string]int64 `json:"values"`
}

// CheckCounters checks that every peer's final value of every key is the
// sum of the acknowledged deltas: an ambiguous write may count once or not
// at all, so a value inside [Min, Max] passes; below is a lost increment
// (reported with its amount), above a doubled one. final maps each running
// peer to its values (a key it lacks is 0).
//
// A peer that lost its disk (wipes) takes with it the writes it had
// acknowledged with consistency=local and not yet spread, as documented:
// its local writes acknowledged before the wipe are treated as ambiguous
// (AtRisk). Majority-acknowledged writes stay strict.
func CheckCounters(ops []Op, wipes []Wipe, final map[string]map[string]int64) ([]KeyCheck, []Violation) {
	lastWipe := map[string]float64{}
	for _, w := range wipes {
		lastWipe[w.Peer] = max(lastWipe[w.Peer], w.At)
	}
	keys := map[string]*KeyCheck{}
	get := func(k string) *KeyCheck {
		kc := keys[k]
		if kc == nil {
			kc = &KeyCheck{Key: k, Values: map[string]int64{}}
			keys[k] = kc
		}
		return kc
	}
	for _, vals := range final {
		for k := range vals {
			get(k)
		}
	}
	for _, op := range ops {
		kc := get(op.Key)
		outcome := op.Outcome
		if outcome == Acked && op.Consistency != "majority" {
			if at, ok := lastWipe[op.Peer]; ok && op.End <= at {
				outcome = Ambiguous
				kc.AtRisk++
			}
		}
		switch outcome {
		case Acked:
			kc.Acked += op.Delta
			kc.Min += op.Delta
			kc.Max += op.Delta
		case Ambiguous:
			if op.Outcome == Ambiguous {
				kc.Ambiguous++
			}
			if op.Delta < 0 {
				kc.Min += op.Delta
			} else {
				kc.Max += op.Delta
			}
		}
	}
	var out []KeyCheck
	var vs []Violation
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		kc := keys[k]
		// On a key written only with decrements, a value too high is a lost
		// decrement and one too low a doubled one.
		low, high := "lost", "doubled"
		lowWhat, highWhat := "lost increments", "increments counted twice"
		if kc.decrementsOnly(ops) {
			low, high = high, low
			lowWhat, highWhat = "decrements counted twice", "lost decrements"
		} else if kc.mixed(ops) {
			lowWhat, highWhat = "lost increments or doubled decrements", "doubled increments or lost decrements"
		}
		distinct := map[int64]bool{}
		for _, peer := range slices.SortedFunc(maps.Keys(final), comparePeerNames) {
			v := final[peer][k]
			kc.Values[peer] = v
			distinct[v] = true
			switch {
			case v < kc.Min:
				vs = append(vs, Violation{Checker: "counters", Kind: low, Peer: peer, Key: k, Amount: kc.Min - v,
					Msg: fmt.Sprintf("%s on %s is %d: %d short of the acknowledged %d (%s): %s", k, peer, v, kc.Min-v, kc.Acked, kc.rangeText(), lowWhat)})
			case v > kc.Max:
				vs = append(vs, Violation{Checker: "counters", Kind: high, Peer: peer, Key: k, Amount: v - kc.Max,
					Msg: fmt.Sprintf("%s on %s is %d: %d over the acknowledged %d (%s): %s", k, peer, v, v-kc.Max, kc.Acked, kc.rangeText(), highWhat)})
			}
		}
		if len(distinct) > 1 {
			vs = append(vs, Violation{Checker: "counters", Kind: "diverged", Key: k,
				Msg: fmt.Sprintf("peers disagree on %s after the heal: %s", k, valuesText(kc.Values))})
		}
		out = append(out, *kc)
	}
	return out, vs
}

// signs reports whether the key's writes (acknowledged or ambiguous)
// include increments and decrements.
func (kc *KeyCheck) signs(ops []Op) (incr, decr bool) {
	for _, op := range ops {
		if op.Key != kc.Key || op.Outcome == Failed {
			continue
		}
		if op.Delta > 0 {
			incr = true
		} else {
			decr = true
		}
	}
	return incr, decr
}

func (kc *KeyCheck) decrementsOnly(ops []Op) bool {
	incr, decr := kc.signs(ops)
	return decr && !incr
}

func (kc *KeyCheck) mixed(ops []Op) bool {
	incr, decr := kc.signs(ops)
	return decr && incr
}

func (kc *KeyCheck) rangeText() string {
	if kc.Min == kc.Max {
		return "no ambiguous writes"
	}
	return fmt.Sprintf("allowed %d..%d with %d ambiguous and %d at-risk writes", kc.Min, kc.Max, kc.Ambiguous, kc.AtRisk)
}

func valuesText(vals map[string]int64) string {
	var parts []string
	for _, p := range slices.SortedFunc(maps.Keys(vals), comparePeerNames) {
		parts = append(parts, fmt.Sprintf("%s=%d", p, vals[p]))
	}
	return strings.Join(parts, " ")
}

// PeerView is what one peer believes about the cluster.
type PeerView struct {
	// Alive are the members it sees alive (peers only), sorted.
	Alive []string `json:"alive"`
	// Ring is its ring checksum.
	Ring string `json:"ring"`
}

// CheckMembership checks that every running peer sees exactly the running
// peers alive, and that all hold the same ring.
func CheckMembership(views map[string]PeerView, running []string) []Violation {
	want := slices.Clone(running)
	slices.SortFunc(want, comparePeerNames)
	var vs []Violation
	rings := map[string][]string{}
	for _, peer := range slices.SortedFunc(maps.Keys(views), comparePeerNames) {
		v := views[peer]
		alive := slices.Clone(v.Alive)
		slices.SortFunc(alive, comparePeerNames)
		if !slices.Equal(alive, want) {
			vs = append(vs, Violation{Checker: "membership", Kind: "members", Peer: peer,
				Msg: fmt.Sprintf("%s sees alive [%s]; running are [%s]", peer, strings.Join(alive, " "), strings.Join(want, " "))})
		}
		rings[v.Ring] = append(rings[v.Ring], peer)
	}
	if len(rings) > 1 {
		var parts []string
		for _, r := range slices.SortedFunc(maps.Keys(rings), func(a, b string) int { return cmp.Compare(a, b) }) {
			parts = append(parts, fmt.Sprintf("%s: %s", r, strings.Join(rings[r], " ")))
		}
		vs = append(vs, Violation{Checker: "ring", Kind: "ring", Msg: "peers hold different rings: " + strings.Join(parts, "; ")})
	}
	return vs
}

// Locks: what the history can prove.
//
// A client sees each lock request only from outside: it sent it at Start
// and got the answer at End, and the owner acted somewhere in between. So
// every lease (a hold: the acquire that granted it, the renews and the
// release that followed) is known only within bounds:
//
//   - It began at the grant, somewhere in the acquire's [Start, End]: it
//     is certainly live from the acquire's End (a lease never lapses and
//     comes back).
//   - A successful renew or release found it live when the owner handled
//     it, at or after the request's Start: it is certainly live until that
//     Start. After the last successful acquire or renew (sent at S,
//     answered with ttl left), the owner keeps it until at least S + ttl by
//     its own clock: S + ttl·(1-2·MaxClockDrift) - 1 ms of real time (the
//     owner may run slow by the drift bound; ttl is truncated to the
//     millisecond; a paused owner's clock stops, which only makes the
//     lease longer). A dead owner's successor grants nothing before the
//     dead owner's promises lapse, which is after its leases end; a
//     handoff carries the leases. So an owner change does not end a lease
//     early either, and an unknown-lease answer does not mean it ended.
//   - A release may take effect anywhere in its [Start, End]: the lease
//     certainly lasts until the release's Start and no further.
//
// The certain part of a hold is therefore [acquire End, CertainEnd] with
// CertainEnd = release Start when the release was acknowledged, else the
// earlier of the release's Start (if one was sent) and the TTL bound
// above. The part before and after it (from the acquire's Start; to the
// release's End or the TTL bound with the drift the other way) is only
// possible. Two holds of one key whose certain parts intersect were both
// live at once: an overlap, whatever the interleaving was. Holds whose
// possible parts merely touch prove nothing, and are not reported.
//
// Fencing tokens: grant A certainly came before grant B when A's acquire
// was answered before B's was sent; then A's token must be below B's. Two
// grants whose intervals overlap cannot be ordered; their tokens must
// still differ. A renew must answer with its grant's token.
//
// Minority grants: the runner records the network's shape over time
// (Topology, each certainly in force over [From, To]). An owner that
// cannot reach a strict majority of the voters (counting itself and the
// running voters it exchanges messages with both ways) may still grant
// under the promises it collected before the fault, for at most one
// lock-delay (the promise period, counted from when it asked). So a grant
// is a violation when its owner was on a minority side from at least
// lock-delay·(1+2·MaxClockDrift) before the acquire was sent until after it
// was answered.

// lockDriftAllowance is how much shorter (or longer) than by the owner's
// clock a lock duration may be in real time.
const lockDriftAllowance = 2 * memnet.MaxClockDrift

// Hold is one lease as the lock checker reconstructs it from a client's
// requests. Times are seconds of wall time since the run began.
type Hold struct {
	Client int    `json:"client"`
	Hold   int    `json:"hold"`
	Key    string `json:"key"`
	Token  int64  `json:"token"`
	Owner  string `json:"owner"`
	Lease  string `json:"lease"`
	// Sent and Granted are the acquire's interval; the lease is certainly
	// live over [Granted, CertainEnd].
	Sent       float64 `json:"sent"`
	Granted    float64 `json:"granted"`
	CertainEnd float64 `json:"certain_end"`
	// PossibleEnd is the latest it may have lasted.
	PossibleEnd float64 `json:"possible_end"`
	Renews      int     `json:"renews"`
	// Ended says how: released, release-unacknowledged, expired.
	Ended string `json:"ended"`
}

// LockWindow is how long a key the crashed peer owned took to be granted
// again: from the crash to the first grant answered after it (-1: none).
type LockWindow struct {
	Peer   string  `json:"peer"`
	Key    string  `json:"key"`
	Crash  float64 `json:"crash"`
	Grant  float64 `json:"grant"`
	Window float64 `json:"window_s"`
	Owner  string  `json:"owner,omitempty"`
}

// LockCheck is the lock checker's account.
type LockCheck struct {
	Holds []Hold `json:"holds"`
	// Answers counts the requests by operation and answer.
	Answers map[string]map[LockAnswer]int `json:"answers"`
	// Windows are the unavailability windows after owner crashes.
	Windows []LockWindow `json:"windows"`
	// MinorityWindows counts the (owner, window) pairs in which an owner
	// was on a minority side for longer than the lock-delay: the windows
	// in which a grant would have been a violation.
	MinorityWindows int `json:"minority_windows"`
}

// maxLockViolations bounds how many violations of one kind on one key are
// reported (the rest are counted in the last one's message).
const maxLockViolations = 10

// CheckLocks checks the lock history (see the comment above): no two
// holds of one key overlap in real time, fencing tokens per key strictly
// increase in grant order, no owner granted from a minority side after its
// promises lapsed. It counts the answers and measures, for each crash, how
// long each key the crashed peer owned took to be granted again. lockDelay
// is the agent's promise period in seconds of wall time.
func CheckLocks(ops []LockOp, topo []Topology, crashes []LockCrash, lockDelay float64) (LockCheck, []Violation) {
	lc := LockCheck{Answers: map[string]map[LockAnswer]int{}}
	var vs []Violation
	for _, op := range ops {
		if lc.Answers[op.Op] == nil {
			lc.Answers[op.Op] = map[LockAnswer]int{}
		}
		lc.Answers[op.Op][op.Answer]++
		if op.Answer == LockHung {
			vs = append(vs, Violation{Checker: "locks", Kind: "hung", Key: op.Key, Peer: op.Peer,
				Msg: fmt.Sprintf("%s: %s #%d through %s sent at %.3fs got no answer: %s", op.Key, op.Op, op.ID, op.Peer, op.Start, op.Err)})
		}
	}

	// Holds, from each hold's requests in the order sent.
	byHold := map[[2]int][]LockOp{}
	for _, op := range ops {
		k := [2]int{op.Client, op.Hold}
		byHold[k] = append(byHold[k], op)
	}
	for _, k := range slices.SortedFunc(maps.Keys(byHold), func(a, b [2]int) int {
		return cmp.Or(cmp.Compare(a[1], b[1]), cmp.Compare(a[0], b[0]))
	}) {
		hops := byHold[k]
		slices.SortStableFunc(hops, func(a, b LockOp) int { return cmp.Compare(a.Start, b.Start) })
		acq := hops[0]
		if acq.Op != "acquire" || acq.Answer != LockOK {
			continue
		}
		h := Hold{Client: acq.Client, Hold: acq.Hold, Key: acq.Key, Token: acq.Token, Owner: acq.Owner, Lease: acq.Lease,
			Sent: acq.Start, Granted: acq.End, Ended: "expired"}
		lastSent, lastTTL := acq.Start, acq.TTL
		possible := acq.End + acq.TTL*(1+lockDriftAllowance)
		release := -1.0
		for _, op := range hops[1:] {
			switch {
			case op.Op == "renew" && op.Answer == LockOK:
				h.Renews++
				lastSent, lastTTL = op.Start, op.TTL
				possible = max(possible, op.End+op.TTL*(1+lockDriftAllowance))
				if op.Token != acq.Token {
					vs = append(vs, Violation{Checker: "locks", Kind: "token-changed", Key: acq.Key,
						Msg: fmt.Sprintf("%s: renew #%d (%.3fs) of lease %s answered token %d; its grant gave %d", acq.Key, op.ID, op.End, shortLease(acq.Lease), op.Token, acq.Token)})
				}
			case op.Op == "renew" && op.Answer == LockAmbiguous:
				possible = max(possible, op.End+lastTTL*(1+lockDriftAllowance))
			case op.Op == "release" && op.Answer != LockDown && op.Answer != LockBad:
				release = op.Start
				h.Ended = "release-unacknowledged"
				if op.Answer == LockOK {
					h.Ended = "released"
					possible = min(possible, op.End)
				}
			}
		}
		ttlEnd := lastSent + lastTTL*(1-lockDriftAllowance) - 0.001
		h.CertainEnd = ttlEnd
		switch {
		case h.Ended == "released":
			h.CertainEnd = release
		case release >= 0:
			h.CertainEnd = min(ttlEnd, release)
		}
		h.PossibleEnd = max(possible, h.CertainEnd)
		lc.Holds = append(lc.Holds, h)
	}

	keys := map[string][]Hold{}
	for _, h := range lc.Holds {
		keys[h.Key] = append(keys[h.Key], h)
	}
	for _, key := range slices.Sorted(maps.Keys(keys)) {
		hs := keys[key]
		vs = append(vs, checkOverlaps(key, hs)...)
		vs = append(vs, checkTokens(key, hs)...)
	}
	mv, n := checkMinority(ops, topo, lockDelay)
	vs = append(vs, mv...)
	lc.MinorityWindows = n
	lc.Windows = lockWindows(ops, crashes)
	return lc, vs
}

func shortLease(l string) string {
	if len(l) > 8 {
		return l[:8]
	}
	return l
}

func holdText(h Hold) string {
	return fmt.Sprintf("client %d hold %d (token %d from %s, certainly live %.3fs-%.3fs)", h.Client, h.Hold, h.Token, h.Owner, h.Granted, h.CertainEnd)
}

// checkOverlaps reports two holds of key whose certain parts intersect.
func checkOverlaps(key string, hs []Hold) []Violation {
	hs = slices.Clone(hs)
	slices.SortFunc(hs, func(a, b Hold) int { return cmp.Compare(a.Granted, b.Granted) })
	var vs []Violation
	n := 0
	for i, a := range hs {
		for _, b := range hs[i+1:] {
			if b.Granted >= a.CertainEnd {
				break
			}
			if b.CertainEnd <= b.Granted {
				continue // nothing certain about b
			}
			n++
			if n <= maxLockViolations {
				vs = append(vs, Violation{Checker: "locks", Kind: "overlap", Key: key,
					Msg: fmt.Sprintf("%s: two leases live at once for %.3fs: %s and %s", key, min(a.CertainEnd, b.CertainEnd)-b.Granted, holdText(a), holdText(b))})
			}
		}
	}
	if n > maxLockViolations {
		vs[len(vs)-1].Msg += fmt.Sprintf(" (and %d more overlaps on %s)", n-maxLockViolations, key)
	}
	return vs
}

// checkTokens reports a grant whose token is not above that of a grant
// certainly before it, and two grants with one token.
func checkTokens(key string, hs []Hold) []Violation {
	var vs []Violation
	n := 0
	byToken := map[int64]Hold{}
	for _, h := range hs {
		if o, ok := byToken[h.Token]; ok {
			n++
			if n <= maxLockViolations {
				vs = append(vs, Violation{Checker: "locks", Kind: "token-reused", Key: key,
					Msg: fmt.Sprintf("%s: token %d granted twice: %s and %s", key, h.Token, holdText(o), holdText(h))})
			}
			continue
		}
		byToken[h.Token] = h
	}
	// By answer time, with the running highest token: each grant must be
	// above every grant answered before it was sent.
	byEnd := slices.Clone(hs)
	slices.SortFunc(byEnd, func(a, b Hold) int { return cmp.Compare(a.Granted, b.Granted) })
	best := make([]int, len(byEnd)) // index of the highest token among byEnd[:i+1]
	for i := range byEnd {
		best[i] = i
		if i > 0 && byEnd[best[i-1]].Token > byEnd[i].Token {
			best[i] = best[i-1]
		}
	}
	for _, h := range hs {
		// The grants answered strictly before h was sent.
		j, _ := slices.BinarySearchFunc(byEnd, h.Sent, func(a Hold, t float64) int {
			if a.Granted < t {
				return -1
			}
			return 1
		})
		if j == 0 {
			continue
		}
		if prev := byEnd[best[j-1]]; prev.Token > h.Token {
			n++
			if n <= maxLockViolations {
				vs = append(vs, Violation{Checker: "locks", Kind: "token-order", Key: key, Amount: prev.Token - h.Token,
					Msg: fmt.Sprintf("%s: token went back: %s was answered before %s was asked for (at %.3fs), yet its token is not lower", key, holdText(prev), holdText(h), h.Sent)})
			}
		}
	}
	if n > maxLockViolations {
		vs[len(vs)-1].Msg += fmt.Sprintf(" (and %d more token violations on %s)", n-maxLockViolations, key)
	}
	return vs
}

// minorityWindow is a stretch of time over which owner could not reach a
// majority of the voters.
type minorityWindow struct{ from, to float64 }

// minorityWindows returns, for each peer, the stretches over which every
// recorded topology left it on a minority side.
func minorityWindows(topo []Topology) map[string][]minorityWindow {
	out := map[string][]minorityWindow{}
	peers := map[string]bool{}
	for _, t := range topo {
		for _, p := range t.Voters {
			peers[p] = true
		}
	}
	for p := range peers {
		open := false
		var w minorityWindow
		for _, t := range topo {
			// A peer that is down is on no side: it grants nothing.
			if slices.Contains(t.Running, p) && t.Minority(p) {
				if !open {
					w, open = minorityWindow{from: t.From}, true
				}
				w.to = t.To
				continue
			}
			if open {
				out[p] = append(out[p], w)
				open = false
			}
		}
		if open {
			out[p] = append(out[p], w)
		}
	}
	return out
}

// checkMinority reports grants answered by an owner that had been on a
// minority side for longer than the lock-delay before the acquire was sent,
// and still was when it was answered. It also returns how many windows
// were long enough for that.
func checkMinority(ops []LockOp, topo []Topology, lockDelay float64) ([]Violation, int) {
	windows := minorityWindows(topo)
	hold := lockDelay * (1 + lockDriftAllowance)
	n := 0
	for _, ws := range windows {
		for _, w := range ws {
			if w.to-w.from > hold {
				n++
			}
		}
	}
	var vs []Violation
	for _, op := range ops {
		if op.Op != "acquire" || op.Answer != LockOK {
			continue
		}
		for _, w := range windows[op.Owner] {
			if w.from+hold <= op.Start && op.End <= w.to {
				vs = append(vs, Violation{Checker: "locks", Kind: "minority-grant", Key: op.Key, Peer: op.Owner,
					Msg: fmt.Sprintf("%s: %s granted token %d (acquire #%d, %.3fs-%.3fs) from a minority side: it could reach no majority of the voters from %.3fs to %.3fs, and its promises lapsed by %.3fs",
						op.Key, op.Owner, op.Token, op.ID, op.Start, op.End, w.from, w.to, w.from+hold)})
				break
			}
		}
	}
	return vs, n
}

// lockWindows measures, for each crash and each lock key the crashed peer
// owned, the time from the crash to the first grant of the key answered
// after it.
func lockWindows(ops []LockOp, crashes []LockCrash) []LockWindow {
	var out []LockWindow
	for _, c := range crashes {
		for _, k := range c.Keys {
			w := LockWindow{Peer: c.Peer, Key: k, Crash: c.At, Grant: -1, Window: -1}
			for _, op := range ops {
				if op.Key == k && op.Op == "acquire" && op.Answer == LockOK && op.End > c.At && (w.Grant < 0 || op.End < w.Grant) {
					w.Grant, w.Window, w.Owner = op.End, op.End-c.At, op.Owner
				}
			}
			out = append(out, w)
		}
	}
	return out
}
