package simulation

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/ringleader/ringleader/agent"
)

// Workload shape: each client picks a peer of the scenario, a key and a
// delta from its own seeded source, so the same seed sends the same
// requests in the same order whatever the timing.
const (
	// majorityPercent of the writes ask for consistency=majority.
	majorityPercent = 25
	// decrEvery: key k<i> with i%decrEvery == decrEvery-1 only ever gets
	// decrements, the others only increments, so the checker can tell a
	// lost write from a doubled one.
	decrEvery = 5
	// maxDelta bounds the size of one write.
	maxDelta = 5
	// maxThink is the most a client waits between two writes (scenario
	// time).
	maxThink = 40 * time.Millisecond
	// KeyPrefix starts every key the workload writes.
	KeyPrefix = "sim/"
)

// workload runs the counter clients between start and stop. Its methods
// are called by the run's step loop only.
type workload struct {
	r *run
	// rngs are the clients' sources, kept across stop and start so the
	// sequence of requests continues.
	rngs []*rand.Rand
	stop chan struct{}
	wg   sync.WaitGroup
}

func newWorkload(r *run) *workload {
	w := &workload{r: r}
	for c := range r.cfg.Clients {
		w.rngs = append(w.rngs, rand.New(rand.NewPCG(r.cfg.Seed, uint64(c)+1)))
	}
	return w
}

// start starts the clients unless they run.
func (w *workload) start() {
	if w.stop != nil {
		return
	}
	w.stop = make(chan struct{})
	for c, rng := range w.rngs {
		w.wg.Add(1)
		go w.client(c, rng, w.stop)
	}
}

// stopAndWait stops the clients and waits for their requests in flight
// (each bounded by its timeout).
func (w *workload) stopAndWait() {
	if w.stop == nil {
		return
	}
	close(w.stop)
	w.wg.Wait()
	w.stop = nil
}

func (w *workload) client(c int, rng *rand.Rand, stop <-chan struct{}) {
	defer w.wg.Done()
	r := w.r
	peers := r.sc.Peers
	think := r.cfg.scale(maxThink)
	for {
		select {
		case <-stop:
			return
		default:
		}
		name := peers[rng.IntN(len(peers))]
		ki := rng.IntN(r.cfg.Keys)
		key := fmt.Sprintf("%sk%d", KeyPrefix, ki)
		delta := 1 + rng.Int64N(maxDelta)
		if ki%decrEvery == decrEvery-1 {
			delta = -delta
		}
		cons := agent.Local
		if rng.IntN(100) < majorityPercent {
			cons = agent.Majority
		}
		wait := time.Duration(rng.Int64N(int64(think) + 1))
		w.do(c, name, key, delta, cons)
		t := time.NewTimer(wait)
		select {
		case <-stop:
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// do sends one write and records it.
func (w *workload) do(c int, name, key string, delta int64, cons agent.Consistency) {
	r := w.r
	op := Op{Client: c, Peer: name, Key: key, Delta: delta, Consistency: cons.String(), Start: r.h.now()}
	p, err := r.c.Peer(name)
	if err != nil {
		return // names come from the scenario, which the cluster was made from
	}
	a, gen := p.Agent()
	if a == nil {
		op.End, op.Outcome, op.Err = r.h.now(), Failed, "peer is "+p.State().String()
		r.h.addOp(op)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.requestTimeout)
	res, err := a.Add(ctx, []agent.CounterItem{{Key: key, Delta: delta}}, cons)
	cancel()
	op.End = r.h.now()
	op.Outcome = classify(err, p.gen.Load() != gen)
	if err != nil {
		op.Err = err.Error()
	} else if len(res) == 1 {
		op.Value = res[0].Value
	}
	if op.Outcome == Ambiguous && err == nil {
		op.Err = "the peer crashed while answering"
	}
	r.h.addOp(op)
}

// classify turns a write's error into what the client can know. crashed
// says the peer stopped while the request was in flight: an answer may
// then have come after its disk was cloned, so even a success is not a
// promise.
func classify(err error, crashed bool) Outcome {
	switch {
	case errors.Is(err, agent.ErrBadDelta), errors.Is(err, agent.ErrNotReady), errors.Is(err, agent.ErrUnavailable),
		errors.Is(err, agent.ErrNotStarted):
		return Failed // refused before anything was applied
	case crashed:
		return Ambiguous
	case err == nil:
		return Acked
	default:
		// ErrNoMajority (applied here, not confirmed by a majority), a
		// timeout, a shutdown in the middle: it may or may not count.
		return Ambiguous
	}
}
