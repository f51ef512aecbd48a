package agent

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestFailedRoundsKeepEpochsNearTheClock: an owner cut off from the other
// voters fails its promise rounds; retrying them must not run the key's
// epochs ahead of the clock (docs/locks.md, "Epoch choice"). Its own
// acceptor promised each tried epoch, and a retry took that as a reason to
// ask for the next one, so a few retries a second ran the epochs past the
// limit and every request got "epochs ran ahead of the clock" (found by a
// black-box review of an isolated peer).
func TestFailedRoundsKeepEpochsNearTheClock(t *testing.T) {
	net, as, ips, key := startHandoffPair(t, 150*time.Millisecond, "epoch-")
	defer net.Close()
	for _, a := range as {
		defer a.Shutdown()
	}
	// Past the quiet start; then the cut, healed first when the test ends
	// so that no dial is left hanging on it when the agents stop.
	acquireWhenReady(t, as[0], "warm-"+key, LockRequest{TTL: time.Second})
	defer net.Heal()
	if err := net.Isolate(ips[0]); err != nil {
		t.Fatal(err)
	}
	ls := as[0].locks
	// Each attempt fails within an RPC timeout or at once; 40 of them span
	// several clock seconds, several rounds in each.
	start := time.Now()
	for i := range 40 {
		_, err := as[0].AcquireLock(context.Background(), key, LockRequest{TTL: time.Second})
		if err == nil {
			t.Fatalf("attempt %d: a peer cut off from both other voters was granted %q", i, key)
		}
		if strings.Contains(err.Error(), "ahead of the clock") {
			t.Fatalf("attempt %d, %v after the cut: %v", i, time.Since(start).Round(time.Millisecond), err)
		}
		ls.mu.Lock()
		var tried uint32
		if c := ls.claims[key]; c != nil {
			tried = c.tried
		}
		clock := epochAt(ls.a.clock.Now())
		ls.mu.Unlock()
		if tried > clock+1 {
			t.Fatalf("attempt %d: tried epoch %d, clock epoch %d", i, tried, clock)
		}
	}
}
