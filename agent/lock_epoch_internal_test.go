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
// limit and every request got "epochs ran ahead of the clock"; and once
// renewClaims dropped the failed claim, the new one did not know the tried
// epoch either (found by black-box reviews of an isolated peer).
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
	// Retry at about 10 a second, under both ways a round fails: voters
	// that time out, then (once the cut-off peer marks them failed) voters
	// it does not ask at all; and on past a few renewal passes after that,
	// which drop claims they find unused.
	start := time.Now()
	var failedAt time.Time
	for i := 0; failedAt.IsZero() || time.Since(failedAt) < 4*time.Second; i++ {
		if time.Since(start) > 60*time.Second {
			t.Fatal("the cut-off peer did not mark the others failed within 60 s")
		}
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
		if failedAt.IsZero() && len(as[0].alivePeers()) == 0 {
			failedAt = time.Now()
		}
		time.Sleep(100 * time.Millisecond) // the client's pace, not a wait for a condition
	}
}
