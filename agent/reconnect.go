package agent

import (
	"math/rand/v2"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/serf/serf"
)

// Reconnecting to failed members while a heal is under way.
//
// serf retries a failed member with probability failed/alive per
// ReconnectInterval, so that the whole cluster tries each failed member
// about once an interval. Right after a partition heals every peer has
// half the cluster failed and tries one each interval; but once most
// members are back, a peer left holding a few stale "failed" (it missed
// the refutation that gossip spread) tries them with probability 1/199 an
// interval at 200 peers, and waits for a push-pull instead: measured with
// 200 simulated peers healing from halves, the last stale entries took
// 10-20 s to clear after the rest had agreed.
//
// So while members are coming back (one returned from failed within the
// last healWindow intervals), this peer also syncs with one failed peer
// member each ReconnectInterval, with the probability serf leaves out
// (1 - failed/alive): together about one attempt an interval per peer, as
// at the start of a heal. The sync is memberlist's push-pull: the failed
// member learns what this peer holds against it and refutes, and this
// peer learns its newer incarnation. When no member has come back for a
// while, it stops: a member that is really down costs nothing more than
// serf's own retries.

// healWindow is how many reconnect intervals after the last return the
// extra reconnects go on.
const healWindow = 20

// noteReturns records when a member that was failed in before is alive in
// after. Called by watchMembers only.
func (a *Agent) noteReturns(before, after []serf.Member) {
	failed := make(map[string]bool)
	for _, m := range before {
		if m.Status == serf.StatusFailed {
			failed[m.Name] = true
		}
	}
	if len(failed) == 0 {
		return
	}
	for _, m := range after {
		if m.Status == serf.StatusAlive && failed[m.Name] {
			a.lastReturn.Store(a.clock.Now().UnixNano())
			return
		}
	}
}

// healReconnectLoop runs the extra reconnects until the agent stops. It is
// counted in a.wg.
func (a *Agent) healReconnectLoop() {
	defer a.wg.Done()
	every := a.cfg.Timings.ReconnectInterval
	for {
		t := a.clock.NewTimer(every)
		select {
		case <-t.C():
		case <-a.stop:
			t.Stop()
			return
		}
		last := a.lastReturn.Load()
		if last == 0 || a.clock.Now().Sub(time.Unix(0, last)) > healWindow*every {
			continue
		}
		s, err := a.serfOrErr()
		if err != nil || s.State() != serf.SerfAlive {
			continue // not started, or leaving: a join would undo the leave
		}
		if addr, ok := pickFailedPeer(s.Members(), a.cfg.NodeName, rand.Float64(), rand.N[int]); ok {
			if _, err := s.Memberlist().Join([]string{addr}); err != nil {
				a.log.Debug("reconnect to a failed member during a heal failed", "addr", addr, "err", err)
			}
		}
	}
}

// pickFailedPeer picks, with probability 1 - failed/alive (what serf's own
// reconnect leaves out), one failed peer member and returns its gossip
// address: roll is uniform in [0, 1), pick(n) uniform in [0, n).
func pickFailedPeer(members []serf.Member, self string, roll float64, pick func(int) int) (string, bool) {
	var failed []serf.Member
	alive := 0
	for _, m := range members {
		switch {
		case m.Name == self:
		case m.Status == serf.StatusAlive:
			alive++
		case m.Status == serf.StatusFailed && m.Tags[TagRole] == RolePeer:
			failed = append(failed, m)
		}
	}
	if len(failed) == 0 || alive == 0 || roll < float64(len(failed))/float64(alive) {
		return "", false
	}
	m := failed[pick(len(failed))]
	return net.JoinHostPort(m.Addr.String(), strconv.Itoa(int(m.Port))), true
}
