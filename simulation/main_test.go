package simulation

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine a run starts (agents, clients, the sampler, pause
// timers) is stopped by it; goleak proves it after the tests.
func TestMain(m *testing.M) {
	// serf.SetTags waits for its gossip in a goroutine the agent does not
	// wait for (agent/voters.go, syncVoterTag): at most serf's broadcast
	// timeout.
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/hashicorp/memberlist.(*Memberlist).UpdateNode"))
}
