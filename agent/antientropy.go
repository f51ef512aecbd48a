package agent

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/ringleader/ringleader/crdt"
)

// Anti-entropy. Every AntiEntropyInterval this peer (A) picks a random
// alive peer (B) and compares their stores with crdt's digest protocol,
// over three calls:
//
//  1. ae.digest: A sends its top-level digest (64 bucket hashes); B
//     answers with the leaf hashes of the buckets that differ.
//  2. ae.diff: A answers that with the keys and key hashes of its leaves
//     that differ; B finds the exact keys whose states differ and answers
//     with its states of them (at most aeMaxReplyBytes; more = another
//     round); a large level-2 digest goes in parts (aeMaxDigestBytes).
//  3. A merges them, and pushes back (counter.push) only the keys where it
//     holds counts B's answer lacked.
//
// When nothing differs the round costs two small messages (about 600
// bytes); otherwise its bytes follow the keys that differ, not the store's
// size. Keys a round changes on either side are pushed to every peer at
// the next spread, so one round between the two sides of a healed
// partition repairs every peer.

const (
	methodAEDigest = "ae.digest"
	methodAEDiff   = "ae.diff"
	// aeMaxRounds bounds the back-to-back rounds of one tick.
	aeMaxRounds = 64
)

// aeMaxDigestBytes bounds one level-2 digest message (its keys and their
// hashes), well inside a peer RPC frame. A variable for tests.
var aeMaxDigestBytes = 1 << 20

// aeMaxSkip is how many ticks in a row a peer with pushes queued for it
// may be left out of the choice.
const aeMaxSkip = 10

type aeDigestRequest struct {
	Digest []byte `msgpack:"digest"`
}

type aeDigestResponse struct {
	// Digest is the reply digest; empty when nothing differs.
	Digest []byte `msgpack:"digest,omitempty"`
}

// aeDiffResponse answers a level-2 digest with the responder's states of
// the keys that differ, in chunks (each an encoded crdt.State), and the
// differing keys it does not hold. It stops at about aeMaxReplyBytes and
// says More; the next round goes on from there.
type aeDiffResponse struct {
	States  [][]byte `msgpack:"states"`
	Missing []string `msgpack:"missing"`
	More    bool     `msgpack:"more"`
}

// aeMaxReplyBytes bounds the states of one ae.diff answer, well inside a
// peer RPC frame (4 MiB) whatever the keys' sizes.
const aeMaxReplyBytes = 2 << 20

func (a *Agent) handleAEDigest(ctx context.Context, req *aeDigestRequest) (*aeDigestResponse, error) {
	var d crdt.Digest
	if err := d.UnmarshalBinary(req.Digest); err != nil {
		return nil, err
	}
	if d.Level() != 0 {
		return nil, fmt.Errorf("ae.digest wants a level-0 digest, got level %d", d.Level())
	}
	reply, _ := a.ctr.store.CompareDigest(d)
	if reply.IsZero() {
		return &aeDigestResponse{}, nil
	}
	b, err := reply.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return &aeDigestResponse{Digest: b}, nil
}

func (a *Agent) handleAEDiff(ctx context.Context, req *aeDigestRequest) (*aeDiffResponse, error) {
	var d crdt.Digest
	if err := d.UnmarshalBinary(req.Digest); err != nil {
		return nil, err
	}
	if d.Level() != 2 {
		return nil, fmt.Errorf("ae.diff wants a level-2 digest, got level %d", d.Level())
	}
	_, diff := a.ctr.store.CompareDigest(d)
	resp := &aeDiffResponse{}
	size := 0
	for i := 0; i < len(diff); i += stateChunkKeys {
		if size >= aeMaxReplyBytes {
			resp.More = true
			break
		}
		chunk := diff[i:min(i+stateChunkKeys, len(diff))]
		msgs, err := a.ctr.encodeStates(chunk)
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			for _, b := range m {
				size += len(b)
				resp.States = append(resp.States, b)
			}
		}
		for _, k := range chunk {
			if _, err := a.ctr.store.Value(k); errors.Is(err, crdt.ErrNotFound) {
				resp.Missing = append(resp.Missing, k)
				size += len(k)
			}
		}
	}
	return resp, nil
}

// antiEntropyLoop runs a comparison with a random alive peer every
// AntiEntropyInterval until the agent stops. It is counted in a.wg.
func (a *Agent) antiEntropyLoop() {
	defer a.wg.Done()
	skipped := map[string]int{} // by peer: ticks skipped in a row for a backlog
	for {
		// Jitter the interval by ±25% so peers do not all compare at once.
		d := a.cfg.Counters.AntiEntropyInterval
		d = d*3/4 + rand.N(d/2+1)
		t := a.clock.NewTimer(d)
		select {
		case <-t.C():
		case <-a.stop:
			t.Stop()
			return
		}
		// Leave a peer that just came back (a healed partition, a restart),
		// or that this peer still has pushes queued for, to the push queues:
		// they carry what changed meanwhile at no comparison cost; a round
		// afterwards finds what they missed. A peer with a queue that never
		// empties (steady writes) still gets a round every aeMaxSkip
		// intervals.
		peers := a.alivePeers()
		v := a.view.load()
		now := a.clock.Now()
		for name := range peers {
			switch {
			case now.Sub(v.since[name]) < a.cfg.Counters.AntiEntropyInterval:
				delete(peers, name) // just back
			case a.spread.backlog(name) && skipped[name] < aeMaxSkip:
				skipped[name]++
				delete(peers, name)
			}
		}
		for name := range skipped {
			if _, ok := v.RPC[name]; !ok {
				delete(skipped, name)
			}
		}
		if len(peers) == 0 {
			continue
		}
		names := make([]string, 0, len(peers))
		for n := range peers {
			names = append(names, n)
		}
		slices.Sort(names)
		name := names[rand.N(len(names))]
		skipped[name] = 0
		ctx, cancel := context.WithTimeout(context.Background(), 4*a.cfg.RPCTimeout)
		if _, err := a.antiEntropy(ctx, peers[name]); err != nil {
			a.log.Debug("anti-entropy round failed", "peer", name, "err", err)
		}
		cancel()
	}
}

// antiEntropy compares this peer's store with the peer at addr and
// exchanges the keys that differ, in as many rounds as it takes (at most
// aeMaxRounds). It returns the keys repaired on both sides.
func (a *Agent) antiEntropy(ctx context.Context, addr string) (int, error) {
	repaired := 0
	for range aeMaxRounds {
		n, more, err := a.antiEntropyRound(ctx, addr)
		repaired += n
		if err != nil {
			a.metrics.aeRounds.WithLabelValues("error").Inc()
			return repaired, err
		}
		if !more {
			return repaired, nil
		}
	}
	return repaired, nil
}

func (a *Agent) antiEntropyRound(ctx context.Context, addr string) (repaired int, more bool, err error) {
	c := a.ctr
	sent, received := 0, 0
	defer func() {
		a.metrics.aeBytes.WithLabelValues("sent").Add(float64(sent))
		a.metrics.aeBytes.WithLabelValues("received").Add(float64(received))
	}()
	top, err := c.store.Digest().MarshalBinary()
	if err != nil {
		return 0, false, err
	}
	var dresp aeDigestResponse
	sent += len(top)
	if err := a.call(ctx, addr, methodAEDigest, &aeDigestRequest{Digest: top}, &dresp); err != nil {
		return 0, false, err
	}
	received += len(dresp.Digest)
	if len(dresp.Digest) == 0 {
		a.metrics.aeRounds.WithLabelValues("equal").Inc()
		return 0, false, nil
	}
	var leaves crdt.Digest
	if err := leaves.UnmarshalBinary(dresp.Digest); err != nil {
		return 0, false, err
	}
	if leaves.Level() != 1 {
		return 0, false, fmt.Errorf("peer answered ae.digest with a level-%d digest, want 1", leaves.Level())
	}
	keysDigest, _ := c.store.CompareDigest(leaves)
	if keysDigest.IsZero() {
		a.metrics.aeRounds.WithLabelValues("equal").Inc()
		return 0, false, nil
	}
	// A level-2 digest lists every key of the differing leaves: against a
	// peer that lost its data that is the whole store, so it goes in parts
	// of bounded size.
	for _, part := range keysDigest.Split(aeMaxDigestBytes) {
		n, partMore, err := a.aeDiff(ctx, addr, part, &sent, &received)
		repaired += n
		more = more || partMore
		if err != nil {
			return repaired, false, err
		}
	}
	if repaired > 0 {
		a.metrics.aeRounds.WithLabelValues("repaired").Inc()
	} else {
		a.metrics.aeRounds.WithLabelValues("equal").Inc()
	}
	a.metrics.aeKeysRepaired.Add(float64(repaired))
	return repaired, more, nil
}

// aeDiff sends one level-2 digest, merges the states the peer answers with
// and pushes back the keys where this peer holds more. It adds the payload
// bytes to sent and received.
func (a *Agent) aeDiff(ctx context.Context, addr string, part crdt.Digest, sent, received *int) (repaired int, more bool, err error) {
	c := a.ctr
	kb, err := part.MarshalBinary()
	if err != nil {
		return 0, false, err
	}
	var diff aeDiffResponse
	*sent += len(kb)
	if err := a.call(ctx, addr, methodAEDiff, &aeDigestRequest{Digest: kb}, &diff); err != nil {
		return 0, false, err
	}
	// Merge their states; the keys that differ are theirs and the missing
	// ones.
	var keys []string
	theirState := map[string]crdt.PNCounter{}
	for _, b := range diff.States {
		*received += len(b)
		var theirs crdt.State
		if err := theirs.UnmarshalBinary(b); err != nil {
			return repaired, false, err
		}
		for k, pn := range theirs.All() {
			theirState[k] = pn
			keys = append(keys, k)
		}
		changed, err := c.mergeRemote(theirs, false)
		for _, k := range changed {
			c.dirty.add(k)
		}
		repaired += len(changed)
		if err != nil {
			return repaired, false, err
		}
	}
	for _, k := range diff.Missing {
		*received += len(k)
	}
	keys = append(keys, diff.Missing...)
	// Push back the keys where this peer holds more than their answer.
	var back []string
	for _, k := range keys {
		mine, err := c.store.Counter(k)
		if err != nil {
			continue // not held here either
		}
		if t, ok := theirState[k]; !ok || !t.Equal(mine) {
			back = append(back, k)
		}
	}
	msgs, err := c.encodeStates(back)
	if err != nil {
		return repaired, false, err
	}
	for _, m := range msgs {
		var resp pushResponse
		for _, b := range m {
			*sent += len(b)
		}
		if err := a.call(ctx, addr, methodPush, &pushRequest{States: m, Repair: true}, &resp); err != nil {
			return repaired, false, err
		}
		repaired += resp.Changed
	}
	return repaired, diff.More, nil
}

// handOff runs when the peer leaves: it refuses further writes, pushes the
// keys written since the last spread, and runs an anti-entropy comparison
// with every alive peer at once, so every change this peer holds that a
// peer lacks (a push that failed earlier included) reaches it. It logs
// whether a majority of the voters confirmed; it does not block the leave
// beyond ctx.
func (a *Agent) handOff(ctx context.Context) {
	a.ctr.id.Store(nil)
	a.ctr.writing.Lock() // wait for the writes in flight; later ones see no ID
	a.ctr.writing.Unlock()
	a.spreadOnce(ctx)
	peers, total := a.aliveVoters()
	ok, errs := fanOut(peers, 0, func(_, addr string) error {
		_, err := a.antiEntropy(ctx, addr)
		return err
	})
	if ok+1 >= majorityOf(total) {
		a.log.Info("handed counter changes to the peers before leaving", "peers_in_sync", ok, "voters", total)
		return
	}
	a.log.Warn("leaving before a majority of the voters confirmed this peer's counter changes; they spread from the peers that did", "peers_in_sync", ok, "voters", total, "err", firstErr(errs))
}
