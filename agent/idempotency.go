package agent

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/ringleader/ringleader/agent/store"
	"github.com/ringleader/ringleader/ring"
)

// Idempotent writes.
//
// A write with an Idempotency-Key is applied by the ring owner of that
// idempotency key (not of the counter key): whichever peer a client sends
// it to, and whichever it retries through, forwards it there over peer RPC
// (at most maxHops forwards when rings disagree). The owner, holding a
// lock per idempotency key, looks the key up; if it has a record within
// the window it answers the recorded first result (and applies nothing);
// else it applies the increment under its own replica ID and commits the
// record in the same synced pebble batch as the counter, so a crash keeps
// both or neither. Before it answers, it copies the record to the next two
// peers of the key's preference list (durably there too; replicateIdem),
// which own the key if the owner leaves, fails, or a join passes it over.
// On a miss it asks those next two peers, which were its owners before a
// join moved it or hold the copy of the owner before a leave or failure;
// if one of them does not answer, the write is refused (503), since that
// peer may hold the record. Records follow their keys: a peer leaving
// gracefully hands its records to the peers that hold them once it is
// gone (handOffIdem), a starting peer asks the others for the records it
// should hold (pullIdem), and after any ring change the holders copy records
// to the peers that entered their keys' preference lists (moveIdemLoop),
// so joins, leaves (also several at once) and failures of holders within
// the window keep each record on its key's list while one holder lives.
//
// Partitions: when the owner of an idempotency key cannot be reached, the
// write is refused with 503 and not applied (retry later, or drop the key
// to write without the guarantee); writes without a key stay available on
// every side. Where the guarantee ends: while the two sides of a partition
// each see a different owner and neither side holds a copy of the record
// (each side's ring holds only its alive members), a retry through the
// other side is applied again; so is a retry after the owner crashed
// between committing and copying, or after the owner and both copies'
// holders lost their data. A record is kept for IdempotencyWindow.
//
// Storage: each record is the idempotency key, the counter key, the delta
// and the result (under 800 bytes) plus an expiry index entry. Expired
// records are deleted every few seconds, oldest first, so storage follows
// the idempotent write rate times the window; past IdempotencyMaxRecords
// live records new idempotent writes are refused (503) until old ones
// expire, rather than shortening the window.

const (
	methodAdd      = "counter.add"
	methodIdemGet  = "counter.idem-get"
	methodIdemPut  = "counter.idem-put"
	methodIdemPull = "counter.idem-pull"
	// idemCopies is how many peers of an idempotency key's preference
	// list hold its record: the owner and the next two.
	idemCopies = 3
	// maxHops bounds the forwards of one idempotent write.
	maxHops = 3
	// MaxIdempotencyKeyLen is the longest Idempotency-Key, in bytes.
	MaxIdempotencyKeyLen = store.MaxIdempotencyKeyLen
)

// validateIdempotencyKey checks an Idempotency-Key: 1-255 bytes of
// printable ASCII (space to '~'), the same rule for the header and for a
// batch item's idempotency_key, and what the CLI checks. An empty key is
// an error, not "no key": a client that sent one expects its retries to
// apply once.
func validateIdempotencyKey(k string) error {
	switch {
	case k == "":
		return fmt.Errorf("%w: it is empty; give 1 to %d bytes of printable ASCII, or leave it out to write without one", ErrBadIdempotencyKey, MaxIdempotencyKeyLen)
	case len(k) > MaxIdempotencyKeyLen:
		return fmt.Errorf("%w: it is %d bytes, limit %d", ErrBadIdempotencyKey, len(k), MaxIdempotencyKeyLen)
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return fmt.Errorf("%w: byte %d (%#02x) is not printable ASCII", ErrBadIdempotencyKey, i, k[i])
		}
	}
	return nil
}

// idemRecord is what an idempotency record keeps: the request and its
// first result.
type idemRecord struct {
	Key   string `msgpack:"k"`
	Delta int64  `msgpack:"d"`
	Value int64  `msgpack:"v"`
}

// matches reports whether it is the record of item.
func (r idemRecord) matches(it CounterItem) error {
	if r.Key != it.Key || r.Delta != it.Delta {
		return fmt.Errorf("%w: Idempotency-Key %q was first used to add %d to %q within the last window; use a new key for a new request", ErrIdempotencyConflict, it.IdempotencyKey, r.Delta, r.Key)
	}
	return nil
}

// lookupIdem returns the record of an idempotency key: this peer's, or,
// on a miss, one held by the next peers of the key's preference list.
func (a *Agent) lookupIdem(ctx context.Context, idemKey string, now time.Time) (idemRecord, bool, error) {
	c := a.ctr
	raw, ok, err := c.db.GetIdempotency(idemKey, now)
	if err != nil {
		return idemRecord{}, false, err
	}
	if ok {
		var rec idemRecord
		if err := msgpack.Unmarshal(raw, &rec); err != nil {
			return idemRecord{}, false, fmt.Errorf("agent: idempotency record %q is damaged: %w", idemKey, err)
		}
		return rec, true, nil
	}
	v := a.view.load()
	pref, err := v.Ring.Preference(idemKey, idemCopies)
	if err != nil {
		return idemRecord{}, false, nil
	}
	var silent []string
	for _, name := range pref {
		addr := v.RPC[name]
		if name == a.cfg.NodeName || addr == "" {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, a.cfg.RPCTimeout/4)
		var resp idemGetResponse
		err := a.call(cctx, addr, methodIdemGet, &idemGetRequest{Key: idemKey}, &resp)
		cancel()
		if err != nil {
			silent = append(silent, name)
			continue
		}
		if resp.Found {
			return resp.Record, true, nil
		}
	}
	if len(silent) > 0 {
		// It may hold the record (it owned the key, or holds a copy):
		// applying now could apply the write a second time.
		return idemRecord{}, false, fmt.Errorf("%w: cannot tell whether the write with Idempotency-Key %q was already applied: %s, which may hold its record, did not answer; nothing was applied, retry with the same key", ErrUnavailable, idemKey, strings.Join(silent, " and "))
	}
	return idemRecord{}, false, nil
}

// replicateIdem copies the records of writes this peer just applied to
// the other peers of each idempotency key's preference list, which own
// the key after this peer leaves, fails or is passed over by a join, and
// waits (at most a quarter of the RPC timeout) for them to be durable
// there. A copy that does not arrive is sent again by moveIdemLoop, with
// every other record that peer should hold (queueIdemRetry); until then
// the record has fewer holders.
func (a *Agent) replicateIdem(ctx context.Context, puts []idemPut) {
	v := a.view.load()
	byPeer := map[string][]idemPut{}
	for _, p := range puts {
		pref, err := v.Ring.Preference(p.Key, idemCopies)
		if err != nil {
			continue
		}
		for _, name := range pref {
			if name != a.cfg.NodeName && v.RPC[name] != "" {
				byPeer[name] = append(byPeer[name], p)
			}
		}
	}
	if len(byPeer) == 0 {
		return
	}
	// The write is applied: copy its records even if the client gave up.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.RPCTimeout/4)
	defer cancel()
	var wg sync.WaitGroup
	for name, ps := range byPeer {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var resp idemPutResponse
			if err := a.call(cctx, v.RPC[name], methodIdemPut, &idemPutRequest{Records: ps}, &resp); err != nil {
				a.metrics.idemCopyFailures.Add(float64(len(ps)))
				a.log.Debug("cannot copy idempotency records; will try again", "peer", name, "records", len(ps), "err", err)
				a.ctr.queueIdemRetry(name)
			}
		}()
	}
	wg.Wait()
}

// idemPut is one idempotency record sent to be kept as a copy.
type idemPut struct {
	Key    string     `msgpack:"key"` // the idempotency key
	Record idemRecord `msgpack:"record"`
	// TTLMillis is how long the record has left, in milliseconds (peers'
	// clocks differ, so not an expiry time).
	TTLMillis int64 `msgpack:"ttl_ms"`
}

type idemPutRequest struct {
	Records []idemPut `msgpack:"records"`
}

type idemPutResponse struct {
	Stored int `msgpack:"stored"`
}

// handleIdemPut keeps copies of another peer's idempotency records,
// durably, before answering. A key that already has a record here keeps
// it (the first write wins, as on an owner).
func (a *Agent) handleIdemPut(ctx context.Context, req *idemPutRequest) (*idemPutResponse, error) {
	c := a.ctr
	if len(req.Records) > MaxBatchItems {
		return nil, fmt.Errorf("%d idempotency records, at most %d a call", len(req.Records), MaxBatchItems)
	}
	window := a.cfg.Counters.IdempotencyWindow
	for i, p := range req.Records {
		if err := validateIdempotencyKey(p.Key); err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		if err := ValidateKey(p.Record.Key); err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		if p.TTLMillis <= 0 {
			return nil, fmt.Errorf("record %d: %d ms left; want more than 0", i, p.TTLMillis)
		}
		req.Records[i].TTLMillis = min(p.TTLMillis, window.Milliseconds()) // this peer's window bounds what it keeps
	}
	unlock := lockIdem(c, req.Records, func(p idemPut) string { return p.Key })
	defer unlock()
	now := a.clock.Now()
	b := c.db.NewBatch()
	defer b.Close()
	stored := 0
	for _, p := range req.Records {
		_, ok, err := c.db.GetIdempotency(p.Key, now)
		if err != nil {
			return nil, err
		}
		if ok {
			continue
		}
		raw, err := msgpack.Marshal(p.Record)
		if err != nil {
			return nil, err
		}
		if err := b.PutIdempotency(p.Key, raw, now.Add(time.Duration(p.TTLMillis)*time.Millisecond)); err != nil {
			return nil, err
		}
		stored++
	}
	if stored == 0 {
		return &idemPutResponse{}, nil
	}
	if n := c.idemCount.Load(); n+int64(stored) > int64(a.cfg.Counters.IdempotencyMaxRecords) {
		return nil, fmt.Errorf("%w: this peer holds %d idempotency records, its limit", ErrUnavailable, n)
	}
	if err := b.Commit(true); err != nil {
		return nil, commitErr(err)
	}
	c.idemCount.Add(int64(stored))
	return &idemPutResponse{Stored: stored}, nil
}

type idemGetRequest struct {
	Key string `msgpack:"key"`
}

type idemGetResponse struct {
	Found  bool       `msgpack:"found"`
	Record idemRecord `msgpack:"record"`
}

func (a *Agent) handleIdemGet(ctx context.Context, req *idemGetRequest) (*idemGetResponse, error) {
	if err := validateIdempotencyKey(req.Key); err != nil {
		return nil, err
	}
	raw, ok, err := a.ctr.db.GetIdempotency(req.Key, a.clock.Now())
	if err != nil || !ok {
		return &idemGetResponse{}, err
	}
	var rec idemRecord
	if err := msgpack.Unmarshal(raw, &rec); err != nil {
		return nil, err
	}
	return &idemGetResponse{Found: true, Record: rec}, nil
}

// applyIdempotent applies items that all carry idempotency keys this peer
// owns: each is answered from its record when it has one, else applied,
// with its record committed in the same synced batch. It returns the
// results in item order and the keys of every item, replayed or applied:
// a retry of a majority write that was refused must reach the majority
// before it is acknowledged.
func (a *Agent) applyIdempotent(ctx context.Context, items []CounterItem) ([]CounterResult, []string, error) {
	c := a.ctr
	// Lock each idempotency key's stripe for the whole check, apply,
	// commit and copy.
	unlock := lockIdem(c, items, func(it CounterItem) string { return it.IdempotencyKey })
	defer unlock()

	now := a.clock.Now()
	results := make([]CounterResult, len(items))
	var replayed []string
	var fresh []CounterItem
	var freshAt []int
	for i, it := range items {
		rec, ok, err := a.lookupIdem(ctx, it.IdempotencyKey, now)
		if err != nil {
			return nil, nil, err
		}
		if ok {
			if err := rec.matches(it); err != nil {
				return nil, nil, err
			}
			results[i] = CounterResult{Key: it.Key, Value: rec.Value, Replayed: true}
			replayed = append(replayed, it.Key)
			continue
		}
		fresh = append(fresh, it)
		freshAt = append(freshAt, i)
	}
	if len(fresh) == 0 {
		return results, replayed, nil
	}
	if n := c.idemCount.Load(); n+int64(len(fresh)) > int64(a.cfg.Counters.IdempotencyMaxRecords) {
		return nil, nil, fmt.Errorf("%w: this peer holds %d idempotency records, its limit; they expire %v after their write (retry later, or write without an Idempotency-Key)", ErrUnavailable, n, a.cfg.Counters.IdempotencyWindow)
	}
	expires := now.Add(a.cfg.Counters.IdempotencyWindow)
	applied, err := c.applyLocal(fresh, func(res []CounterResult, b *store.Batch) error {
		for j, r := range res {
			raw, err := msgpack.Marshal(idemRecord{Key: r.Key, Delta: fresh[j].Delta, Value: r.Value})
			if err != nil {
				return err
			}
			if err := b.PutIdempotency(fresh[j].IdempotencyKey, raw, expires); err != nil {
				return err
			}
		}
		return nil
	})
	c.idemCount.Add(int64(len(applied)))
	keys := replayed
	puts := make([]idemPut, 0, len(applied))
	ttl := a.cfg.Counters.IdempotencyWindow.Milliseconds()
	for j, r := range applied {
		results[freshAt[j]] = r
		keys = append(keys, r.Key)
		puts = append(puts, idemPut{Key: fresh[j].IdempotencyKey, Record: idemRecord{Key: r.Key, Delta: fresh[j].Delta, Value: r.Value}, TTLMillis: ttl})
	}
	if len(puts) > 0 {
		a.replicateIdem(ctx, puts)
	}
	return results, keys, err
}

// lockIdem locks the stripes of the idempotency keys of xs, in order, and
// returns the unlock.
func lockIdem[T any](c *counters, xs []T, key func(T) string) func() {
	var stripes []int
	for _, x := range xs {
		stripes = append(stripes, int(fnv32(key(x))%uint32(len(c.idemLocks))))
	}
	slices.Sort(stripes)
	stripes = slices.Compact(stripes)
	for _, s := range stripes {
		c.idemLocks[s].Lock()
	}
	return func() {
		for _, s := range stripes {
			c.idemLocks[s].Unlock()
		}
	}
}

// sweepIdempotency deletes expired idempotency records every few seconds
// until the agent stops. It is counted in a.wg.
func (a *Agent) sweepIdempotency() {
	defer a.wg.Done()
	every := min(a.cfg.Counters.IdempotencyWindow/10, 5*time.Second)
	for {
		t := a.clock.NewTimer(every)
		select {
		case <-t.C():
		case <-a.stop:
			t.Stop()
			return
		}
		for range 100 { // at most 100,000 records a sweep
			n, more, err := a.ctr.db.DeleteExpiredIdempotency(a.clock.Now(), 1000)
			a.ctr.idemCount.Add(-int64(n))
			if err != nil {
				a.log.Warn("cannot delete expired idempotency records", "err", err)
				break
			}
			if !more {
				break
			}
		}
		if a.ctr.idemCount.Load() < 0 {
			a.ctr.idemCount.Store(0)
		}
	}
}

// copyIdemRecords sends this peer's live idempotency records to peers
// that should hold them: for each record, targets(key) names them. Each
// peer gets its records in calls of at most MaxBatchItems, durably kept
// there before it answers (handleIdemPut; a peer keeps a record it has).
// It returns how many copies arrived, the peers a call failed to (they
// get no more calls this time), and the first error.
func (a *Agent) copyIdemRecords(ctx context.Context, rpc map[string]string, targets func(key string) []string) (int, map[string]bool, error) {
	now := a.clock.Now()
	pending := map[string][]idemPut{}
	failed := map[string]bool{}
	sent := 0
	var firstErr error
	flush := func(name string) {
		ps := pending[name]
		delete(pending, name)
		if len(ps) == 0 || failed[name] {
			return
		}
		var resp idemPutResponse
		if err := a.call(ctx, rpc[name], methodIdemPut, &idemPutRequest{Records: ps}, &resp); err != nil {
			failed[name] = true
			a.metrics.idemCopyFailures.Add(float64(len(ps)))
			if firstErr == nil {
				firstErr = fmt.Errorf("copying %d idempotency records to %s: %w", len(ps), name, err)
			}
			return
		}
		sent += len(ps)
	}
	var to []string
	err := a.ctr.db.ScanIdempotency(now, func(key string, value []byte, expires time.Time) bool {
		ttl := expires.Sub(now).Milliseconds()
		if ttl <= 0 {
			return true
		}
		to = to[:0]
		for _, name := range targets(key) {
			if name != a.cfg.NodeName && rpc[name] != "" && !failed[name] {
				to = append(to, name)
			}
		}
		if len(to) == 0 {
			return ctx.Err() == nil // most records, after a ring change: decode only those to send
		}
		var rec idemRecord
		if msgpack.Unmarshal(value, &rec) != nil {
			return true // a damaged record stays here; its own reads report it
		}
		for _, name := range to {
			pending[name] = append(pending[name], idemPut{Key: key, Record: rec, TTLMillis: ttl})
			if len(pending[name]) == MaxBatchItems {
				flush(name)
			}
		}
		return ctx.Err() == nil
	})
	for name := range pending {
		flush(name)
	}
	if err == nil {
		err = firstErr
	}
	return sent, failed, err
}

// handOffIdem, on a graceful leave, copies this peer's idempotency
// records to the peers that hold them once it is gone: the first
// idemCopies of each key's preference list without this peer.
func (a *Agent) handOffIdem(ctx context.Context) {
	v := a.view.load()
	sent, _, err := a.copyIdemRecords(ctx, v.RPC, func(key string) []string {
		pref, _ := v.Ring.Preference(key, idemCopies+1)
		pref = slices.DeleteFunc(pref, func(n string) bool { return n == a.cfg.NodeName })
		return pref[:min(len(pref), idemCopies)]
	})
	if err != nil {
		a.log.Warn("leave: not every idempotency record was handed off; retries of those may apply again", "copies", sent, "err", err)
		return
	}
	a.log.Debug("leave: idempotency records handed off", "copies", sent)
}

// queueIdemMove asks moveIdemLoop to copy the idempotency records this
// peer holds to the peers that their keys' preference lists name now but
// did not in old, the ring before the change (if old is not nil), and to
// peer for (if not ""), wherever the list names it.
func (c *counters) queueIdemMove(old *ring.Ring, peer string) {
	c.idemMoveMu.Lock()
	if c.idemMoveFrom == nil {
		c.idemMoveFrom = old // the oldest ring not yet compared
	}
	if peer != "" {
		if c.idemMoveFor == nil {
			c.idemMoveFor = map[string]bool{}
		}
		c.idemMoveFor[peer] = true
	}
	c.idemMoveMu.Unlock()
	c.kickIdemMove()
}

// queueIdemRetry asks moveIdemLoop to copy peer, after a back-off, every
// record its keys' preference lists name it for: a copy to it failed.
func (c *counters) queueIdemRetry(peer string) {
	c.idemMoveMu.Lock()
	if c.idemRetryFor == nil {
		c.idemRetryFor = map[string]bool{}
	}
	c.idemRetryFor[peer] = true
	c.idemMoveMu.Unlock()
	c.kickIdemMove()
}

func (c *counters) kickIdemMove() {
	select {
	case c.idemMoveKick <- struct{}{}:
	default:
	}
}

// moveIdemLoop keeps each idempotency record on the peers its key's
// preference list names as the ring changes (queueIdemMove): after a ring
// change it copies every record this peer holds to the peers of its
// key's list that were not on it before. So peers that join a key's list
// get its record, and when holders leave or fail, those that remain copy
// it to the peers that take their places. A retry that reaches a peer
// before its copy does may still apply again.
//
// A peer that a copy failed to (here or in replicateIdem) and that is
// still on the ring gets all its records again after a back-off: 1 s,
// doubling to 30 s while the copies keep failing. One that leaves the
// ring is dropped: the ring change moves its records to its successors.
// It is counted in a.wg.
func (a *Agent) moveIdemLoop() {
	defer a.wg.Done()
	const minBackoff, maxBackoff = time.Second, 30 * time.Second
	backoff := minBackoff
	var retry Timer // armed while there are peers to retry
	var retryC <-chan time.Time
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	for {
		retryNow := false
		select {
		case <-a.ctr.idemMoveKick:
		case <-retryC:
			retry, retryC, retryNow = nil, nil, true
		case <-a.stop:
			return
		}
		a.ctr.idemMoveMu.Lock()
		from, forPeers := a.ctr.idemMoveFrom, a.ctr.idemMoveFor
		a.ctr.idemMoveFrom, a.ctr.idemMoveFor = nil, nil
		v := a.view.load()
		for name := range a.ctr.idemRetryFor {
			if v.RPC[name] == "" {
				delete(a.ctr.idemRetryFor, name) // off the ring: its successors get the records
			} else if retryNow {
				if forPeers == nil {
					forPeers = map[string]bool{}
				}
				forPeers[name] = true
				delete(a.ctr.idemRetryFor, name)
			}
		}
		waiting := len(a.ctr.idemRetryFor) > 0
		a.ctr.idemMoveMu.Unlock()
		if waiting && retry == nil {
			retry = a.clock.NewTimer(backoff)
			retryC = retry.C()
		}
		if (from == nil && len(forPeers) == 0) || v.Ring == nil {
			if retryNow {
				backoff = minBackoff // what failed is off the ring now
			}
			continue
		}
		ctx, cancel := a.runContext(5 * a.cfg.RPCTimeout)
		var before []string
		sent, failed, err := a.copyIdemRecords(ctx, v.RPC, func(key string) []string {
			var pref []string
			pref, before = idemMoveTargets(v.Ring, from, forPeers, key, before)
			return pref
		})
		cancel()
		if err != nil {
			a.log.Warn("not every idempotency record reached the peers its key's preference list names now; will try again while they are on the ring; until then retries through them may apply again", "copies", sent, "err", err)
		} else if sent > 0 {
			a.log.Debug("idempotency records copied", "copies", sent)
		}
		switch {
		case len(failed) > 0:
			for name := range failed {
				a.ctr.queueIdemRetry(name)
			}
			if retryNow {
				backoff = min(2*backoff, maxBackoff)
			}
		case retryNow:
			backoff = minBackoff
		}
	}
}

// idemMoveTargets names the peers moveIdemLoop copies key's record to:
// those of its preference list on cur that forPeers names, and, if from
// (the ring before a change) is not nil, those that are on the list now
// but were not on from's. scratch is reused for from's list and returned.
func idemMoveTargets(cur, from *ring.Ring, forPeers map[string]bool, key string, scratch []string) (targets, _ []string) {
	pref, _ := cur.Preference(key, idemCopies)
	scratch = scratch[:0]
	if from != nil {
		scratch, _ = from.AppendPreference(scratch, key, idemCopies)
	}
	return slices.DeleteFunc(pref, func(n string) bool {
		return !forPeers[n] && (from == nil || slices.Contains(scratch, n))
	}), scratch
}

// idemPullRequest asks a peer to copy its idempotency records to Name
// wherever their keys' preference lists name it: sent by a peer that has
// just started, which may have lost its records (an empty data dir) with
// no ring change to bring them back.
type idemPullRequest struct {
	Name string `msgpack:"name"`
}

type idemPullResponse struct{}

// handleIdemPull queues the copies for moveIdemLoop and answers at once.
func (a *Agent) handleIdemPull(ctx context.Context, req *idemPullRequest) (*idemPullResponse, error) {
	if a.view.load().RPC[req.Name] == "" || req.Name == a.cfg.NodeName {
		return nil, fmt.Errorf("%q is not another member of this peer's ring", req.Name)
	}
	a.ctr.queueIdemMove(nil, req.Name)
	return &idemPullResponse{}, nil
}

// pullIdem asks every other peer of v to copy this peer the idempotency
// records it should hold (handleIdemPull); once, when it first sees the
// others after it starts. It is counted in a.wg.
func (a *Agent) pullIdem(v *View) {
	defer a.wg.Done()
	ctx, cancel := a.runContext(a.cfg.RPCTimeout)
	defer cancel()
	for name, addr := range v.RPC {
		if name == a.cfg.NodeName || addr == "" {
			continue
		}
		var resp idemPullResponse
		if err := a.call(ctx, addr, methodIdemPull, &idemPullRequest{Name: a.cfg.NodeName}, &resp); err != nil {
			a.log.Debug("cannot ask a peer for the idempotency records this peer should hold", "peer", name, "err", err)
		}
	}
}
