package simulation

import (
	"context"
	"errors"
	"fmt"
	"github.com/ringleader/ringleader/ring"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ringleader/ringleader/agent"
)

// Lock workload shape (scenario time unless said otherwise).
const (
	// LockPrefix starts every lock key the workload uses.
	LockPrefix = "sim/lock/"
	// busyPercent of the acquires go to the busy key (the first), which
	// the first peer owns when the workload first starts.
	busyPercent = 50
	// maxLockThink is the most a lock client waits between two holds.
	maxLockThink = 200 * time.Millisecond
)

// hangGrace is how long past its deadline a lock request may go
// unanswered before the client reports it hung.
const hangGrace = 5 * time.Second

var (
	errPeerStopped = errors.New("the peer stopped while the request was in flight (connection lost)")
	errHung        = errors.New("hung: the agent ignored the request's context")
)

// lockWorkload runs the lock clients. Its methods are called by the run's
// step loop only.
type lockWorkload struct {
	r    *run
	rngs []*rand.Rand
	// keys are the lock keys, picked when the workload first starts.
	keys []string
	ttl  time.Duration
	stop chan struct{}
	// stopped ends with stop: it cuts short the acquires waiting in a
	// queue, so that a stop does not wait for them.
	stopped context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	// holds counts each client's holds (each client's own, kept across
	// stop and start).
	holds []int
}

func newLockWorkload(r *run) *lockWorkload {
	w := &lockWorkload{r: r, ttl: r.cfg.lockConfig().DefaultTTL, holds: make([]int, r.cfg.LockClients)}
	for c := range r.cfg.LockClients {
		// Streams apart from the counter clients' (1..Clients).
		w.rngs = append(w.rngs, rand.New(rand.NewPCG(r.cfg.Seed, 1<<32+uint64(c))))
	}
	return w
}

// pickKeys chooses the lock keys so that the running peers (in name order)
// each own one, as far as the keys go: key i is the first candidate
// sim/lock/<j> that the ring names the i-th running peer's; so the first
// key, the busy one, is owned by n1 when n1 runs, and a crash of any of
// the first peers takes a key's owner down. With no ring yet it takes
// sim/lock/0 … in order. Ring placement depends only on peer names, so
// the same scenario picks the same keys.
func (w *lockWorkload) pickKeys() {
	if w.keys != nil {
		return
	}
	n := w.r.cfg.LockKeys
	ps, as := w.r.c.Running()
	// The ring of the running peers, built from their names (not from an
	// agent's view, which may not have seen every peer yet).
	var rg *ring.Ring
	if len(as) > 0 {
		members := make([]ring.Member, len(ps))
		for i, p := range ps {
			members[i] = ring.Member{Name: p.Name, Weight: 1}
		}
		slices.SortFunc(members, func(a, b ring.Member) int { return strings.Compare(a.Name, b.Name) })
		rg, _ = ring.New(members, ring.Config{VNodes: as[0].View().Ring.VNodes()})
	}
	used := map[string]bool{}
	for i := range n {
		key := ""
		if rg != nil {
			want := ps[i%len(ps)].Name
			for j := 0; j < 1000 && key == ""; j++ {
				cand := fmt.Sprintf("%s%d", LockPrefix, j)
				if o, err := rg.Owner(cand); err == nil && o == want && !used[cand] {
					key = cand
				}
			}
		}
		for j := i; key == ""; j++ {
			if cand := fmt.Sprintf("%s%d", LockPrefix, j); !used[cand] {
				key = cand
			}
		}
		used[key] = true
		w.keys = append(w.keys, key)
	}
}

func (w *lockWorkload) start() {
	if w.stop != nil || len(w.rngs) == 0 {
		return
	}
	w.pickKeys()
	w.stop = make(chan struct{})
	w.stopped, w.cancel = context.WithCancel(context.Background())
	for c, rng := range w.rngs {
		w.wg.Add(1)
		go w.client(c, rng, w.stop)
	}
}

func (w *lockWorkload) stopAndWait() {
	if w.stop == nil {
		return
	}
	close(w.stop)
	w.cancel()
	w.wg.Wait()
	w.stop = nil
}

// sleep waits d or until stop; it reports whether d passed.
func sleepOrStop(d time.Duration, stop <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-stop:
		return false
	case <-t.C:
		return true
	}
}

// client acquires a key (waiting up to a TTL for it) through a random
// peer, holds it for up to 3/4 of a TTL, renewing through random peers
// every TTL/3, releases it through a random peer, thinks, and again. The
// key, the peer, how long to hold and think come from the client's source
// in a fixed order; the peers of a hold's renews and release from a source
// of that hold's own: so the same seed sends the same requests whatever
// was granted or refused.
func (w *lockWorkload) client(c int, rng *rand.Rand, stop <-chan struct{}) {
	defer w.wg.Done()
	r := w.r
	peers := r.sc.Peers
	think := r.cfg.scale(maxLockThink)
	for {
		select {
		case <-stop:
			return
		default:
		}
		key := w.keys[0]
		if rng.IntN(100) >= busyPercent && len(w.keys) > 1 {
			key = w.keys[1+rng.IntN(len(w.keys)-1)]
		}
		peer := peers[rng.IntN(len(peers))]
		holdFor := time.Duration(rng.Int64N(int64(w.ttl) * 3 / 4))
		pause := time.Duration(rng.Int64N(int64(think) + 1))
		w.holds[c]++
		hold := w.holds[c]
		hrng := rand.New(rand.NewPCG(r.cfg.Seed, 1<<48|uint64(c)<<24|uint64(hold)))
		pick := func() string { return peers[hrng.IntN(len(peers))] }
		g, ok := w.do(c, hold, "acquire", key, peer, "")
		if !ok && !sleepOrStop(w.backoff(hold), stop) {
			return
		}
		if ok {
			end := time.Now().Add(holdFor)
			for ok {
				left := time.Until(end)
				if left <= 0 {
					break
				}
				every := max(time.Duration(g.TTL.Seconds()/3*float64(time.Second)), 10*time.Millisecond)
				if !sleepOrStop(min(left, every), stop) {
					break
				}
				if time.Until(end) <= 0 {
					break
				}
				_, ok = w.do(c, hold, "renew", key, pick(), g.Lease)
			}
			// Release even a lease whose renew failed: it may still be
			// live (an ambiguous renew) and the answer tells.
			w.do(c, hold, "release", key, pick(), g.Lease)
		}
		if !sleepOrStop(pause, stop) {
			return
		}
	}
}

// backoff is how long a client waits after a refused acquire, as a real
// client told "retry later" would: an eighth to a quarter of the
// lock-delay, in wall time (the agent's epochs follow the wall clock
// whatever the speed, and each promise round that fails uses one; a
// client hammering a contested key would use them up). It varies with the
// hold number, not a random draw, so that the seeded sequence of requests
// does not depend on which acquires were refused.
func (w *lockWorkload) backoff(hold int) time.Duration {
	ld := w.r.cfg.lockConfig().LockDelay
	return ld/8 + time.Duration(uint64(hold)*2654435761%1000)*(ld/8)/1000
}

// do sends one lock request and records it.
func (w *lockWorkload) do(c, hold int, op, key, name, lease string) (agent.LockGrant, bool) {
	r := w.r
	lo := LockOp{Client: c, Hold: hold, Op: op, Key: key, Peer: name, Start: r.h.now()}
	p, err := r.c.Peer(name)
	if err != nil {
		return agent.LockGrant{}, false
	}
	a, gen, down := p.connect()
	if a == nil {
		lo.End, lo.Answer, lo.Err = r.h.now(), LockDown, "peer is "+p.State().String()
		r.h.addLockOp(lo)
		return agent.LockGrant{}, false
	}
	wait := time.Duration(0)
	if op == "acquire" {
		wait = w.ttl
	}
	timeout := wait + r.requestTimeout
	type answer struct {
		g   agent.LockGrant
		err error
	}
	// The call runs apart, as a request over a connection would: the
	// client stops listening when the peer stops (a crash drops the
	// connection) or long after the deadline (a hang, reported).
	ch := make(chan answer, 1)
	parent := context.Background()
	if op == "acquire" {
		parent = w.stopped // renews and releases finish what they began
	}
	go func() {
		ctx, cancel := context.WithTimeout(parent, timeout)
		defer cancel()
		var a2 answer
		switch op {
		case "acquire":
			a2.g, a2.err = a.AcquireLock(ctx, key, agent.LockRequest{TTL: w.ttl, Wait: wait, Holder: fmt.Sprintf("c%d/h%d", c, hold)})
		case "renew":
			a2.g, a2.err = a.RenewLock(ctx, key, lease, w.ttl)
		case "release":
			a2.err = a.ReleaseLock(ctx, key, lease)
		}
		ch <- a2
	}()
	var res answer
	hang := time.NewTimer(timeout + hangGrace)
	defer hang.Stop()
	select {
	case res = <-ch:
	case <-down:
		// A crashed peer's call may never return (a real crash ends it):
		// give it a moment to answer, then hang up.
		select {
		case res = <-ch:
		case <-time.After(100 * time.Millisecond):
			res.err = errPeerStopped
		}
	case <-hang.C:
		res.err = fmt.Errorf("%w: no answer %v after the request's %v deadline", errHung, hangGrace, timeout)
	}
	g, err := res.g, res.err
	lo.End = r.h.now()
	lo.Answer = lockAnswer(err, p.gen.Load() != gen)
	if errors.Is(err, errHung) {
		lo.Answer = LockHung
	}
	if err != nil {
		lo.Err = err.Error()
	}
	if err == nil && op != "release" {
		lo.Token, lo.Lease, lo.Owner, lo.TTL = g.Token, g.Lease, g.Owner, g.TTL.Seconds()
	}
	r.h.addLockOp(lo)
	return g, err == nil
}

// lockAnswer classifies a lock request's error. An answer that came (err
// nil) is what the owner did, even if the peer asked crashed since: the
// owner answered before the crash cut the reply. A timeout, or a forward
// that got no answer, may have taken effect.
func lockAnswer(err error, crashed bool) LockAnswer {
	var held *agent.LockHeldError
	switch {
	case err == nil:
		return LockOK
	case errors.As(err, &held):
		return LockHeld
	case errors.Is(err, agent.ErrNoQuorum):
		return LockNoQuorum
	case errors.Is(err, agent.ErrUnknownLease):
		return LockUnknownLease
	case errors.Is(err, agent.ErrBadLock):
		return LockBad
	case crashed, errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		// The peer asked forwarded it and the owner did not answer: it may
		// have granted or released, unless the connection to it could not
		// even be made (the agent wraps the RPC error as text).
		errors.Is(err, agent.ErrUnavailable) && strings.Contains(err.Error(), "did not answer") && !neverSent(err):
		return LockAmbiguous
	case errors.Is(err, agent.ErrUnavailable), errors.Is(err, agent.ErrNotReady), errors.Is(err, agent.ErrNotStarted):
		return LockUnavailable
	default:
		return LockAmbiguous
	}
}

// neverSent reports whether a forward failed while dialing the owner.
func neverSent(err error) bool {
	m := err.Error()
	return strings.Contains(m, "peer unreachable: dial ") || strings.Contains(m, "call timed out: dial ")
}

// ownedKeys returns the lock keys peer name owns in its own ring view.
func (w *lockWorkload) ownedKeys(name string) []string {
	p, err := w.r.c.Peer(name)
	if err != nil {
		return nil
	}
	a, _ := p.Agent()
	if a == nil {
		return nil
	}
	var out []string
	for _, k := range w.keys {
		if o, err := a.View().Ring.Owner(k); err == nil && o == name {
			out = append(out, k)
		}
	}
	return slices.Clip(out)
}
