package lockmgr

// Handoffs in the lock model test (model_sim_test.go): agent/lock_handoff.go on the pure
// Table and Acceptor.

import (
	"slices"
	"time"
)

// handOff mirrors agent.lockService.handOff: every live claim on a key this node's ring now
// gives to another node that is up is exported, never granted here again, and sent to it;
// waiters are redirected.
func (n *simNode) handOff() {
	s, life := n.s, n.life
	now := n.now()
	for _, key := range s.keys {
		c := n.claims[key]
		if c == nil || c.round != nil || c.moving != 0 || !c.until.After(now) {
			continue
		}
		to := s.nodes[n.view[key]]
		if to == n || !to.up {
			continue
		}
		c.moving = to.idx + 1
		// The waiters are redirected to the new owner, as agent.handOff does: cancelled
		// last to first, then the key exported. Cancel hands a free key to the next waiter
		// whose lease fits, so cancelling first to last after the export (the agent's old
		// order, oldHandoffOrder) can grant a lease the new owner never learns of
		// (TestLockModelOldHandoffOrderIsCaught).
		queued, _ := n.table.Export(key, now)
		cancel := slices.Clone(queued.Waiters)
		if !s.p.oldHandoffOrder {
			slices.Reverse(cancel)
		}
		for _, w := range cancel {
			if n.table.Cancel(w.Ticket, now) == nil {
				if q := n.wait[w.Ticket]; q != nil {
					delete(n.wait, w.Ticket)
					q.fail("redirect")
				}
			}
		}
		st := queued
		if !s.p.oldHandoffOrder {
			st, _ = n.table.Export(key, now)
		}
		st.Waiters = nil
		enc, err := st.MarshalBinary()
		if err != nil {
			panic(err)
		}
		from, epoch := Owner{Name: n.name, Incarnation: n.inc}, c.epoch
		s.tracef("%s hands %s (epoch %d) to %s", n.name, key, epoch, to.name)
		s.send(n.idx, to.idx, func() {
			to.takeOver(from, now, key, epoch, enc, func(untried, ok bool) {
				s.send(to.idx, n.idx, func() {
					if n.life != life || n.claims[key] != c {
						return
					}
					switch {
					case untried:
						c.moving = 0 // nothing moved: keep serving, try again later
					case ok:
						delete(n.claims, key)
						n.table.Remove(key)
					}
				})
			})
		})
	}
}

// takeOver mirrors agent.lockService.takeOver for one key: unless it is not ready (its ring
// does not give it the key, it is busy with the key, or its acceptor is quiet), a transfer
// round moves the promises under the old owner's epoch; with a majority it imports the
// lease (its expiry shifted by the clocks' difference at export) and grants at once,
// otherwise it holds off any round on the key for a lock-delay.
func (n *simNode) takeOver(from Owner, exported time.Time, key string, epoch uint32, enc []byte, answer func(untried, ok bool)) {
	now := n.now()
	var st KeyState
	if err := st.UnmarshalBinary(enc); err != nil || st.Key != key {
		answer(false, false)
		return
	}
	c := n.claims[key]
	in := n.table.Info(key, now)
	tableEpoch, _ := n.table.Epoch(key)
	set := n.vacc.Set()
	if n.view[key] != n.idx || now.Before(n.quiet) || set.Version == 0 ||
		c != nil && (c.round != nil || c.until.After(now) || c.moving != 0) ||
		in.Held || in.Waiters > 0 || tableEpoch > epoch || st.Epoch != epoch {
		answer(true, false)
		return
	}
	if c == nil {
		c = &simClaim{lastUsed: now}
		n.claims[key] = c
	}
	shift := now.Sub(exported)
	r := &simRound{keys: []string{key}, epochs: []uint32{epoch}, claims: []*simClaim{c}, set: set,
		sent: now, from: &from, answers: map[string][]simAnswer{}}
	c.round = r
	r.onDone = func(ok bool) {
		now := n.now()
		if c.round == r {
			c.round = nil
		}
		if !ok {
			c.holdOff = r.sent.Add(n.s.cfg.LockDelay)
			answer(false, false)
			return
		}
		nc := &simClaim{epoch: epoch, until: r.sent.Add(n.s.cfg.LockDelay), lastUsed: now}
		if st.Held != nil {
			st.Held.Lease.Expiry = st.Held.Lease.Expiry.Add(shift)
		}
		err := n.table.SetEpoch(key, epoch)
		if err == nil {
			err = n.table.SetOwnedUntil(key, nc.until, now)
		}
		if err == nil {
			_, err = n.table.Import(st, now)
		}
		if err != nil {
			nc = &simClaim{lastUsed: now, holdOff: r.sent.Add(n.s.cfg.LockDelay)}
		}
		n.claims[key] = nc
		n.s.tracef("%s took %s over from %v under epoch %d: %v", n.name, key, from, epoch, err)
		if err == nil {
			n.s.handoffs++
		}
		n.dispatch(n.table.Tick(now))
		answer(false, err == nil)
	}
	n.ask(r)
}
