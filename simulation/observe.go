package simulation

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/ringleader/ringleader/agent"
)

// sampleEvery is how often (wall time) the timeline samples a cluster of
// up to ten peers; larger ones are sampled less often, in proportion, so
// that watching does not starve what is watched.
const sampleEvery = 25 * time.Millisecond

// pollEvery is how often a wait checks for agreement: sampleEvery scaled
// the same way.
func (r *run) pollEvery() time.Duration {
	return sampleEvery * time.Duration(1+len(r.sc.Peers)/10)
}

// agreement is what the running peers agree on right now.
type agreement struct {
	members, ring, counters bool
}

// agree checks the running peers: each sees exactly the running peers
// alive; all hold one ring of them; all hold the same counters. It reads
// every peer's members and ring first and returns when that pass ended
// (viewAt), then reads the counters: with 200 peers in a membership storm
// a counters read waits behind the peer's queued pushes, and a pass that
// read both together took seconds, which the members and ring times then
// counted as time not yet converged.
func (r *run) agree() (g agreement, viewAt time.Time) {
	ps, as := r.c.Running()
	var names []string
	for _, p := range ps {
		names = append(names, p.Name)
	}
	g = agreement{members: true, ring: true, counters: true}
	ring := ""
	for i, a := range as {
		alive, err := aliveOf(a)
		if err != nil || !slices.Equal(alive, names) {
			g.members = false
		}
		v := a.View()
		sum := v.Ring.ChecksumHex()
		if v.Ring.Len() != len(names) || (i > 0 && sum != ring) {
			g.ring = false
		}
		ring = sum
	}
	viewAt = time.Now()
	var first []agent.CounterEntry
	for i, a := range as {
		entries, _, err := a.ListCounters(KeyPrefix, "", 10000)
		if err != nil || (i > 0 && !slices.EqualFunc(entries, first, entryEqual)) {
			g.counters = false
		}
		if i == 0 {
			first = entries
		}
	}
	return g, viewAt
}

func entryEqual(a, b agent.CounterEntry) bool {
	return a.Key == b.Key && a.Error == b.Error && (a.Value == nil) == (b.Value == nil) && (a.Value == nil || *a.Value == *b.Value)
}

// aliveOf returns the peers a sees alive, in name order.
func aliveOf(a *agent.Agent) ([]string, error) {
	alive, err := a.AlivePeers()
	if err != nil {
		return nil, err
	}
	slices.SortFunc(alive, comparePeerNames)
	return alive, nil
}

// wait polls until the running peers agree on members, ring and counters,
// or timeout passes; it records how long each took.
func (r *run) wait(ctx context.Context, st Step, timeout time.Duration) {
	begin := time.Now()
	from, since := begin, "wait"
	if !r.lastHeal.IsZero() {
		from, since = r.lastHeal, "heal"
	}
	cv := Convergence{Line: st.Line, Since: since, Members: -1, Ring: -1, Counters: -1}
	if since == "heal" {
		cv.HealAt = r.lastHealAt
	}
	deadline := begin.Add(timeout)
	for {
		g, viewAt := r.agree()
		now := time.Now()
		at := now.Sub(from).Seconds()
		if g.members && cv.Members < 0 {
			cv.Members = viewAt.Sub(from).Seconds()
		}
		if g.ring && cv.Ring < 0 {
			cv.Ring = viewAt.Sub(from).Seconds()
		}
		if g.counters && cv.Counters < 0 {
			cv.Counters = at
		}
		if g.members && g.ring && g.counters {
			cv.OK = true
			break
		}
		if now.After(deadline) || ctx.Err() != nil {
			var what []string
			if !g.members {
				what = append(what, "members")
			}
			if !g.ring {
				what = append(what, "ring")
			}
			if !g.counters {
				what = append(what, "counters")
			}
			r.violations = append(r.violations, Violation{Checker: "liveness", Kind: "not-converged",
				Msg: fmt.Sprintf("line %d (%s): after %v the running peers still disagree on %v", st.Line, st.Text, timeout.Round(time.Millisecond), what)})
			break
		}
		if r.sleep(ctx, r.pollEvery()) != nil {
			break
		}
	}
	r.conv = append(r.conv, cv)
}

// read returns each running peer's view and counter values.
func (r *run) read() (map[string]PeerView, map[string]map[string]int64) {
	views := map[string]PeerView{}
	final := map[string]map[string]int64{}
	ps, as := r.c.Running()
	for i, a := range as {
		alive, _ := aliveOf(a)
		views[ps[i].Name] = PeerView{Alive: alive, Ring: a.View().Ring.ChecksumHex()}
		vals := map[string]int64{}
		after := ""
		for range 1000 { // pages; bounded
			entries, next, err := a.ListCounters(KeyPrefix, after, 10000)
			if err != nil {
				break
			}
			for _, e := range entries {
				if e.Value != nil {
					vals[e.Key] = *e.Value
				}
			}
			if next == "" {
				break
			}
			after = next
		}
		final[ps[i].Name] = vals
	}
	return views, final
}

// sample records the timeline until ctx is done.
func (r *run) sample(ctx context.Context) {
	t := time.NewTicker(r.pollEvery())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ps, as := r.c.Running()
		rings := map[string]bool{}
		membersOK, ringOK := true, true
		var names []string
		for _, p := range ps {
			names = append(names, p.Name)
		}
		for _, a := range as { // members and ring first: see agree
			v := a.View()
			rings[v.Ring.ChecksumHex()] = true
			ringOK = ringOK && v.Ring.Len() == len(names)
			if alive, err := aliveOf(a); err != nil || !slices.Equal(alive, names) {
				membersOK = false
			}
		}
		viewT := r.h.now()
		var all []map[string]int64
		keys := map[string]bool{}
		for _, a := range as {
			entries, _, err := a.ListCounters(KeyPrefix, "", 10000)
			if err != nil {
				continue
			}
			vals := map[string]int64{}
			for _, e := range entries {
				if e.Value != nil {
					vals[e.Key] = *e.Value
					keys[e.Key] = true
				}
			}
			all = append(all, vals)
		}
		var spread int64
		for k := range keys {
			lo, hi := all[0][k], all[0][k] // a key a peer lacks reads 0
			for _, vals := range all[1:] {
				lo, hi = min(lo, vals[k]), max(hi, vals[k])
			}
			spread = max(spread, hi-lo)
		}
		r.h.addSample(Sample{T: r.h.now(), ViewT: viewT, Running: len(as), RingViews: len(rings), Spread: spread,
			RingOK: ringOK && len(rings) == 1, MembersOK: membersOK})
	}
}
