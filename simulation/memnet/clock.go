package memnet

import (
	"fmt"
	"sync"
	"time"
)

// MaxClockDrift bounds the drift Network.SetClock accepts: a host's clock
// runs between 1-MaxClockDrift and 1+MaxClockDrift of its seconds per real
// second, so two hosts' clocks disagree on an interval of d by at most
// 2·MaxClockDrift·d (2% of it). Real quartz drifts by about 1e-4; the bound
// is wider so that a simulation can show what drift does.
const MaxClockDrift = 0.01

// Clock is one host's clock: it reads the real time plus the host's skew,
// runs at 1+drift times the real rate (Network.SetClock), and stands still
// while the host is paused (Network.Pause), then jumps to where it would
// have been, firing the timers that came due meanwhile — what a process
// sees after SIGSTOP or a long GC pause. A new host's clock reads the real
// time and runs at its rate.
//
// Clock has the methods of the agent's Clock interface but for NewTimer's
// result type (memnet does not import the agent, whose tests import
// memnet); a three-line adapter with
//
//	func (c agentClock) NewTimer(d time.Duration) agent.Timer { return c.Clock.NewTimer(d) }
//
// makes it one. All methods are safe for concurrent use.
type Clock struct {
	// mu guards every field below and the mutable fields of the clock's
	// timers.
	mu sync.Mutex
	// At the real time anchorReal the clock read anchorLocal; since then it
	// ran at 1+drift.
	anchorReal, anchorLocal time.Time
	drift                   float64
	// paused: the clock reads pausedAt and no timer fires.
	paused   bool
	pausedAt time.Time
	// timers holds the timers that have neither fired nor been stopped.
	timers map[*Timer]struct{}
}

func newClock() *Clock {
	now := time.Now()
	return &Clock{anchorReal: now, anchorLocal: now, timers: make(map[*Timer]struct{})}
}

// Clock returns the host's clock.
func (h *Host) Clock() *Clock { return h.clock }

// Now returns the clock's reading.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.paused {
		return c.pausedAt
	}
	return c.at(time.Now())
}

// Since returns how much the clock has advanced since t.
func (c *Clock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

// at returns the reading at real time real, were the clock running. The
// caller holds c.mu.
func (c *Clock) at(real time.Time) time.Time {
	return c.anchorLocal.Add(time.Duration(float64(real.Sub(c.anchorReal)) * (1 + c.drift)))
}

// set makes the clock read real time plus skew from now on, running at
// 1+drift, and moves its timers to match.
func (c *Clock) set(skew time.Duration, drift float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	c.anchorReal, c.anchorLocal, c.drift = now, now.Add(skew), drift
	for t := range c.timers {
		c.schedule(t)
	}
}

// pause stops the clock and its timers.
func (c *Clock) pause() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.paused {
		return
	}
	c.pausedAt = c.at(time.Now())
	c.paused = true
	for t := range c.timers {
		c.schedule(t)
	}
}

// resume lets the clock run again from where it would be had it never
// stopped; timers that came due meanwhile fire at once.
func (c *Clock) resume() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.paused {
		return
	}
	c.paused = false
	for t := range c.timers {
		c.schedule(t)
	}
}

// Timer is a one-shot timer of a Clock: it fires once the clock reads its
// deadline, not while the clock is paused. It runs on a runtime timer
// (time.AfterFunc) whose func only sends on a buffered channel, so it
// needs no goroutine of its own; Stop releases it.
type Timer struct {
	clock *Clock
	c     chan time.Time
	// when is the reading at which the timer fires.
	when time.Time

	// Guarded by clock.mu: real is the runtime timer that wakes it, gen
	// counts its reschedules so a stale wake-up does nothing.
	real *time.Timer
	gen  uint64
}

// NewTimer returns a timer that sends the clock's reading on its channel
// once the clock has advanced by d (at once if d is not positive, unless
// the clock is paused).
func (c *Clock) NewTimer(d time.Duration) *Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &Timer{clock: c, c: make(chan time.Time, 1)}
	if c.paused {
		t.when = c.pausedAt.Add(d)
	} else {
		t.when = c.at(time.Now()).Add(d)
	}
	c.timers[t] = struct{}{}
	c.schedule(t)
	return t
}

// C returns the channel the timer fires on.
func (t *Timer) C() <-chan time.Time { return t.c }

// Stop keeps the timer from firing; it reports whether it did so, false
// when the timer had already fired or been stopped.
func (t *Timer) Stop() bool {
	c := t.clock
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, pending := c.timers[t]; !pending {
		return false
	}
	delete(c.timers, t)
	if t.real != nil {
		t.real.Stop()
		t.real = nil
	}
	t.gen++
	return true
}

// schedule (re)arms t's runtime timer for the real time at which the
// clock will read t.when, or disarms it while the clock is paused. The
// caller holds c.mu.
func (c *Clock) schedule(t *Timer) {
	if t.real != nil {
		t.real.Stop()
		t.real = nil
	}
	t.gen++
	if c.paused {
		return
	}
	wait := time.Duration(0)
	if left := t.when.Sub(c.at(time.Now())); left > 0 {
		wait = time.Duration(float64(left)/(1+c.drift)) + 1
	}
	gen := t.gen
	t.real = time.AfterFunc(wait, func() { c.fire(t, gen) })
}

// fire sends the reading on t's channel if t is due, or reschedules it
// (the clock's rate changed under it).
func (c *Clock) fire(t *Timer, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, pending := c.timers[t]; !pending || gen != t.gen || c.paused {
		return
	}
	now := c.at(time.Now())
	if now.Before(t.when) {
		c.schedule(t)
		return
	}
	delete(c.timers, t)
	t.real = nil
	select {
	case t.c <- now:
	default: // cannot happen: the channel is sent on once
	}
}

// SetClock sets a host's clock: from now on it reads the real time plus
// skew and advances by 1+drift seconds per real second. A skew different
// from the clock's current offset makes it jump, forward or back, as a
// stepped NTP clock does; pending timers keep their deadlines in the
// clock's time. Heal does not change clocks. It fails, changing nothing,
// if the IP names no host (ErrUnknownHost) or |drift| exceeds
// MaxClockDrift.
func (n *Network) SetClock(ip string, skew time.Duration, drift float64) error {
	if !(drift >= -MaxClockDrift && drift <= MaxClockDrift) {
		return fmt.Errorf("memnet: clock drift %v is outside ±%v (MaxClockDrift)", drift, MaxClockDrift)
	}
	ips, err := n.hostIPs(ip)
	if err != nil {
		return err
	}
	n.host(ips[0]).clock.set(skew, drift)
	return nil
}
