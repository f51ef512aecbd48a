package lockmgr

// The clients of the lock model test (model_test.go).

import (
	"time"
)

// simClient is a lock client: one request at a time, to the node it believes owns the key
// (or any node), acquiring, renewing about every TTL/3 and releasing. Like agent/client it
// counts a lease from when it sent the request.
type simClient struct {
	s        *sim
	name     string
	view     map[string]int
	cur      *simReq
	held     Lease
	heldNode *simNode
	heldTTL  time.Duration // as granted
	heldAsk  time.Duration // as asked (0: the default)
	heldEnd  time.Duration // true time the client stops believing it holds the lease
	scripted bool          // sends only what the script asks (request)
}

// request sends one scripted request from c to node.
func (c *simClient) request(node int, op reqOp, key string, ttl, wait time.Duration) {
	s := c.s
	q := &simReq{client: c, node: s.nodes[node], op: op, key: key, ttl: ttl, wait: wait, sent: s.now}
	if op != opAcquire {
		q.lease = c.held
	}
	if op == opRelease {
		s.tracef("%s releases %s token %d", c.name, key, c.held.Token)
		s.rec.release(c.held, s.now)
		c.heldNode = nil
	}
	c.cur = q
	s.after(s.delay(), func() { q.node.serve(q) })
}

// clientMargin mirrors agent/client.SafetyMargin: max(ttl/10, 100 ms), which covers the
// owner's clock rate against the client's (here: true time).
func clientMargin(ttl time.Duration) time.Duration { return max(ttl/10, 100*time.Millisecond) }

func (c *simClient) step() {
	s := c.s
	if c.cur != nil {
		return
	}
	if c.heldNode != nil && s.now >= c.heldEnd {
		c.heldNode = nil
	}
	q := &simReq{client: c, sent: s.now}
	if c.heldNode != nil {
		q.node, q.key, q.lease = c.heldNode, c.held.Key, c.held
		if s.rng.IntN(3) == 0 {
			q.op = opRelease
			s.rec.release(c.held, s.now)
			c.heldNode = nil
		} else {
			q.op = opRenew
			if s.rng.IntN(2) == 0 {
				q.ttl = c.heldAsk
			}
		}
	} else {
		q.op, q.key = opAcquire, s.keys[s.rng.IntN(len(s.keys))]
		if s.rng.IntN(10) < 7 {
			q.node = s.nodes[c.view[q.key]]
		} else {
			q.node = s.nodes[s.rng.IntN(len(s.nodes))]
		}
		if s.rng.IntN(5) > 0 {
			q.ttl = within(s.rng, MinTTL, s.cfg.MaxTTL())
		}
		if s.rng.IntN(3) == 0 {
			q.wait = within(s.rng, 100*time.Millisecond, 3*time.Second)
		}
	}
	c.cur = q
	if s.rng.Float64() >= s.drop {
		s.after(s.delay(), func() {
			if q.node.up {
				q.node.serve(q)
			}
		})
	}
	s.after(2*time.Second+q.wait, func() {
		if c.cur == q {
			c.cur = nil
			c.next()
		}
	})
}

func (c *simClient) next() {
	d := within(c.s.rng, 50*time.Millisecond, 800*time.Millisecond)
	if c.s.rng.IntN(8) == 0 {
		d = within(c.s.rng, 5*time.Second, 25*time.Second) // idle: claims lapse, keys change owner
	}
	if c.heldNode != nil {
		d = min(d+c.heldTTL/4, max(c.heldEnd-c.s.now-c.heldTTL/3, 0))
	}
	c.s.after(d, c.step)
}

func (c *simClient) answer(q *simReq, l Lease, err error) {
	if c.cur != q {
		return
	}
	c.cur = nil
	s := c.s
	switch {
	case err != nil && q.op == opAcquire:
		c.view[q.key] = s.truth[q.key] // asks around: the next try goes elsewhere
		if s.rng.IntN(2) == 0 {
			c.view[q.key] = s.rng.IntN(len(s.nodes))
		}
	case err != nil && q.op == opRenew:
		// Keeps believing until its deadline, then gives up (HeldLock.Done).
	case q.op == opAcquire, q.op == opRenew:
		ttl := l.Expiry.Sub(q.node.now()) // ttl_ms as the answer leaves the owner
		c.held, c.heldNode, c.heldTTL = l, q.node, ttl
		if q.op == opAcquire {
			c.heldAsk = q.ttl
		}
		c.view[q.key] = q.node.idx
		c.heldEnd = q.sent + ttl - clientMargin(ttl)
		s.tracef("%s holds %s token %d", c.name, l.Key, l.Token)
	}
	if !c.scripted {
		c.next()
	}
}
