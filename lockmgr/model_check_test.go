package lockmgr

// The checker of the lock model test (model_test.go): every lease in true time, as its
// client may believe in it.

import (
	"fmt"
	"slices"
	"time"
)

// leaseRec is one grant as the checker sees it, in true time: from the grant until the end
// its client may believe in (send time + TTL − margin, extended by renewals, cut by the
// client's release).
type leaseRec struct {
	key        string
	token      int64
	owner      string
	start, end time.Duration
	released   bool // by its client: renewals still in flight no longer count
}

type leaseRecorder struct {
	s         *sim
	byID      map[LeaseID]*leaseRec
	all       []*leaseRec
	last      map[string]int64
	bad       []modelViolation
	lastOwner *simNode
	lastBy    map[string]string // the owner that granted each key last
	handovers int               // grants by another owner than the key's previous grant
}

func (r *leaseRecorder) grant(n *simNode, q *simReq, l Lease, now time.Time) {
	ttl := l.Expiry.Sub(now)
	rec := &leaseRec{key: l.Key, token: l.Token, owner: n.name, start: r.s.now, end: max(q.sent+ttl-clientMargin(ttl), r.s.now)}
	r.s.tracef("%s grants %s token %d (epoch %d seq %d) to %s until %.3fs", n.name, l.Key, l.Token, l.Token>>SequenceBits, l.Token&MaxSequence, q.client.name, rec.end.Seconds())
	if l.Token <= r.last[l.Key] {
		r.bad = append(r.bad, modelViolation{r.s.now, fmt.Sprintf("token regression on %s at %.3fs: %s granted token %d after token %d",
			l.Key, r.s.now.Seconds(), n.name, l.Token, r.last[l.Key])})
	}
	r.last[l.Key] = l.Token
	if prev := r.lastBy[l.Key]; prev != "" && prev != n.name {
		r.handovers++
	}
	r.lastBy[l.Key] = n.name
	r.byID[l.ID] = rec
	r.all = append(r.all, rec)
	r.lastOwner = n
}

func (r *leaseRecorder) renew(n *simNode, q *simReq, l Lease, now time.Time) {
	ttl := l.Expiry.Sub(now)
	if rec := r.byID[l.ID]; rec != nil && !rec.released {
		rec.end = max(rec.end, q.sent+ttl-clientMargin(ttl))
		r.s.tracef("%s renews %s token %d until %.3fs", n.name, l.Key, l.Token, rec.end.Seconds())
	}
}

func (r *leaseRecorder) release(l Lease, sent time.Duration) {
	if rec := r.byID[l.ID]; rec != nil {
		rec.end, rec.released = min(rec.end, sent), true
	}
}

// modelViolation is one broken guarantee and the true time it happened at.
type modelViolation struct {
	at   time.Duration
	what string
}

func (v modelViolation) String() string { return v.what }

// check returns every violation, earliest first: token regressions (recorded as they
// happened) and pairs of leases on one key that overlap in true time (at the later start).
func (r *leaseRecorder) check() []modelViolation {
	bad := slices.Clone(r.bad)
	byKey := map[string][]*leaseRec{}
	for _, l := range r.all {
		if l.end > l.start {
			byKey[l.key] = append(byKey[l.key], l)
		}
	}
	for _, key := range r.s.keys {
		ls := byKey[key]
		slices.SortStableFunc(ls, func(a, b *leaseRec) int { return int(a.start - b.start) })
		var longest *leaseRec
		for _, l := range ls {
			if longest != nil && l.start < longest.end {
				bad = append(bad, modelViolation{l.start, fmt.Sprintf("overlap on %s: token %d from %s [%.3fs, %.3fs) and token %d from %s [%.3fs, %.3fs)",
					key, longest.token, longest.owner, longest.start.Seconds(), longest.end.Seconds(),
					l.token, l.owner, l.start.Seconds(), l.end.Seconds())})
			}
			if longest == nil || l.end > longest.end {
				longest = l
			}
		}
	}
	slices.SortStableFunc(bad, func(a, b modelViolation) int { return int(a.at - b.at) })
	return bad
}
