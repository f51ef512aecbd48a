package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/hashicorp/serf/serf"
)

// knownPeersFile lists the gossip addresses of the members last seen alive,
// so a restarted peer rejoins by itself.
//
// Serf's own snapshot is meant to do this, but it buffers its writes and
// flushes only when a later line is appended more than 500 ms after the last
// flush; a peer killed (kill -9) in a quiet cluster loses the members it
// joined, and restarts alone (seen in the end-to-end test, 2 runs in 5). This
// file is rewritten (temp file, fsync, rename) whenever the set changes.
const knownPeersFile = "known-peers.json"

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

// saveKnownPeers writes addrs to the data dir durably.
func saveKnownPeers(dir string, addrs []string) error {
	b, err := json.Marshal(knownPeers{Addrs: addrs})
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, knownPeersFile+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, knownPeersFile)); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// loadKnownPeers reads the list; a missing file is an empty list.
func loadKnownPeers(dir string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(dir, knownPeersFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var kp knownPeers
	if err := json.Unmarshal(b, &kp); err != nil {
		return nil, fmt.Errorf("%s is damaged (%v); delete it and restart with --join", filepath.Join(dir, knownPeersFile), err)
	}
	return kp.Addrs, nil
}

// recordKnownPeers saves the alive members when they changed since the last
// save. Called from the member-watching goroutine only.
func (a *Agent) recordKnownPeers(members []serf.Member, last []string) []string {
	a.mu.Lock()
	running := a.state == running
	a.mu.Unlock()
	if a.cfg.DataDir == "" || !running {
		return last
	}
	addrs := aliveAddrs(members, a.cfg.NodeName)
	if len(addrs) == 0 || slices.Equal(addrs, last) {
		// An empty set is not saved: a peer that saw everyone fail should
		// still try them when it restarts.
		return last
	}
	if err := saveKnownPeers(a.cfg.DataDir, addrs); err != nil {
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
