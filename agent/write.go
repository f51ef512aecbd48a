package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/ringleader/ringleader/agent/peerrpc"
	"github.com/ringleader/ringleader/crdt"
)

// MaxBatchItems bounds the items of one counter batch.
const MaxBatchItems = 10000

// Add applies items (one for a single increment, many for a batch) and
// returns each item's new value, in order. Items without an idempotency
// key are applied on this peer in one durable commit; items with one go
// to the ring owner of their key (idempotency.go). With Majority, Add
// returns only once a strict majority of the voters hold every applied
// item durably, else ErrNoMajority (the items are still applied).
//
// An item crdt refuses (its count or value would leave its range) stops
// the batch there with ErrBadDelta: the items before it were applied.
func (a *Agent) Add(ctx context.Context, items []CounterItem, cons Consistency) ([]CounterResult, error) {
	if a.ctr == nil {
		return nil, ErrNotStarted
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("%w: no items", ErrBadBatch)
	}
	if len(items) > MaxBatchItems {
		return nil, fmt.Errorf("%w: %d items, at most %d a batch", ErrBadBatch, len(items), MaxBatchItems)
	}
	if err := validateItems(items); err != nil {
		return nil, err
	}
	var seen map[string]bool
	for i, it := range items {
		if it.IdempotencyKey == "" || len(items) == 1 {
			continue
		}
		if seen == nil {
			seen = map[string]bool{}
		}
		if seen[it.IdempotencyKey] {
			return nil, fmt.Errorf("%w: item %d repeats Idempotency-Key %q within one batch", ErrBadIdempotencyKey, i, it.IdempotencyKey)
		}
		seen[it.IdempotencyKey] = true
	}
	return a.add(ctx, items, cons, 0)
}

// add routes items: idempotent ones by their key's owner, the rest here.
// Each destination (plain items here, idempotent items this peer owns,
// each other owner) takes its items in one commit; destinations go in the
// order of their first item, so a batch that writes a key twice sees its
// items applied in order wherever both go to one place. An item refused
// for overflow stops the items after it that are not applied yet; the
// results say which were (a zero result was not).
func (a *Agent) add(ctx context.Context, items []CounterItem, cons Consistency, hops int) ([]CounterResult, error) {
	if len(items) == 1 && items[0].IdempotencyKey == "" && cons == Local {
		return a.ctr.applyLocal(items, nil) // the hot path: one plain local write
	}
	v := a.view.load()
	const plainDest, mineDest = "\x00plain", "\x00mine" // not member names
	type group struct {
		dest  string // plainDest, mineDest or the owner's name
		items []CounterItem
		at    []int
	}
	var groups []*group // in the order of their first item
	byDest := map[string]*group{}
	for i, it := range items {
		dest := plainDest
		if it.IdempotencyKey != "" {
			dest = mineDest
			if owner, err := v.Ring.Owner(it.IdempotencyKey); err == nil && owner != a.cfg.NodeName && hops < maxHops {
				dest = owner
			}
		}
		g := byDest[dest]
		if g == nil {
			g = &group{dest: dest}
			byDest[dest] = g
			groups = append(groups, g)
		}
		g.items, g.at = append(g.items, it), append(g.at, i)
	}

	results := make([]CounterResult, len(items))
	var keys []string
	var errs []error
	cut := len(items) // items from here on are not to be applied
	for _, g := range groups {
		if g.at[0] >= cut {
			break
		}
		if n := sort.SearchInts(g.at, cut); n < len(g.at) {
			g.items, g.at = g.items[:n], g.at[:n]
		}
		var res []CounterResult
		var err error
		switch g.dest {
		case plainDest:
			res, err = a.ctr.applyLocal(g.items, nil)
			for _, r := range res {
				keys = append(keys, r.Key)
			}
		case mineDest:
			var applied []string
			res, applied, err = a.applyIdempotent(ctx, g.items)
			keys = append(keys, applied...)
		default:
			res, err = a.forwardAdd(ctx, v, g.dest, g.items, cons, hops+1)
		}
		for j, r := range res { // also with ErrNoMajority: applied at the owner
			results[g.at[j]] = r
		}
		if err == nil {
			continue
		}
		errs = append(errs, err)
		if errors.Is(err, ErrBadDelta) { // overflow: stop at the first item not applied
			for j := range g.items {
				if j >= len(res) || res[j].Key == "" {
					cut = g.at[j]
					break
				}
			}
		}
	}
	if len(errs) == 0 && cons == Majority && len(keys) > 0 {
		if err := a.replicateMajority(ctx, keys); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return results, errs[0]
	}
	return results, nil
}

type addRequest struct {
	Items       []CounterItem `msgpack:"items"`
	Consistency int           `msgpack:"cons"`
	Hops        int           `msgpack:"hops"`
	// Partial says the caller reads addResponse.NoMajority: a majority
	// write the owner applied but no majority confirmed comes back with
	// its results. A caller without it (an older peer) gets the error
	// alone, as it would otherwise take the results for a success.
	Partial bool `msgpack:"partial,omitempty"`
}

type addResponse struct {
	Results []CounterResult `msgpack:"results"`
	// States are the owner's states of the keys it applied (encoded
	// crdt.States, left out past messageBytes): the forwarding peer merges
	// them, so a read there right after includes the write. The answer
	// itself is the owner's value, the one a retry replays.
	States [][]byte `msgpack:"states,omitempty"`
	// NoMajority, when set, is the owner's ErrNoMajority message: the
	// items were applied there (Results) but not confirmed by a majority.
	NoMajority string `msgpack:"nomaj,omitempty"`
	// Failed, when set, is the owner's error for a call that applied only
	// some items (an item refused for overflow stops the ones after it):
	// Results holds those applied, zero for the others. FailedCode is its
	// peer RPC error code.
	Failed     string `msgpack:"failed,omitempty"`
	FailedCode string `msgpack:"failcode,omitempty"`
}

// forwardAdd sends idempotent items to the owner of their keys.
func (a *Agent) forwardAdd(ctx context.Context, v *View, owner string, items []CounterItem, cons Consistency, hops int) ([]CounterResult, error) {
	addr := v.RPC[owner]
	var resp addResponse
	err := a.call(ctx, addr, methodAdd, &addRequest{Items: items, Consistency: int(cons), Hops: hops, Partial: true}, &resp)
	if err != nil {
		return nil, fromRemote(err, owner)
	}
	if len(resp.Results) != len(items) {
		return nil, fmt.Errorf("agent: peer %s answered %d results for %d items", owner, len(resp.Results), len(items))
	}
	// The owner applied what Results holds, and says why not more.
	var partial error
	if resp.NoMajority != "" {
		partial = ownerError(remoteCode(ErrNoMajority), resp.NoMajority, owner)
	}
	if resp.Failed != "" {
		partial = ownerError(resp.FailedCode, resp.Failed, owner)
	}
	for _, b := range resp.States {
		var st crdt.State
		if err := st.UnmarshalBinary(b); err != nil {
			break // keep the owner's values
		}
		if _, err := a.ctr.mergeRemote(st, false); err != nil {
			break
		}
	}
	return resp.Results, partial
}

func (a *Agent) handleAdd(ctx context.Context, req *addRequest) (*addResponse, error) {
	if err := validateItems(req.Items); err != nil {
		return nil, toRemote(err)
	}
	cons := Local
	if req.Consistency == int(Majority) {
		cons = Majority
	}
	res, err := a.add(ctx, req.Items, cons, req.Hops)
	resp := &addResponse{Results: res}
	switch {
	case err != nil && req.Partial && errors.Is(err, ErrNoMajority) && len(res) == len(req.Items):
		resp.NoMajority = err.Error()
	case err != nil && req.Partial && len(res) == len(req.Items) && slices.ContainsFunc(res, func(r CounterResult) bool { return r.Key != "" }):
		resp.Failed, resp.FailedCode = err.Error(), remoteCode(err)
	case err != nil:
		return nil, toRemote(err)
	}
	var keys []string
	for _, r := range res {
		if !r.Replayed {
			keys = append(keys, r.Key)
		}
	}
	if msgs, err := a.ctr.encodeStates(keys); err == nil && len(msgs) == 1 {
		resp.States = msgs[0]
	}
	return resp, nil
}

// remoteCodeOf is the peer RPC error code of a counter error.
type remoteCodeOf struct {
	code string
	err  error
}

// Error codes that carry the counter errors over peer RPC.
var remoteCodes = []remoteCodeOf{
	{"bad_key", ErrBadKey},
	{"bad_delta", ErrBadDelta},
	{"not_ready", ErrNotReady},
	{"no_majority", ErrNoMajority},
	{"idempotency_conflict", ErrIdempotencyConflict},
	{"unavailable", ErrUnavailable},
}

// remoteCode is the code that carries err's kind over peer RPC ("" for
// none).
func remoteCode(err error) string {
	for _, rc := range remoteCodes {
		if errors.Is(err, rc.err) {
			return rc.code
		}
	}
	return ""
}

func toRemote(err error) error {
	if code := remoteCode(err); code != "" {
		return peerrpc.WithCode(code, err)
	}
	return err
}

// ownerError is the error an owner sent with code and msg, as this peer
// passes it on.
func ownerError(code, msg, owner string) error {
	for _, rc := range remoteCodes {
		if code == rc.code {
			return &remoteError{is: rc.err, msg: fmt.Sprintf("%s (at peer %s, the owner of the Idempotency-Key)", msg, owner)}
		}
	}
	return fmt.Errorf("agent: peer %s: %s", owner, msg)
}

// fromRemote turns a forwarded call's failure into the agent's error.
func fromRemote(err error, owner string) error {
	var re *peerrpc.RemoteError
	if errors.As(err, &re) {
		if !slices.ContainsFunc(remoteCodes, func(rc remoteCodeOf) bool { return rc.code == re.Code }) {
			return fmt.Errorf("agent: peer %s: %w", owner, err)
		}
		return ownerError(re.Code, re.Message, owner)
	}
	return fmt.Errorf("%w: peer %s owns the Idempotency-Key and cannot be reached (%v); the write was not applied unless %s got it before that. A retry with the same key applies it at most once if it reaches %s; one that reaches another owner (a partition splits the ring) applies it again", ErrUnavailable, owner, err, owner, owner)
}

// remoteError is a peer's error as this peer passes it on: its message
// (which already names the error) and the sentinel errors.Is matches.
type remoteError struct {
	is  error
	msg string
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.is }

// Value returns key's value. With Majority it first merges the state of
// key held by a strict majority of the voters, so a write acknowledged
// with Majority anywhere is in the answer.
func (a *Agent) Value(ctx context.Context, key string, cons Consistency) (int64, error) {
	if a.ctr == nil {
		return 0, ErrNotStarted
	}
	if err := ValidateKey(key); err != nil {
		return 0, err
	}
	if cons == Majority {
		if err := a.readMajority(ctx, []string{key}); err != nil {
			return 0, err
		}
	}
	return a.ctr.value(key)
}

// CounterEntry is one counter of a listing. For a key whose merged value
// is outside int64, Value is nil and Error says so.
type CounterEntry struct {
	Key   string `json:"key"`
	Value *int64 `json:"value,omitempty"`
	Error string `json:"error,omitempty"`
}

// ListCounters returns up to limit counters whose key starts with prefix
// and sorts after after, in byte order, and the key to pass as after for
// the next page ("" when there is none).
func (a *Agent) ListCounters(prefix, after string, limit int) ([]CounterEntry, string, error) {
	if a.ctr == nil {
		return nil, "", ErrNotStarted
	}
	keys, more := a.ctr.store.Keys(prefix, after, limit)
	out := make([]CounterEntry, 0, len(keys))
	for _, k := range keys {
		e := CounterEntry{Key: k}
		if v, err := a.ctr.store.Value(k); errors.Is(err, crdt.ErrValueOverflow) {
			e.Error = fmt.Sprintf("value out of int64 range: its writers together hold %s; %s", a.ctr.overflowed(k), a.ctr.overflowRepair(k))
		} else {
			e.Value = &v
		}
		out = append(out, e)
	}
	next := ""
	if more && len(keys) > 0 {
		next = keys[len(keys)-1]
	}
	return out, next, nil
}
