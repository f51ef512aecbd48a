package agent

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/ringleader/ringleader/agent/store"
	"github.com/ringleader/ringleader/crdt"
)

// Meta values the counter service keeps in the store.
const (
	// incarnationMeta is this peer's replica incarnation (8 bytes,
	// big-endian), written synced before the first write under it.
	incarnationMeta = "incarnation"
	// bootMeta counts this data dir's starts; it is the crdt store's
	// Instance, so a cursor never outlives a restart.
	bootMeta = "boot"
)

// openCounters opens the store (on disk in DataDir/store, or in memory
// without a data dir), restores the counters from it and prepares the
// counter service. The replica identity is settled later (settleIdentity).
func (a *Agent) openCounters() error {
	scfg := store.DefaultConfig()
	scfg.Logger = a.log
	scfg.FS = a.cfg.StoreFS
	dir := filepath.Join(a.cfg.DataDir, "store")
	if a.cfg.DataDir == "" {
		scfg.FS, dir = vfs.NewMem(), "store"
	}
	if scfg.FS == nil {
		scfg.WALMinSyncInterval = a.cfg.StoreMinSyncInterval // real fsyncs only
	}
	db, err := store.Open(dir, scfg)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	a.mu.Lock()
	a.db = db
	a.mu.Unlock()

	boot, err := metaUint(db, bootMeta)
	if err != nil {
		return err
	}
	boot++
	b := db.NewBatch()
	b.PutMeta(bootMeta, binary.BigEndian.AppendUint64(nil, boot))
	if err := b.Commit(true); err != nil {
		return fmt.Errorf("agent: recording the start in %s: %w", dir, err)
	}
	ccfg := crdt.DefaultConfig()
	ccfg.Instance = boot
	cs, err := crdt.New(ccfg)
	if err != nil {
		return err
	}
	start := time.Now()
	n, err := db.LoadCounters(cs)
	if err != nil {
		return fmt.Errorf("agent: loading counters: %w", err)
	}
	idem, err := db.CountIdempotency()
	if err != nil {
		return fmt.Errorf("agent: counting idempotency records: %w", err)
	}
	if n >= 100_000 {
		// Loading leaves garbage of about the store's own size; give it
		// back to the OS now rather than after the next GC cycles, so a
		// restarted peer's memory is its live data (about 250 MB at
		// 1,000,000 keys, BenchmarkRestartMillionKeys).
		debug.FreeOSMemory()
	}
	c := &counters{a: a, store: cs, db: db, idemMoveKick: make(chan struct{}, 1)}
	c.idemCount.Store(int64(idem))
	a.ctr = c
	a.log.Info("counters loaded", "keys", n, "idempotency_records", idem, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// metaUint reads an 8-byte meta value; absent reads 0.
func metaUint(db *store.DB, name string) (uint64, error) {
	v, ok, err := db.GetMeta(name)
	if err != nil {
		return 0, fmt.Errorf("agent: reading %s: %w", name, err)
	}
	if !ok {
		return 0, nil
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("agent: %w: meta value %s has %d bytes, want 8 (move the data dir aside to start afresh)", store.ErrCorrupt, name, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// Identity check (the rule is in crdt's package documentation). Before its
// first write the peer asks every peer member that has not left for what
// it holds of this peer's replica, and keeps its incarnation only if its
// data dir had one, every such peer answered, none holds a higher count of
// it, and none knows a higher incarnation of its name. Otherwise it takes a
// new incarnation above every one reported and at least the current time
// in nanoseconds, synced to disk before the first write. Taking a new
// incarnation is always safe (the old counts keep counting); keeping one
// that a peer holds higher counts of would swallow the next increments.

const methodIdentity = "counter.identity"

type identityRequest struct {
	Node        string `msgpack:"node"`
	Incarnation uint64 `msgpack:"inc"`
}

type identityResponse struct {
	// Counts is the encoded crdt.ReplicaCounts of the asked replica.
	Counts []byte `msgpack:"counts"`
	// MaxIncarnation is the highest incarnation of the node the peer has
	// seen; Known says whether it has seen any.
	MaxIncarnation uint64 `msgpack:"max_inc"`
	Known          bool   `msgpack:"known"`
}

func (a *Agent) handleIdentity(ctx context.Context, req *identityRequest) (*identityResponse, error) {
	r, err := crdt.NewReplicaID(req.Node, req.Incarnation)
	if err != nil {
		return nil, err
	}
	counts, err := a.ctr.store.ReplicaCounts(r).MarshalBinary()
	if err != nil {
		return nil, err
	}
	maxInc, known := a.ctr.store.MaxIncarnation(req.Node)
	return &identityResponse{Counts: counts, MaxIncarnation: maxInc, Known: known}, nil
}

// settleIdentity decides this peer's replica ID and opens counter writes.
// wait says whether peers may still turn up (a join is under way): it then
// waits for one, up to IdentityTimeout. It runs once, at Start or in the
// background after the join.
func (a *Agent) settleIdentity(ctx context.Context, wait bool) error {
	c := a.ctr
	ctx, cancel := context.WithTimeout(ctx, a.cfg.Counters.IdentityTimeout)
	defer cancel()
	stored, err := metaUint(c.db, incarnationMeta)
	if err != nil {
		return err
	}
	if wait {
		a.waitForPeers(ctx)
	}
	peers := a.identityPeersNow()
	keep := stored != 0
	reason := "fresh data dir"
	if !keep && a.cfg.DataDir == "" {
		reason = "no data dir"
	}
	highest, _ := c.store.MaxIncarnation(a.cfg.NodeName)
	if keep && wait && len(peers) == 0 {
		keep, reason = false, "no peer could be reached to confirm it"
	}
	type answer struct {
		name string
		resp identityResponse
		err  error
	}
	answers := make(chan answer, len(peers))
	for name, addr := range peers {
		go func() {
			var resp identityResponse
			err := errors.New("failed, not alive")
			if addr != "" {
				err = a.call(ctx, addr, methodIdentity, &identityRequest{Node: a.cfg.NodeName, Incarnation: stored}, &resp)
			}
			answers <- answer{name, resp, err}
		}()
	}
	var mine crdt.ReplicaCounts
	if keep {
		id, err := crdt.NewReplicaID(a.cfg.NodeName, stored)
		if err != nil {
			return err
		}
		mine = c.store.ReplicaCounts(id)
	}
	for range peers {
		ans := <-answers
		if ans.err != nil {
			if keep {
				keep, reason = false, fmt.Sprintf("peer %s could not be asked (%v)", ans.name, ans.err)
			}
			continue
		}
		if ans.resp.Known && ans.resp.MaxIncarnation > highest {
			highest = ans.resp.MaxIncarnation
		}
		if !keep {
			continue
		}
		if ans.resp.Known && ans.resp.MaxIncarnation > stored {
			keep, reason = false, fmt.Sprintf("peer %s knows a later incarnation %d", ans.name, ans.resp.MaxIncarnation)
			continue
		}
		var theirs crdt.ReplicaCounts
		if err := theirs.UnmarshalBinary(ans.resp.Counts); err != nil {
			keep, reason = false, fmt.Sprintf("peer %s answered badly: %v", ans.name, err)
			continue
		}
		behind, err := mine.Behind(theirs)
		if err != nil || len(behind) > 0 {
			keep, reason = false, fmt.Sprintf("peer %s holds higher counts of it in %d keys (a rolled-back data dir, or writes lost in a crash)", ans.name, len(behind))
		}
	}
	inc := stored
	if !keep {
		inc = max(uint64(a.clock.Now().UnixNano()), highest+1, stored+1)
		b := c.db.NewBatch()
		b.PutMeta(incarnationMeta, binary.BigEndian.AppendUint64(nil, inc))
		if err := b.Commit(true); err != nil {
			return fmt.Errorf("agent: recording the new incarnation: %w", err)
		}
		a.log.Info("took a new replica incarnation", "incarnation", inc, "previous", stored, "why", reason)
	} else {
		a.log.Info("kept replica incarnation", "incarnation", inc, "peers_asked", len(peers))
	}
	id, err := crdt.NewReplicaID(a.cfg.NodeName, inc)
	if err != nil {
		return err
	}
	c.id.Store(&id)
	return nil
}

// identityPeers returns the peer members (role=peer, not left, not self)
// with their RPC address, empty for members that are not alive, as of the
// current view (rebuilt on every member event, like the ring). The map is
// shared: do not modify it. The spread loop asks for it every round (20
// times a second by default), and building it from serf's members each
// time cost 200 simulated peers a fifth of two cores.
func (a *Agent) identityPeers() map[string]string {
	return a.view.load().peers
}

// identityPeersNow is identityPeers read from serf right now, for the
// settling of this peer's identity, which runs once and must not miss a
// member whose event the view has not taken in yet.
func (a *Agent) identityPeersNow() map[string]string {
	s, err := a.serfOrErr()
	if err != nil {
		return nil
	}
	return peerAddrs(s.Members(), a.cfg.NodeName)
}

// waitForPeers returns once serf knows another peer member or ctx ends.
func (a *Agent) waitForPeers(ctx context.Context) {
	for !a.hasOtherAlive() {
		t := a.clock.NewTimer(50 * time.Millisecond)
		select {
		case <-t.C():
		case <-ctx.Done():
			t.Stop()
			return
		case <-a.stop:
			t.Stop()
			return
		}
	}
}
