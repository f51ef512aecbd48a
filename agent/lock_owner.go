package agent

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ringleader/ringleader/lockmgr"
)

// Epochs come from a hybrid clock: a new epoch is above every epoch the
// acceptors of its round report and at least the current second since
// epochBase, and never more than the lock-delay's half ahead of it. So an
// epoch granted after an acceptor lost its disk — which takes that acceptor
// at least a lock-delay of quiet period — is above every epoch granted
// before, even when that acceptor was the only one of the new majority that
// knew the old epoch (docs/locks.md, "Tokens").
var epochBase = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// epochAt returns the clock epoch of t: whole seconds since epochBase, at
// least 1.
func epochAt(t time.Time) uint32 {
	s := int64(t.Sub(epochBase) / time.Second)
	return uint32(min(max(s, 1), lockmgr.MaxEpoch))
}

// brokenQuorum makes an owner count its own promise as a majority. It is
// false in every real build; only a test build with -tags
// ringleader_broken_quorum (broken_quorum.go) sets it, so the simulation can
// prove its checkers catch a lock service without a quorum.
var brokenQuorum = false

// maxEpochsAhead is how far a new epoch may run ahead of the clock epoch.
func (ls *lockService) maxEpochsAhead() uint32 {
	return uint32(max(ls.cfg.LockDelay/2/time.Second, 1))
}

// ensureOwned returns once this peer holds a majority promise on key that
// outlasts a ttl lease by the drift margin, running (or joining) a promise
// round when it does not, or when force asks for a fresh one.
func (ls *lockService) ensureOwned(ctx context.Context, key string, ttl time.Duration, force bool) error {
	ls.noteTTL(ttl)
	for attempt := 0; attempt < 3; attempt++ {
		ls.mu.Lock()
		now := ls.a.clock.Now()
		c := ls.claims[key]
		if c == nil {
			c = &claim{lastUsed: now}
			ls.putClaim(key, c)
		}
		if c.moving != "" {
			ls.mu.Unlock()
			return &redirectError{to: c.moving}
		}
		if c.round == nil && !force && c.until.After(now.Add(ttl+ls.cfg.DriftMargin-ls.cfg.TTLSlack)) {
			c.lastUsed = now
			ls.mu.Unlock()
			return nil
		}
		if now.Before(c.noRoundBefore) {
			ls.mu.Unlock()
			ls.a.metrics.lockNoQuorum.Inc()
			return fmt.Errorf("%w: a handoff of lock key %q failed midway; it is grantable again in %v, once the old owner's promises have run out",
				ErrNoQuorum, key, c.noRoundBefore.Sub(now).Round(time.Millisecond))
		}
		r := c.round
		mine := r == nil
		if mine {
			r = &round{done: make(chan struct{})}
			c.round = r
		}
		ls.mu.Unlock()
		if mine {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ls.a.cfg.RPCTimeout)
			r.err = ls.claimRound(rctx, key, c)
			cancel()
			ls.mu.Lock()
			c.round = nil
			ls.mu.Unlock()
			close(r.done)
			if r.err != nil {
				return r.err
			}
			force = false
			continue
		}
		select {
		case <-r.done:
			if r.err != nil {
				return r.err
			}
			force = false
		case <-ctx.Done():
			return fmt.Errorf("%w: waiting for the ownership of %q: %v", ErrUnavailable, key, ctx.Err())
		}
	}
	return fmt.Errorf("%w: the ownership lease on %q cannot cover a %v lease; retry", ErrNoQuorum, key, ttl)
}

// claimRound gets (or renews) a majority promise on key. A live claim is
// renewed under its own epoch; otherwise the round asks for a new epoch
// above everything this peer knows, and once more above what the acceptors
// report if they refuse it as stale.
func (ls *lockService) claimRound(ctx context.Context, key string, c *claim) error {
	ls.mu.Lock()
	now := ls.a.clock.Now()
	live := c.until.After(now)
	tableEpoch, _ := ls.table.Epoch(key)
	epoch, tried := c.epoch, c.tried
	// Reuse only within the clock second it was taken: an older epoch may
	// be below one another owner took since (docs/locks.md, "Tokens").
	reuse := c.tried != 0 && c.triedUntil.After(now) && c.tried >= epochAt(now)
	ls.mu.Unlock()
	if !live {
		// A failed round's promises to this incarnation may still be live
		// at some acceptors: asking again under the same epoch renews them
		// there, so retries do not burn epochs. This peer's own acceptor
		// is one of them, so its highest is often the tried epoch itself:
		// that is no reason to go above it (an acceptor that promised the
		// epoch to another owner refuses the retry, as it must).
		known := max(epoch, tableEpoch, ls.acceptor.highest(key))
		if reuse && tried >= known {
			epoch = tried
		} else {
			epoch = known + 1
		}
	}
	for try := 0; ; try++ {
		if !live && epoch != tried {
			var err error
			if epoch, err = ls.clockEpoch(key, epoch); err != nil {
				return err
			}
		}
		sent := ls.a.clock.Now()
		res, err := ls.ask(ctx, []promiseKey{{Key: key, Epoch: epoch}})
		if err != nil {
			ls.a.metrics.lockNoQuorum.Inc()
			ls.a.metrics.lockRounds.WithLabelValues("claim", "failed").Inc()
			return err
		}
		if !live && epoch != tried {
			ls.mu.Lock()
			c.tried, c.triedUntil = epoch, sent.Add(ls.cfg.LockDelay)
			ls.mu.Unlock()
			tried = epoch
		}
		ok, highest := res.tally(0)
		if ok >= res.need {
			ls.a.metrics.lockRounds.WithLabelValues("claim", "ok").Inc()
			if !live {
				ls.a.log.Debug("claimed a lock key", "key", key, "epoch", epoch, "promised", ok, "voters", res.total)
			}
			if !ls.extend(key, c, epoch, sent.Add(ls.cfg.LockDelay)) {
				return fmt.Errorf("%w: lock key %q changed hands during its promise round; retry", ErrUnavailable, key)
			}
			return nil
		}
		ls.a.metrics.lockRounds.WithLabelValues("claim", "failed").Inc()
		if live || !res.stale(0) || try > 0 {
			ls.a.metrics.lockNoQuorum.Inc()
			return res.refusal(key, 0, ok)
		}
		epoch = max(epoch, highest) + 1
	}
}

// clockEpoch raises epoch to the clock epoch, or refuses one that ran too
// far ahead of it.
func (ls *lockService) clockEpoch(key string, epoch uint32) (uint32, error) {
	clock := epochAt(ls.a.clock.Now())
	epoch = max(epoch, clock)
	if epoch > clock+ls.maxEpochsAhead() {
		ls.a.metrics.lockNoQuorum.Inc()
		return 0, fmt.Errorf("%w: epochs of %q ran %d s ahead of the clock (many owner changes or refused claim rounds of this key within seconds); retry in a few seconds",
			ErrNoQuorum, key, epoch-clock)
	}
	return epoch, nil
}

// extend records a successful round for claim c: key is owned under epoch
// until until. It does nothing, and says so, when c is no longer the key's
// claim, is being handed over, or holds a newer epoch (a renewal that
// crossed a newer round).
func (ls *lockService) extend(key string, c *claim, epoch uint32, until time.Time) bool {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.claims[key] != c || c.moving != "" || epoch < c.epoch {
		return false
	}
	now := ls.a.clock.Now()
	if epoch != c.epoch {
		if err := ls.table.SetEpoch(key, epoch); err != nil {
			ls.a.log.Error("lock epoch refused by the table; the key stays unowned", "key", key, "epoch", epoch, "err", err)
			return false
		}
		c.epoch, c.until = epoch, until
	} else if until.After(c.until) {
		c.until = until
	}
	if err := ls.table.SetOwnedUntil(key, c.until, now); err != nil {
		ls.a.log.Error("lock ownership refused by the table", "key", key, "err", err)
	}
	ls.dispatch(ls.table.Tick(now))
	ls.wakeLocked()
	return true
}

// voterAnswers is what every voter answered to one promise request.
type voterAnswers struct {
	total, need int
	// answers[i] holds voter names[i]'s answers, one per key; nil when
	// that voter failed, could not be reached, or errs says why.
	names   []string
	answers [][]promiseAnswer
	errs    []error
}

// tally counts the voters that promised key number i, and the highest
// epoch any of them reports.
func (v *voterAnswers) tally(i int) (ok int, highest uint32) {
	for _, as := range v.answers {
		if as == nil {
			continue
		}
		if as[i].OK {
			ok++
		}
		highest = max(highest, as[i].Highest)
	}
	return ok, highest
}

// stale reports whether a voter refused key number i's epoch as not above
// its highest.
func (v *voterAnswers) stale(i int) bool {
	for _, as := range v.answers {
		if as != nil && !as[i].OK && as[i].Reason == refusedStale {
			return true
		}
	}
	return false
}

// refusal explains a failed round for key number i.
func (v *voterAnswers) refusal(key string, i, ok int) error {
	var why []string
	for j, name := range v.names {
		switch {
		case v.errs[j] != nil:
			why = append(why, fmt.Sprintf("%s: %v", name, v.errs[j]))
		case v.answers[j] == nil:
			why = append(why, name+": not reachable")
		case !v.answers[j][i].OK:
			a := v.answers[j][i]
			switch a.Reason {
			case refusedPromised:
				why = append(why, fmt.Sprintf("%s: promised to %s for %v more", name, a.Holder, a.Remaining.Round(time.Millisecond)))
			case refusedStale:
				why = append(why, fmt.Sprintf("%s: has promised a higher epoch (%d)", name, a.Highest))
			case refusedQuiet:
				why = append(why, fmt.Sprintf("%s: started within the last lock-delay, promises nothing for %v more", name, a.Remaining.Round(time.Millisecond)))
			default:
				why = append(why, name+": "+a.Reason)
			}
		}
	}
	sort.Strings(why)
	return fmt.Errorf("%w: %d of %d voters promised lock key %q, %d needed (%s); retry later",
		ErrNoQuorum, ok, v.total, key, v.need, strings.Join(why, "; "))
}

// ask sends one promise request for keys to every voter — this peer's own
// acceptor directly, the alive others over peer RPC, in parallel — and
// collects the answers. Failed voters count in total but are not asked.
func (ls *lockService) ask(ctx context.Context, keys []promiseKey) (*voterAnswers, error) {
	return ls.askFrom(ctx, keys, nil)
}

// askFrom is ask, or with from set a transfer: each acceptor moves from's
// live promise on each key to this peer in one step (the handoff). The
// voters are this peer's committed voter set; an acceptor with a newer set
// sends it back, and the round is asked again once over it.
func (ls *lockService) askFrom(ctx context.Context, keys []promiseKey, from *lockmgr.Owner) (*voterAnswers, error) {
	for attempt := 0; ; attempt++ {
		set := ls.acceptor.voterSet()
		res, newer, err := ls.askSet(ctx, set, keys, from)
		if err != nil || newer.Version <= set.Version || attempt > 0 {
			return res, err
		}
		if err := ls.acceptor.learnSet(newer); err != nil {
			return res, nil
		}
		ls.kickVoters()
	}
}

// askSet asks the voters of set; newer is the newest set a voter answered
// with, if any is newer.
func (ls *lockService) askSet(ctx context.Context, set lockmgr.VoterSet, keys []promiseKey, from *lockmgr.Owner) (res *voterAnswers, newer lockmgr.VoterSet, err error) {
	if set.Version == 0 {
		return nil, newer, fmt.Errorf("%w: no voter set has formed yet: this peer sees %d peers, --bootstrap-expect is %d (the first peer by name forms the set once that many see each other; a joining peer learns it from the cluster)",
			ErrNoQuorum, ls.seen.Load(), ls.a.cfg.Locks.BootstrapExpect)
	}
	voters := set.Members
	need := set.Majority()
	if brokenQuorum {
		need = 1
	}
	res = &voterAnswers{total: len(voters), need: need, names: voters,
		answers: make([][]promiseAnswer, len(voters)), errs: make([]error, len(voters))}
	view := ls.a.view.load()
	ws := toWireSet(set)
	req := &promiseRequest{Owner: ls.self.Name, Incarnation: ls.self.Incarnation, Period: ls.cfg.LockDelay, Keys: keys, Voters: ws}
	if from != nil {
		req.From, req.FromIncarnation = from.Name, from.Incarnation
	}
	newers := make([]*wireSet, len(voters))
	var wg sync.WaitGroup
	for i, name := range voters {
		if name == ls.self.Name {
			res.answers[i], newers[i], res.errs[i] = ls.acceptor.promise(ls.self, from, ls.cfg.LockDelay, ws, keys)
			continue
		}
		addr, ok := view.RPC[name]
		if !ok {
			res.errs[i] = fmt.Errorf("failed or not yet alive")
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var resp promiseResponse
			if err := ls.a.call(ctx, addr, methodLockPromise, req, &resp); err != nil {
				res.errs[i] = err
				return
			}
			if len(resp.Answers) != len(keys) {
				res.errs[i] = fmt.Errorf("answered %d keys of %d", len(resp.Answers), len(keys))
				return
			}
			res.answers[i], newers[i] = resp.Answers, resp.Voters
		}()
	}
	wg.Wait()
	for _, w := range newers {
		if s := w.set(); s.Cluster == set.Cluster && s.Version > newer.Version {
			newer = s
		}
	}
	return res, newer, nil
}

// renewLoop keeps the claims on keys in use warm: every renewEvery it
// renews them in one request per voter, and drops claims that lapsed on
// keys with nothing left in the table.
func (ls *lockService) renewLoop() {
	defer ls.a.wg.Done()
	for {
		t := ls.a.clock.NewTimer(ls.renewEvery())
		select {
		case <-t.C():
		case <-ls.a.stop:
			t.Stop()
			return
		}
		ls.renewClaims()
	}
}

// noteTTL records the TTL of a grant or renewal, for renewEvery.
func (ls *lockService) noteTTL(ttl time.Duration) {
	now := ls.a.clock.Now()
	ls.mu.Lock()
	if ttl >= ls.longTTL || now.Sub(ls.longTTLAt) > ls.cfg.LockDelay {
		ls.longTTL, ls.longTTLAt = ttl, now
	}
	ls.mu.Unlock()
}

// renewEvery is how often the claims in use are renewed: every sixth of a
// lock-delay, or more often while leases near the longest TTL are asked
// for. A claim covers a lease only if it outlasts it by the drift margin,
// so for a TTL close to lock-delay − drift margin a claim is good for a
// short while after each renewal; past it, each grant would run a promise
// round of its own on the request path. Renewing twice within that while
// keeps them off it (at most every lock-delay/30).
func (ls *lockService) renewEvery() time.Duration {
	ls.mu.Lock()
	ttl := ls.longTTL
	if ls.a.clock.Now().Sub(ls.longTTLAt) > ls.cfg.LockDelay {
		ttl = 0
	}
	ls.mu.Unlock()
	every := ls.cfg.LockDelay / 6
	if ttl > 0 {
		fresh := ls.cfg.LockDelay - ttl - ls.cfg.DriftMargin + ls.cfg.TTLSlack // how old a claim may be
		every = min(every, max(fresh/2, ls.cfg.LockDelay/30))
	}
	return every
}

// renewClaims renews every claim in use that this peer's ring still names
// it the owner of.
func (ls *lockService) renewClaims() {
	view := ls.a.view.load()
	var keys []promiseKey
	var claims []*claim
	var reclaim []string
	ls.mu.Lock()
	now := ls.a.clock.Now()
	ls.pruneHandedTo(now)
	for key, c := range ls.claims {
		if c.round != nil || c.moving != "" {
			if c.moving != "" && !c.until.After(now) {
				delete(ls.claims, key) // a handoff that failed: the promises lapsed
				ls.table.Remove(key)
			}
			continue
		}
		in := ls.table.Info(key, now)
		busy := in.Held || in.Waiters > 0
		if !c.until.After(now) {
			switch {
			case busy && in.Waiters > 0 && c.moving == "" && now.After(c.noRoundBefore):
				reclaim = append(reclaim, key) // waiters queued behind a lapsed claim
			case !busy && !now.Before(c.noRoundBefore) && !c.triedUntil.After(now):
				// A failed handoff's hold-off lives on until it ends, and a
				// failed round's epoch while its promises may: a new claim
				// would not know it, and would ask for the next epoch each
				// time it failed again (claimRound).
				delete(ls.claims, key)
				ls.table.Remove(key)
			}
			continue
		}
		owner, err := view.Ring.Owner(key)
		if err != nil || (owner != ls.self.Name && !c.adopted) {
			continue // the ring moved the key away: let the promises lapse
		}
		if busy || now.Sub(c.lastUsed) < ls.cfg.LockDelay {
			keys = append(keys, promiseKey{Key: key, Epoch: c.epoch})
			claims = append(claims, c)
		}
	}
	ls.mu.Unlock()
	for len(keys) > 0 {
		n := min(len(keys), maxPromiseKeys)
		ls.renewBatch(keys[:n], claims[:n])
		keys, claims = keys[n:], claims[n:]
	}
	// Waiters behind a lapsed claim: claim the key again, so they are
	// granted (or time out) instead of waiting for an owner that is not
	// asking. Bounded: at most 64 keys a tick.
	for _, key := range reclaim[:min(len(reclaim), 64)] {
		ctx, cancel := ls.a.runContext(ls.a.cfg.RPCTimeout)
		if err := ls.ensureOwned(ctx, key, ls.cfg.DefaultTTL, false); err != nil {
			ls.a.log.Debug("cannot claim a lock key again for its waiters", "key", key, "err", err)
		}
		cancel()
	}
}

func (ls *lockService) renewBatch(keys []promiseKey, claims []*claim) {
	ctx, cancel := ls.a.runContext(ls.a.cfg.RPCTimeout)
	defer cancel()
	sent := ls.a.clock.Now()
	res, err := ls.ask(ctx, keys)
	if err != nil {
		ls.a.metrics.lockRounds.WithLabelValues("renew", "failed").Inc()
		return
	}
	failed := 0
	for i, k := range keys {
		if ok, _ := res.tally(i); ok >= res.need {
			ls.extend(k.Key, claims[i], k.Epoch, sent.Add(ls.cfg.LockDelay))
		} else {
			failed++
		}
	}
	result := "ok"
	if failed > 0 {
		result = "failed"
		ls.a.log.Warn("lock ownership renewal lost the majority on some keys", "keys", failed, "of", len(keys))
	}
	ls.a.metrics.lockRounds.WithLabelValues("renew", result).Inc()
}
