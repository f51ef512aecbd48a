package simulation

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine a run starts (agents, clients, the sampler, pause
// timers) is stopped by it; goleak proves it after the tests. One
// exception: a queued AcquireLock on an agent that was shut down (a
// crashed peer) never returns (agent bug, see
// TestAgentBugQueuedAcquireHangsAfterShutdown); a real crash ends it with
// the process, and the lock client hangs up on it (locks.go), so its
// goroutine is left behind here.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/ringleader/ringleader/agent.(*lockService).await"))
}
