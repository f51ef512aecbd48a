package agent

import (
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strconv"

	"github.com/hashicorp/serf/serf"

	"github.com/ringleader/ringleader/agent/store"
)

// knownPeersMeta names the store's meta value listing the gossip addresses
// of the members last seen alive, so a restarted peer rejoins by itself.
//
// Serf's own snapshot is meant to do this, but it buffers its writes and
// flushes only when a later line is appended more than 500 ms after the last
// flush; a peer killed (kill -9) in a quiet cluster loses the members it
// joined, and restarts alone (seen in the end-to-end test, 2 runs in 5). The
// list is rewritten, synced, whenever the alive set changes.
const knownPeersMeta = "known-peers"

type knownPeers struct {
	Addrs []string `json:"addrs"`
}

// aliveAddrs returns the sorted gossip addresses of the alive members other
// than self.
func aliveAddrs(members []serf.Member, self string) []string {
	var addrs []string
	for _, m := range members {
		if m.Name == self || m.Status != serf.StatusAlive {
			continue
		}
		addrs = append(addrs, net.JoinHostPort(m.Addr.String(), strconv.Itoa(int(m.Port))))
	}
	slices.Sort(addrs)
	return addrs
}

// saveKnownPeers writes addrs to the store, synced.
func saveKnownPeers(db *store.DB, addrs []string) error {
	b, err := json.Marshal(knownPeers{Addrs: addrs})
	if err != nil {
		return err
	}
	batch := db.NewBatch()
	defer batch.Close()
	if err := batch.PutMeta(knownPeersMeta, b); err != nil {
		return err
	}
	return batch.Commit(true)
}

// loadKnownPeers reads the list; none saved is an empty list.
func loadKnownPeers(db *store.DB) ([]string, error) {
	b, ok, err := db.GetMeta(knownPeersMeta)
	if err != nil || !ok {
		return nil, err
	}
	var kp knownPeers
	if err := json.Unmarshal(b, &kp); err != nil {
		return nil, fmt.Errorf("agent: the known peers saved in %s are damaged (%v); restart with --join", db.Dir(), err)
	}
	return kp.Addrs, nil
}

// recordKnownPeers saves the alive members when they changed since the last
// save. Called from the member-watching goroutine only.
func (a *Agent) recordKnownPeers(members []serf.Member, last []string) []string {
	a.mu.Lock()
	running, db := a.state == running, a.db
	a.mu.Unlock()
	if db == nil || !running {
		return last
	}
	addrs := aliveAddrs(members, a.cfg.NodeName)
	if len(addrs) == 0 || slices.Equal(addrs, last) {
		// An empty set is not saved: a peer that saw everyone fail should
		// still try them when it restarts.
		return last
	}
	if err := saveKnownPeers(db, addrs); err != nil {
		a.log.Warn("cannot save known peers; a restart may need --join", "err", err)
		return last
	}
	return addrs
}

// hasOtherAlive reports whether serf sees any alive member besides this peer
// (or the agent has stopped: nothing left to join for).
func (a *Agent) hasOtherAlive() bool {
	s, err := a.serfOrErr()
	if err != nil {
		return true
	}
	return len(aliveAddrs(s.Members(), a.cfg.NodeName)) > 0
}
