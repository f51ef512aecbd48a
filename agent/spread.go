package agent

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/hashicorp/serf/serf"

	"github.com/ringleader/ringleader/crdt"
)

// Spreading counter writes.
//
// Every SpreadInterval the keys written on this peer since the last round
// are pushed, as their current state, to every alive peer over peer RPC,
// in one message per peer (more when they exceed messageBytes); a peer that is
// failed or cut off has its keys queued until it is back (at most
// maxPending). Why direct pushes
// rather than serf user events or random fan-out: user events are capped
// at about 512 bytes a message and are re-broadcast by every member
// (O(N) copies per event), and a random fan-out needs re-gossip by the
// receivers, which costs more messages than it saves below a few dozen
// peers; a direct push reaches every peer in one hop, one RPC per peer
// per round however many keys changed, so with 5 peers a write is on every
// peer within one interval plus a round trip. Receivers do not push
// further. Each peer has at most one push in flight; keys for a slow peer
// wait for it, so one unreachable peer delays no one else. What pushes
// miss (a queue dropped or lost in a restart, a message lost) anti-entropy
// (antientropy.go) repairs, shipping only what differs.

const (
	methodPush   = "counter.push"
	methodStates = "counter.states"
)

type pushRequest struct {
	// States are encoded crdt.States (see encodeStates).
	States [][]byte `msgpack:"states"`
	// Sync asks the receiver to have the state on disk before answering
	// (a consistency=majority write).
	Sync bool `msgpack:"sync"`
	// Repair marks the push back of an anti-entropy round: the receiver
	// spreads the keys it changes to every peer, as the sender does.
	Repair bool `msgpack:"repair,omitempty"`
}

type pushResponse struct {
	Changed int `msgpack:"changed"`
}

type statesRequest struct {
	Keys []string `msgpack:"keys"`
}

type statesResponse struct {
	State []byte `msgpack:"state"`
}

func (a *Agent) handlePush(ctx context.Context, req *pushRequest) (*pushResponse, error) {
	// Decode everything first: a bad message merges nothing.
	sts := make([]crdt.State, len(req.States))
	for i, b := range req.States {
		if err := sts[i].UnmarshalBinary(b); err != nil {
			return nil, err
		}
	}
	total := 0
	for i, st := range sts {
		// Only the last merge needs to sync: it syncs everything before.
		changed, err := a.ctr.mergeRemote(st, req.Sync && i == len(sts)-1)
		if err != nil {
			return nil, err
		}
		total += len(changed)
		if req.Repair {
			for _, k := range changed {
				a.ctr.dirty.add(k)
			}
		}
	}
	return &pushResponse{Changed: total}, nil
}

// Messages carry states in chunks of at most stateChunkKeys keys and
// stateChunkBytes bytes (a chunk over it is halved), packed up to
// messageBytes a message, so no message nears the peer RPC frame limit
// (4 MiB) whatever the keys' sizes and replica counts.
const (
	stateChunkKeys  = 256
	stateChunkBytes = 512 << 10
	messageBytes    = 2 << 20
)

// encodeStates encodes the states of keys this peer holds, grouped into
// messages (each a list of encoded crdt.States).
func (c *counters) encodeStates(keys []string) ([][][]byte, error) {
	var chunks [][]byte
	var encode func(keys []string) error
	encode = func(keys []string) error {
		b, err := c.store.States(keys).MarshalBinary()
		if err != nil {
			return err
		}
		if len(b) > stateChunkBytes && len(keys) > 1 {
			if err := encode(keys[:len(keys)/2]); err != nil {
				return err
			}
			return encode(keys[len(keys)/2:])
		}
		chunks = append(chunks, b)
		return nil
	}
	for chunk := range slices.Chunk(keys, stateChunkKeys) {
		if err := encode(chunk); err != nil {
			return nil, err
		}
	}
	var msgs [][][]byte
	size := 0
	for _, ch := range chunks {
		if len(msgs) == 0 || size+len(ch) > messageBytes {
			msgs = append(msgs, nil)
			size = 0
		}
		msgs[len(msgs)-1] = append(msgs[len(msgs)-1], ch)
		size += len(ch)
	}
	return msgs, nil
}

func (a *Agent) handleStates(ctx context.Context, req *statesRequest) (*statesResponse, error) {
	if len(req.Keys) > stateChunkKeys {
		return nil, fmt.Errorf("asked for %d keys, at most %d", len(req.Keys), stateChunkKeys)
	}
	b, err := a.ctr.store.States(req.Keys).MarshalBinary()
	if err != nil {
		return nil, err
	}
	return &statesResponse{State: b}, nil
}

// spreadLoop pushes the dirty keys every SpreadInterval until the agent
// stops. It is counted in a.wg.
func (a *Agent) spreadLoop() {
	defer a.wg.Done()
	sp := a.spread
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for {
		t := a.clock.NewTimer(a.cfg.Counters.SpreadInterval)
		select {
		case <-t.C():
		case <-a.stop:
			t.Stop()
			cancel()
			sp.wg.Wait()
			return
		}
		sp.round(ctx)
	}
}

// spreader sends each alive peer the keys written here, with at most one
// push in flight per peer: a slow or unreachable peer collects its keys
// until its push ends, and delays no one else.
type spreader struct {
	a  *Agent
	wg sync.WaitGroup

	// mu guards peers and drained.
	mu    sync.Mutex
	peers map[string]*peerQueue
	// drained says the last round left every queue empty and nothing has
	// been queued since: a round with no dirty keys then has nothing to
	// do and returns at once instead of walking every member (with 200
	// peers, idle rounds cost 7% of the simulation's CPU).
	drained bool
}

type peerQueue struct {
	busy    bool
	pending map[string]struct{}
}

// backlog reports whether keys written here are queued or on their way to
// the peer name.
func (sp *spreader) backlog(name string) bool {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	q := sp.peers[name]
	return q != nil && (q.busy || len(q.pending) > 0)
}

// maxPending bounds the keys queued for one peer that is down or cut off;
// past it the queue is dropped and anti-entropy repairs that peer.
const maxPending = 200_000

// round takes the dirty keys, queues them for every peer member that has
// not left (alive or not: a peer that is failed or cut off gets its queue
// when it is back, so a partition heals by pushes of what changed), and
// starts a push to each alive peer that has none in flight. With no dirty
// keys and every queue empty it returns at once.
func (sp *spreader) round(ctx context.Context) {
	a := sp.a
	keys := a.ctr.dirty.take()
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if len(keys) == 0 && sp.drained {
		return
	}
	members := a.identityPeers() // name -> RPC address, "" unless alive
	alive := a.alivePeers()
	sp.drained = true
	for name, q := range sp.peers {
		if _, ok := members[name]; !ok && !q.busy {
			delete(sp.peers, name) // left, or forgotten
		}
	}
	for name := range members {
		q := sp.peers[name]
		if q == nil {
			q = &peerQueue{pending: map[string]struct{}{}}
			sp.peers[name] = q
		}
		for _, k := range keys {
			q.pending[k] = struct{}{}
		}
		if len(q.pending) > maxPending {
			a.log.Debug("dropping the push queue of a peer that is away; anti-entropy will repair it", "peer", name, "keys", len(q.pending))
			q.pending = map[string]struct{}{}
		}
		addr, ok := alive[name]
		if !ok || q.busy || len(q.pending) == 0 {
			if len(q.pending) > 0 {
				sp.drained = false
			}
			continue
		}
		batch := make([]string, 0, len(q.pending))
		for k := range q.pending {
			batch = append(batch, k)
		}
		clear(q.pending)
		slices.Sort(batch)
		q.busy = true
		sp.wg.Add(1)
		go func() {
			defer sp.wg.Done()
			cctx, cancel := context.WithTimeout(ctx, a.cfg.RPCTimeout)
			_, errs := a.pushKeys(cctx, batch, false, map[string]string{name: addr}, 0)
			cancel()
			sp.mu.Lock()
			q.busy = false
			if len(errs) > 0 && len(q.pending)+len(batch) <= maxPending {
				// Keep them for the next try; a push that did reach the
				// peer costs a duplicate, which merges away.
				for _, k := range batch {
					q.pending[k] = struct{}{}
				}
				sp.drained = false
			}
			sp.mu.Unlock()
			if len(errs) > 0 {
				a.log.Debug("push failed; will retry while the peer is a member", "peer", name, "keys", len(batch), "err", errs[0])
			}
		}()
	}
}

// spreadOnce pushes the keys written since the last spread round to every
// alive peer, waiting for the answers, and returns how many peers took
// them all. Leave uses it; the loop uses spreader.
func (a *Agent) spreadOnce(ctx context.Context) int {
	keys := a.ctr.dirty.take()
	if len(keys) == 0 {
		return 0
	}
	slices.Sort(keys)
	ok, _ := a.pushKeys(ctx, keys, false, a.alivePeers(), 0)
	return ok
}

// alivePeers returns the RPC address of every alive ring member but this
// peer.
func (a *Agent) alivePeers() map[string]string {
	v := a.view.load()
	out := make(map[string]string, len(v.RPC))
	for name, addr := range v.RPC {
		if name != a.cfg.NodeName && addr != "" {
			out[name] = addr
		}
	}
	return out
}

// pushKeys sends the current state of keys to each of peers and returns
// how many took all of it, and one error per peer that failed. With
// enough > 0 it returns as soon as that many did; the calls still running
// end with ctx.
func (a *Agent) pushKeys(ctx context.Context, keys []string, sync bool, peers map[string]string, enough int) (int, []error) {
	if len(peers) == 0 {
		return 0, nil
	}
	msgs, err := a.ctr.encodeStates(keys)
	if err != nil {
		return 0, []error{err}
	}
	return fanOut(peers, enough, func(name, addr string) error {
		for _, m := range msgs {
			var resp pushResponse
			if err := a.call(ctx, addr, methodPush, &pushRequest{States: m, Sync: sync}, &resp); err != nil {
				return err
			}
		}
		a.metrics.deltasSent.Add(float64(len(keys)))
		return nil
	})
}

// fanOut runs fn for every peer at once and returns how many succeeded and
// the errors of the others, each naming its peer. With enough > 0 it
// returns as soon as that many succeeded; the calls still running finish
// on their own (fn must end with its context).
func fanOut(peers map[string]string, enough int, fn func(name, addr string) error) (int, []error) {
	results := make(chan error, len(peers))
	for name, addr := range peers {
		go func() {
			if err := fn(name, addr); err != nil {
				results <- fmt.Errorf("%s: %w", name, err)
				return
			}
			results <- nil
		}()
	}
	ok := 0
	var errs []error
	for range peers {
		if err := <-results; err != nil {
			errs = append(errs, err)
			continue
		}
		if ok++; enough > 0 && ok >= enough {
			break
		}
	}
	return ok, errs
}

// voters returns the peers that count for a counter majority: every
// role=peer member that has not left, failed ones included (else the
// minority side of a partition, having marked the others failed, would
// count itself a majority), this peer, and every member of the committed
// voter set (a voter serf reaped or has not heard of yet still counts).
// The union is never a smaller majority than either list.
func (a *Agent) voters() []string {
	out := []string{a.cfg.NodeName}
	if ls, err := a.lockService(); err == nil {
		out = append(out, ls.acceptor.voterSet().Members...)
	}
	if s, err := a.serfOrErr(); err == nil {
		for _, m := range s.Members() {
			if m.Tags[TagRole] == RolePeer && m.Status != serf.StatusLeft {
				out = append(out, m.Name)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// majorityOf returns the strict majority of n voters.
func majorityOf(n int) int { return n/2 + 1 }

// alive voters other than self, with their RPC addresses.
func (a *Agent) aliveVoters() (peers map[string]string, total int) {
	voters := a.voters()
	alive := a.alivePeers()
	peers = make(map[string]string)
	for _, name := range voters {
		if addr, ok := alive[name]; ok {
			peers[name] = addr
		}
	}
	return peers, len(voters)
}

// majorityPeers returns the alive voters but this peer, the number of
// voters, and how many of the alive ones a strict majority needs besides
// this peer; ErrNoMajority, its message ending in hint, when too few are
// alive.
func (a *Agent) majorityPeers(hint string) (peers map[string]string, total, need int, err error) {
	peers, total = a.aliveVoters()
	need = majorityOf(total) - 1
	if len(peers) < need {
		return nil, total, need, fmt.Errorf("%w: only %d of %d voters are alive, %d needed%s", ErrNoMajority, len(peers)+1, total, need+1, hint)
	}
	return peers, total, need, nil
}

// replicateMajority pushes keys, synced, to the alive voters until a strict
// majority of the voters (this peer included, which already holds them
// durably) have them on disk.
func (a *Agent) replicateMajority(ctx context.Context, keys []string) error {
	peers, total, need, err := a.majorityPeers("; the increment was applied and made durable on this peer and will spread when the others are back")
	if err != nil || need == 0 {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.Counters.MajorityTimeout)
	defer cancel()
	ok, errs := a.pushKeys(ctx, keys, true, peers, need)
	if ok >= need {
		return nil
	}
	return fmt.Errorf("%w: %d of %d voters confirmed they hold it (%d needed, waited at most %v; %v); the increment was applied and made durable on this peer and will spread from there", ErrNoMajority, ok+1, total, need+1, a.cfg.Counters.MajorityTimeout, firstErr(errs))
}

// readMajority merges the states of keys held by a strict majority of the
// voters into this peer's store.
func (a *Agent) readMajority(ctx context.Context, keys []string) error {
	peers, total, need, err := a.majorityPeers(" for a majority read; read with consistency=local for this peer's value")
	if err != nil || need == 0 {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.Counters.MajorityTimeout)
	defer cancel()
	ok, errs := fanOut(peers, need, func(name, addr string) error {
		var resp statesResponse
		if err := a.call(ctx, addr, methodStates, &statesRequest{Keys: keys}, &resp); err != nil {
			return err
		}
		var st crdt.State
		if err := st.UnmarshalBinary(resp.State); err != nil {
			return err
		}
		_, err := a.ctr.mergeRemote(st, false)
		return err
	})
	if ok >= need {
		return nil
	}
	return fmt.Errorf("%w: %d of %d voters answered (%d needed, waited at most %v; %v); read with consistency=local for this peer's value", ErrNoMajority, ok+1, total, need+1, a.cfg.Counters.MajorityTimeout, firstErr(errs))
}

func firstErr(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return errs[0]
}
