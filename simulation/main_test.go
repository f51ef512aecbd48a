package simulation

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine a run starts (agents, clients, the sampler, pause
// timers) is stopped by it; goleak proves it after the tests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
