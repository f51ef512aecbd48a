package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/ringleader/ringleader/lockmgr"
	"github.com/ringleader/ringleader/ring"
)

// Handoff: when the ring moves a key away from a live owner (a join, or this
// peer's graceful leave), the old owner stops granting the key, sends its
// entries to the new owner, and the new owner has every acceptor move the
// old owner's promise to it in one step (Acceptor.Transfer). With a
// majority moved, the new owner imports the entries and grants at once —
// no lock-delay. If any step fails, nobody grants under the old promises:
// the old owner never resumes, and the new owner holds off until they could
// have run out (claim.noRoundBefore), exactly as if the old owner had died.

// Peer RPC method of a handoff.
const methodLockHandoff = "lock.handoff"

// handoffRequest hands keys from one owner incarnation to the peer it is
// sent to. Now is the sender's clock when it exported the states: the
// receiver shifts their times by the difference to its own clock.
type handoffRequest struct {
	From            string        `msgpack:"f"`
	FromIncarnation uint64        `msgpack:"fi"`
	Leaving         bool          `msgpack:"l,omitempty"`
	Now             time.Time     `msgpack:"n"`
	Items           []handoffItem `msgpack:"it"`
}

// handoffItem is one key: the sender's epoch for it and its exported
// lockmgr.KeyState (the live lease; waiters are sent back to the new owner
// as redirects instead).
type handoffItem struct {
	Key   string `msgpack:"k"`
	Epoch uint32 `msgpack:"e"`
	State []byte `msgpack:"s"`
}

type handoffResponse struct {
	// Errors[i] is empty when item i was taken over.
	Errors []string `msgpack:"e"`
	// Untried[i] says no acceptor was asked to move item i's promises (the
	// receiver was not ready): the sender may keep serving it.
	Untried []bool `msgpack:"u"`
}

// holds reports whether this peer holds a live claim on key that it is not
// handing over: then it serves the key whatever its ring says (the claim,
// a majority promise, is what makes granting safe; the ring only routes).
// This covers the old owner until its handoff and the new owner of a key a
// leaving peer handed over before the others saw it leave.
func (ls *lockService) holds(key string) bool {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	c := ls.claims[key]
	return c != nil && c.moving == "" && c.round == nil && c.until.After(ls.a.clock.Now())
}

// movingTo names the peer key is being handed over to, if any, and
// whether the handoff is done: the key went there within the last
// lock-delay. A renewal the new owner sent back here (Fallback) may have
// left it just before its import of the key, and reach this peer just
// after the handoff: the lease lives on there, so it is not unknown.
func (ls *lockService) movingTo(key string) (to string, done bool) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if c := ls.claims[key]; c != nil && c.moving != "" {
		return c.moving, false
	}
	if h, ok := ls.handedTo[key]; ok && h.until.After(ls.a.clock.Now()) {
		return h.to, true
	}
	return "", false
}

// putClaim records this peer's claim on key; a handoff of key that this
// peer remembered is over, as the key is back. Called with mu held.
func (ls *lockService) putClaim(key string, c *claim) {
	ls.claims[key] = c
	delete(ls.handedTo, key)
}

// pruneHandedTo forgets handoffs older than a lock-delay. Called with mu
// held.
func (ls *lockService) pruneHandedTo(now time.Time) {
	for key, h := range ls.handedTo {
		if !h.until.After(now) {
			delete(ls.handedTo, key)
		}
	}
}

func (ls *lockService) isLeaving() bool { return ls.leaving.Load() }

// ringChanged wakes the handoff loop.
func (ls *lockService) ringChanged() {
	select {
	case ls.moved <- struct{}{}:
	default:
	}
}

// handoffLoop hands over the keys a ring change moved away.
func (ls *lockService) handoffLoop() {
	defer ls.a.wg.Done()
	next := ls.cfg.LockDelay / 6
	for {
		t := ls.a.clock.NewTimer(next)
		select {
		case <-ls.moved:
			t.Stop()
		case <-t.C():
		case <-ls.a.stop:
			t.Stop()
			return
		}
		ctx, cancel := ls.a.runContext(2 * ls.a.cfg.RPCTimeout)
		next = ls.handOff(ctx, false)
		cancel()
	}
}

// ownerOn returns key's owner on r, or on r without the member skip.
func ownerOn(r *ring.Ring, key, skip string) (string, error) {
	if skip == "" {
		return r.Owner(key)
	}
	pref, err := r.Preference(key, 2)
	if err != nil {
		return "", err
	}
	for _, m := range pref {
		if m != skip {
			return m, nil
		}
	}
	return "", ring.ErrEmptyRing
}

// handOff sends every claimed key whose owner is now another alive peer to
// it. Leaving computes owners as if this peer had left already. It returns
// when to look again: soon if a newcomer was left to settle.
func (ls *lockService) handOff(ctx context.Context, leaving bool) time.Duration {
	next := ls.cfg.LockDelay / 6
	view := ls.a.view.load()
	skip := ""
	if leaving {
		skip = ls.self.Name
	}
	type batch struct {
		items  []handoffItem
		claims []*claim
		// waiters are the key's queued requests, sent on to the new owner
		// once the handoff is done (before, it would not know the key).
		waiters []chan lockmgr.Event
		events  []lockmgr.Event
	}
	batches := map[string]*batch{}
	ls.mu.Lock()
	now := ls.a.clock.Now()
	for key, c := range ls.claims {
		if c.round != nil || c.moving != "" || !c.until.After(now) {
			continue
		}
		owner, err := ownerOn(view.Ring, key, skip)
		if err != nil || owner == ls.self.Name || (c.adopted && owner == c.from) {
			continue // a leaving peer's key stays here while the ring still names it
		}
		if _, alive := view.RPC[owner]; !alive {
			continue
		}
		if since, ok := view.since[owner]; !leaving && ok && now.Sub(since) < ls.settle() {
			next = min(next, ls.settle()-now.Sub(since)+time.Millisecond)
			continue // let the newcomer see the cluster first
		}
		// Stop granting here, for good; the waiters go to the new owner.
		// They are cancelled last to first, and the key exported after:
		// Cancel grants a free key to the next waiter that fits, and a
		// grant made after the export would be unknown to the new owner,
		// which would grant the same token again (found by the lockmgr
		// model test). Last to first nothing is granted (the first waiter
		// stays first until it goes); exporting after would carry it.
		c.moving = owner
		b := batches[owner]
		if b == nil {
			b = &batch{}
			batches[owner] = b
		}
		queued, _ := ls.table.Export(key, now)
		for i := len(queued.Waiters) - 1; i >= 0; i-- {
			w := queued.Waiters[i]
			if ls.table.Cancel(w.Ticket, now) == nil {
				if ch, ok := ls.waiting[w.Ticket]; ok {
					delete(ls.waiting, w.Ticket)
					b.waiters = append(b.waiters, ch)
					b.events = append(b.events, lockmgr.Event{Kind: lockmgr.WaiterFailed, Key: key, Ticket: w.Ticket, Err: &redirectError{to: owner}})
				}
			}
		}
		st, _ := ls.table.Export(key, now)
		st.Waiters = nil
		enc, err := st.MarshalBinary()
		if err != nil {
			ls.a.log.Error("cannot encode a lock key for its handoff; its promises will lapse instead", "key", key, "err", err)
			continue
		}
		b.items = append(b.items, handoffItem{Key: key, Epoch: c.epoch, State: enc})
		b.claims = append(b.claims, c)
	}
	ls.mu.Unlock()
	for owner, b := range batches {
		ls.a.log.Debug("handing lock keys over", "to", owner, "keys", len(b.items), "leaving", leaving)
		for len(b.items) > 0 {
			n := min(len(b.items), maxPromiseKeys)
			ls.sendHandoff(ctx, owner, view.RPC[owner], leaving, now, b.items[:n], b.claims[:n])
			b.items, b.claims = b.items[n:], b.claims[n:]
		}
		for i, ch := range b.waiters {
			ch <- b.events[i] // buffered; each waiter gets one event
		}
	}
	return next
}

func (ls *lockService) sendHandoff(ctx context.Context, owner, addr string, leaving bool, now time.Time, items []handoffItem, claims []*claim) {
	req := &handoffRequest{From: ls.self.Name, FromIncarnation: ls.self.Incarnation, Leaving: leaving, Now: now, Items: items}
	var resp handoffResponse
	err := ls.a.call(ctx, addr, methodLockHandoff, req, &resp)
	if err == nil && len(resp.Errors) != len(items) {
		err = fmt.Errorf("answered %d keys of %d", len(resp.Errors), len(items))
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	done := 0
	for i, it := range items {
		if err == nil && len(resp.Untried) == len(items) && resp.Untried[i] {
			ls.a.log.Debug("lock handoff not taken; keeping the key for now", "key", it.Key, "to", owner, "why", resp.Errors[i])
			if ls.claims[it.Key] == claims[i] {
				claims[i].moving = "" // nothing moved: keep serving, try again later
			}
			continue
		}
		if err == nil && resp.Errors[i] == "" {
			if ls.claims[it.Key] == claims[i] {
				delete(ls.claims, it.Key)
				ls.table.Remove(it.Key)
			}
			if ls.handedTo == nil {
				ls.handedTo = map[string]handedOver{}
			}
			ls.handedTo[it.Key] = handedOver{to: owner, until: ls.a.clock.Now().Add(ls.cfg.LockDelay)}
			done++
			continue
		}
		why := err
		if why == nil {
			why = fmt.Errorf("%s", resp.Errors[i])
		}
		ls.a.log.Warn("lock handoff failed; the key is grantable again once this peer's promises lapse",
			"key", it.Key, "to", owner, "err", why)
	}
	ls.a.metrics.lockHandoffs.Add(float64(done))
	if done > 0 {
		ls.a.log.Info("handed lock keys over", "to", owner, "keys", done, "of", len(items), "leaving", leaving)
	}
}

func (a *Agent) handleLockHandoff(ctx context.Context, req *handoffRequest) (*handoffResponse, error) {
	ls, err := a.lockService()
	if err != nil {
		return nil, err
	}
	if len(req.Items) == 0 || len(req.Items) > maxPromiseKeys || req.From == "" || req.From == a.cfg.NodeName {
		return nil, fmt.Errorf("a handoff must come from another peer and carry 1 to %d keys", maxPromiseKeys)
	}
	errs, untried := ls.takeOver(ctx, req)
	return &handoffResponse{Errors: errs, Untried: untried}, nil
}

// settle is how long a peer must have been alive here before keys are
// handed to it: time for it to see the cluster.
func (ls *lockService) settle() time.Duration { return 5 * ls.a.cfg.Timings.GossipInterval }

// takeOver takes the keys of a handoff: the transfer round, then the import.
// It returns one error message per item, empty for the keys it took, and
// which items it did not try at all.
func (ls *lockService) takeOver(ctx context.Context, req *handoffRequest) ([]string, []bool) {
	errs := make([]string, len(req.Items))
	untried := make([]bool, len(req.Items))
	if ls.isLeaving() {
		for i := range untried {
			untried[i], errs[i] = true, ls.self.Name+" is leaving the cluster"
		}
		return errs, untried
	}
	peers, _, need, err := ls.a.majorityPeers("")
	if err == nil && ls.acceptor.quietAt(ls.a.clock.Now()) && len(peers) < need+1 {
		err = fmt.Errorf("its own acceptor is in its quiet period and too few others are alive")
	}
	if err != nil {
		for i := range untried {
			untried[i] = true
			errs[i] = fmt.Sprintf("%s is not ready to take lock keys: %v", ls.self.Name, err)
		}
		return errs, untried
	}
	view := ls.a.view.load()
	skip := ""
	if req.Leaving {
		skip = req.From
	}
	now := ls.a.clock.Now()
	shift := now.Sub(req.Now)
	states := make([]lockmgr.KeyState, len(req.Items))
	var keys []promiseKey
	var idx []int
	taking := &round{done: make(chan struct{})}
	ls.mu.Lock()
	for i, it := range req.Items {
		if owner, err := ownerOn(view.Ring, it.Key, skip); err != nil || owner != ls.self.Name {
			errs[i] = fmt.Sprintf("%s does not own %q in its ring (it sees %q)", ls.self.Name, it.Key, owner)
			untried[i] = true
			continue
		}
		if err := states[i].UnmarshalBinary(it.State); err != nil || states[i].Key != it.Key {
			errs[i] = fmt.Sprintf("bad key state for %q: %v", it.Key, err)
			continue
		}
		if c := ls.claims[it.Key]; c != nil && (c.round != nil || c.until.After(now) || c.moving != "") {
			errs[i] = fmt.Sprintf("%s is busy with %q (a promise round or a live claim)", ls.self.Name, it.Key)
			untried[i] = true
			continue
		}
		if in := ls.table.Info(it.Key, now); in.Held || in.Waiters > 0 {
			errs[i] = fmt.Sprintf("%s has entries for %q already", ls.self.Name, it.Key)
			untried[i] = true
			continue
		}
		// The promises move under the old owner's epoch and this peer
		// continues its sequence (Table.Import), so a handoff burns no epoch.
		if tableEpoch, _ := ls.table.Epoch(it.Key); tableEpoch > it.Epoch || states[i].Epoch != it.Epoch {
			errs[i] = fmt.Sprintf("epoch %d of %q is not the state's %d or is below this peer's %d", it.Epoch, it.Key, states[i].Epoch, tableEpoch)
			untried[i] = true
			continue
		}
		keys = append(keys, promiseKey{Key: it.Key, Epoch: it.Epoch})
		idx = append(idx, i)
		// Hold off any promise round for the key here until the transfer
		// has ended: a claim round now could win with the promises the
		// transfer moves and grant beside the old owner's lease.
		c := ls.claims[it.Key]
		if c == nil {
			c = &claim{lastUsed: now}
			ls.putClaim(it.Key, c)
		}
		c.round = taking
	}
	ls.mu.Unlock()
	from := lockmgr.Owner{Name: req.From, Incarnation: req.FromIncarnation}
	if len(keys) == 0 {
		return errs, untried
	}
	sent := ls.a.clock.Now()
	res, err := ls.askFrom(ctx, keys, &from)
	ls.mu.Lock()
	defer ls.mu.Unlock()
	defer func() {
		for _, k := range keys {
			if c := ls.claims[k.Key]; c != nil && c.round == taking {
				c.round = nil
			}
		}
		close(taking.done) // the waiting requests look at the claims again
	}()
	now = ls.a.clock.Now()
	for j, k := range keys {
		i := idx[j]
		ok := 0
		if err == nil {
			ok, _ = res.tally(j)
		}
		if err != nil || ok < res.need {
			// Some promises may have moved here without the leases: hold
			// off until they could have run out.
			c := ls.claims[k.Key]
			if c == nil {
				c = &claim{lastUsed: now}
				ls.putClaim(k.Key, c)
			}
			c.noRoundBefore = sent.Add(ls.cfg.LockDelay)
			if err != nil {
				errs[i] = err.Error()
			} else {
				errs[i] = res.refusal(k.Key, j, ok).Error()
			}
			ls.a.metrics.lockRounds.WithLabelValues("transfer", "failed").Inc()
			continue
		}
		ls.a.metrics.lockRounds.WithLabelValues("transfer", "ok").Inc()
		c := &claim{epoch: k.Epoch, until: sent.Add(ls.cfg.LockDelay), lastUsed: now, adopted: req.Leaving, from: req.From}
		st := states[i]
		if st.Held != nil {
			st.Held.Lease.Expiry = st.Held.Lease.Expiry.Add(shift)
		}
		err := ls.table.SetEpoch(k.Key, k.Epoch)
		if err == nil {
			err = ls.table.SetOwnedUntil(k.Key, c.until, now)
		}
		if err == nil {
			_, err = ls.table.Import(st, now)
		}
		if err != nil {
			// Promises moved here but the lease did not: wait them out.
			c = &claim{lastUsed: now, noRoundBefore: sent.Add(ls.cfg.LockDelay)}
			errs[i] = fmt.Sprintf("import of %q: %v", k.Key, err)
		}
		ls.putClaim(k.Key, c)
		ls.dispatch(ls.table.Tick(now))
	}
	ls.wakeLocked()
	return errs, untried
}

// leave hands every claimed key to its owner on the ring without this peer,
// before a graceful leave; from then on this peer serves no lock request.
func (ls *lockService) leave(ctx context.Context) {
	ls.leaving.Store(true)
	ls.handOff(ctx, true)
}
