package simulation

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
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
