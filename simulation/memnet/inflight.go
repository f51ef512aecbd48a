package memnet

import (
	"sync"
	"time"
)

// inflight holds the packets that latency delays: one timer each, owned by
// the network. A timer's func runs on the runtime's timer goroutine for as
// long as it takes to put one packet in a queue, which never blocks.
// Network.Close stops every pending timer, dropping its packet, and waits
// for funcs already running, so after Close no memnet code runs on behalf
// of the network.
type inflight struct {
	// mu guards timers and closed.
	mu sync.Mutex
	// timers maps each pending timer to what to do if it is stopped.
	timers map[*time.Timer]func()
	closed bool

	// running counts the timers scheduled and not yet finished or
	// stopped.
	running sync.WaitGroup
}

// after runs arrive after d, unless the network is closed first, in which
// case it runs dropped instead (at once if it is already closed).
func (q *inflight) after(d time.Duration, arrive, dropped func()) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		dropped()
		return
	}
	if q.timers == nil {
		q.timers = make(map[*time.Timer]func())
	}
	q.running.Add(1)
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		defer q.running.Done()
		q.mu.Lock()
		_, pending := q.timers[t]
		delete(q.timers, t)
		q.mu.Unlock()
		if pending {
			arrive()
		} else {
			dropped()
		}
	})
	q.timers[t] = dropped
}

// close stops every pending timer, runs the dropped funcs of those it
// stopped, and waits for those that were already running.
func (q *inflight) close() {
	q.mu.Lock()
	q.closed = true
	var stopped []func()
	for t, dropped := range q.timers {
		if t.Stop() {
			stopped = append(stopped, dropped)
			q.running.Done()
		}
	}
	clear(q.timers)
	q.mu.Unlock()
	for _, dropped := range stopped {
		dropped()
	}
	q.running.Wait()
}

// Close stops the network's timers: packets still delayed by latency are
// dropped, and Close returns once no timer func of the network is running.
// Hosts, streams and transports keep working, without latency for packets
// (a packet sent after Close that latency would delay is dropped). Calling
// Close again does nothing. A network with latency should be closed when
// done with; one without has nothing to close.
func (n *Network) Close() {
	n.inflight.close()
}
