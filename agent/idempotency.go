package agent

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/ringleader/ringleader/agent/store"
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
// both or neither. On a miss it first asks the next two peers of the key's
// preference list, which were its owners before a join moved it.
//
// Partitions: when the owner of an idempotency key cannot be reached, the
// write is refused with 503 and not applied (retry later, or drop the key
// to write without the guarantee); writes without a key stay available on
// every side. Where the guarantee ends: while the two sides of a partition
// each see a different owner (each side's ring holds only its alive
// members), a retry through the other side is applied again; so is a retry
// after the owner crashed between committing and answering (its successor
// has no record). A record is kept for IdempotencyWindow.
//
// Storage: each record is the idempotency key, the counter key, the delta
// and the result (under 800 bytes) plus an expiry index entry. Expired
// records are deleted every few seconds, oldest first, so storage follows
// the idempotent write rate times the window; past IdempotencyMaxRecords
// live records new idempotent writes are refused (503) until old ones
// expire, rather than shortening the window.

const (
	methodAdd     = "counter.add"
	methodIdemGet = "counter.idem-get"
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
	pref, err := v.Ring.Preference(idemKey, 3)
	if err != nil {
		return idemRecord{}, false, nil
	}
	for _, name := range pref {
		addr := v.RPC[name]
		if name == a.cfg.NodeName || addr == "" {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, a.cfg.RPCTimeout/4)
		var resp idemGetResponse
		err := a.call(cctx, addr, methodIdemGet, &idemGetRequest{Key: idemKey}, &resp)
		cancel()
		if err == nil && resp.Found {
			return resp.Record, true, nil
		}
	}
	return idemRecord{}, false, nil
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
	// Lock each idempotency key's stripe, in order, for the whole check,
	// apply and commit.
	var stripes []int
	for _, it := range items {
		stripes = append(stripes, int(fnv32(it.IdempotencyKey)%uint32(len(c.idemLocks))))
	}
	slices.Sort(stripes)
	stripes = slices.Compact(stripes)
	for _, s := range stripes {
		c.idemLocks[s].Lock()
	}
	defer func() {
		for _, s := range stripes {
			c.idemLocks[s].Unlock()
		}
	}()

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
	for j, r := range applied {
		results[freshAt[j]] = r
		keys = append(keys, r.Key)
	}
	return results, keys, err
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
