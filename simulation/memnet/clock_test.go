package memnet_test

import (
	"testing"
	"time"

	"github.com/ringleader/ringleader/agent"
	"github.com/ringleader/ringleader/simulation/memnet"
)

// agentClock is the adapter that makes a host's clock an agent.Clock.
type agentClock struct{ *memnet.Clock }

func (c agentClock) NewTimer(d time.Duration) agent.Timer { return c.Clock.NewTimer(d) }

var _ agent.Clock = agentClock{}

// bracket reads the clock between two real readings.
func bracket(c *memnet.Clock) (before, local, after time.Time) {
	before = time.Now()
	local = c.Now()
	after = time.Now()
	return before, local, after
}

func TestClockSkewAndDrift(t *testing.T) {
	tests := []struct {
		name  string
		skew  time.Duration
		drift float64
	}{
		{name: "real"},
		{name: "ahead", skew: time.Hour},
		{name: "behind", skew: -90 * time.Second},
		{name: "fast", drift: memnet.MaxClockDrift},
		{name: "slow and ahead", skew: time.Minute, drift: -memnet.MaxClockDrift},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, a, _, _ := newNetwork(t, memnet.DefaultConfig())
			if err := n.SetClock(ipA, tt.skew, tt.drift); err != nil {
				t.Fatalf("SetClock: %v", err)
			}
			c := a.Clock()
			rb0, l0, ra0 := bracket(c)
			// Drift since SetClock moves the reading by a few nanoseconds.
			if l0.Before(rb0.Add(tt.skew-time.Millisecond)) || l0.After(ra0.Add(tt.skew+time.Millisecond)) {
				t.Fatalf("clock reads %v between real %v and %v; want skew %v", l0, rb0, ra0, tt.skew)
			}
			// Let the clock run 50 ms by its own timer, then compare
			// the rates: the reading advanced by (1+drift) times the real
			// time, which lies between the bracketing readings.
			timer := c.NewTimer(50 * time.Millisecond)
			var fired time.Time
			select {
			case fired = <-timer.C():
			case <-time.After(long):
				t.Fatalf("timer did not fire after %v", long)
			}
			if fired.Sub(l0) < 50*time.Millisecond {
				t.Errorf("timer fired at reading %v, %v after the start; want at least 50ms", fired, fired.Sub(l0))
			}
			rb1, l1, ra1 := bracket(c)
			scale := func(d time.Duration) time.Duration { return time.Duration(float64(d) * (1 + tt.drift)) }
			least, most := scale(rb1.Sub(ra0)), scale(ra1.Sub(rb0))
			if got := l1.Sub(l0); got < least-time.Microsecond || got > most+time.Microsecond {
				t.Errorf("clock advanced %v; want %v to %v for drift %v", got, least, most, tt.drift)
			}
			if timer.Stop() {
				t.Errorf("Stop of a fired timer reported true")
			}
		})
	}
}

func TestClockArguments(t *testing.T) {
	n, _, _, _ := newNetwork(t, memnet.DefaultConfig())
	for _, drift := range []float64{memnet.MaxClockDrift * 1.5, -memnet.MaxClockDrift * 2, 1} {
		if err := n.SetClock(ipA, 0, drift); err == nil {
			t.Errorf("SetClock with drift %v: no error; want one naming MaxClockDrift", drift)
		}
	}
	if err := n.SetClock("10.9.9.9", 0, 0); err == nil {
		t.Errorf("SetClock of an unknown host: no error")
	}
}

// A timer keeps its deadline in its clock's time: a clock stepped past
// it fires it at once; a stopped timer never fires.
func TestClockTimers(t *testing.T) {
	n, a, _, _ := newNetwork(t, memnet.DefaultConfig())
	c := a.Clock()
	stepped := c.NewTimer(time.Hour)
	stopped := c.NewTimer(0)
	if !stopped.Stop() {
		// It may have fired already: then its reading is waiting.
		<-stopped.C()
	}
	if err := n.SetClock(ipA, 2*time.Hour, 0); err != nil {
		t.Fatalf("SetClock: %v", err)
	}
	select {
	case <-stepped.C():
	case <-time.After(long):
		t.Fatalf("a 1h timer did not fire after its clock stepped 2h ahead")
	}
	if stopped.Stop() {
		t.Errorf("second Stop reported true")
	}
	select {
	case v := <-stopped.C():
		t.Fatalf("stopped timer fired at %v", v)
	default:
	}
}

// A paused host's clock stands still and its timers wait; on resume the
// clock jumps by the pause and due timers fire.
func TestClockPause(t *testing.T) {
	for _, tt := range []struct {
		name   string
		resume func(n *memnet.Network) error
	}{
		{name: "resume", resume: func(n *memnet.Network) error { return n.Resume(ipA) }},
		{name: "heal", resume: func(n *memnet.Network) error { n.Heal(); return nil }},
	} {
		t.Run(tt.name, func(t *testing.T) { testClockPause(t, tt.resume) })
	}
}

func testClockPause(t *testing.T, resume func(n *memnet.Network) error) {
	const pause = 50 * time.Millisecond
	n, a, b, _ := newNetwork(t, memnet.DefaultConfig())
	c := a.Clock()
	due := c.NewTimer(10 * time.Millisecond)
	later := c.NewTimer(time.Hour)
	defer later.Stop()
	if err := n.Pause(ipA); err != nil {
		t.Fatalf("Pause: %v", err)
	}
	frozen := c.Now()
	<-time.After(pause) // let real time pass: the thing under test
	if got := c.Now(); !got.Equal(frozen) {
		t.Fatalf("paused clock moved from %v to %v", frozen, got)
	}
	select {
	case v := <-due.C():
		t.Fatalf("timer fired at %v while its clock was paused", v)
	default:
	}
	if b.Clock().Now().Sub(frozen) < pause {
		t.Errorf("another host's clock stood still too")
	}
	if err := resume(n); err != nil {
		t.Fatalf("resume: %v", err)
	}
	if jump := c.Now().Sub(frozen); jump < pause {
		t.Errorf("clock advanced %v over the resume; want a jump of at least %v", jump, pause)
	}
	select {
	case v := <-due.C():
		if v.Sub(frozen) < pause {
			t.Errorf("timer fired at reading %v; want one after the jump", v)
		}
	case <-time.After(long):
		t.Fatalf("timer due during the pause did not fire %v after resume", long)
	}
	select {
	case v := <-later.C():
		t.Fatalf("1h timer fired at %v", v)
	default:
	}
}
