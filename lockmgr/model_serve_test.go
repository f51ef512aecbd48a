package lockmgr

// Client requests at an owner in the lock model test (model_sim_test.go): routing, the
// ownership check and the table calls.

import (
	"errors"
	"time"
)

// reqOp is what a client asks.
type reqOp uint8

const (
	opAcquire reqOp = iota + 1
	opRenew
	opRelease
)

// simReq is one client request at an owner.
type simReq struct {
	client   *simClient
	node     *simNode
	op       reqOp
	key      string
	ttl      time.Duration
	wait     time.Duration
	lease    Lease
	sent     time.Duration // true time the client sent it
	attempts int
	hops     int
	answered bool
}

func (q *simReq) fail(why string) { q.reply(Lease{}, errors.New(why)) }

// reply answers the client over the network (an answer may be lost; the client times out).
func (q *simReq) reply(l Lease, err error) {
	if q.answered {
		return
	}
	q.answered = true
	s := q.node.s
	if s.rng.Float64() < s.drop {
		return
	}
	s.after(s.delay(), func() { q.client.answer(q, l, err) })
}

// serve is the owner's handling of a client request (agent ensureOwned + the table call):
// the node serves a key its ring gives it or one it holds a live claim on, and grants or
// renews only under a claim that covers the lease by the drift margin (less TTLSlack, which
// the table then takes off the lease).
func (n *simNode) serve(q *simReq) {
	if !n.up {
		return
	}
	now := n.now()
	c := n.claims[q.key]
	to := n.view[q.key]
	if c != nil && c.moving != 0 {
		to = c.moving - 1 // agent ensureOwned: a redirect to where the key moves
	}
	if to != n.idx && (c == nil || c.moving != 0 || !c.until.After(now)) {
		// agent lock_route: forward to the owner this node's ring names, at most 3 hops.
		if q.hops >= 3 {
			q.fail("redirect")
			return
		}
		q.hops++
		q.node = n.s.nodes[to]
		n.s.send(n.idx, to, func() { q.node.serve(q) })
		return
	}
	if q.op == opRelease {
		ev, err := n.table.Release(q.lease, now)
		n.dispatch(ev)
		q.reply(Lease{}, err)
		return
	}
	ttl := q.ttl
	if ttl == 0 {
		ttl = n.s.cfg.DefaultTTL
	}
	if c != nil && c.round == nil && c.until.After(now.Add(ttl+n.s.cfg.DriftMargin-n.s.cfg.TTLSlack)) {
		c.lastUsed = now
		n.grant(q, now)
		return
	}
	if q.attempts >= 3 {
		q.fail("no quorum")
		return
	}
	q.attempts++
	n.claimRound(q.key, q)
}

func (n *simNode) grant(q *simReq, now time.Time) {
	switch q.op {
	case opAcquire:
		a, err := n.table.Acquire(q.key, q.client.name, q.ttl, q.wait, now)
		switch {
		case err != nil:
			q.reply(Lease{}, err)
		case a.Granted:
			n.s.rec.grant(n, q, a.Lease, now)
			q.reply(a.Lease, nil)
		default:
			n.wait[a.Ticket] = q
			n.s.tracef("%s queues %s for %s (ttl %v)", n.name, q.key, q.client.name, q.ttl)
		}
	case opRenew:
		l, err := n.table.Renew(q.lease, q.ttl, now)
		if err == nil {
			n.s.rec.renew(n, q, l, now)
		}
		q.reply(l, err)
	}
	n.dispatch(n.table.Tick(now))
}

// dispatch answers the requests named in a table's events.
func (n *simNode) dispatch(ev []Event) {
	now := n.now()
	for _, e := range ev {
		q := n.wait[e.Ticket]
		if e.Kind == LeaseExpired || q == nil {
			continue
		}
		delete(n.wait, e.Ticket)
		if e.Kind == WaiterGranted {
			n.s.rec.grant(n, q, e.Lease, now)
			q.reply(e.Lease, nil)
		} else {
			q.fail(e.Kind.String())
		}
	}
}
