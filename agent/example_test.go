package agent_test

import (
	"context"
	"fmt"

	"github.com/ringleader/ringleader/agent"
)

// Embedding a peer in another Go program: start it on loopback, look at the
// cluster it sees, and stop it.
func Example() {
	cfg := agent.DefaultConfig()
	cfg.NodeName = "embedded"
	cfg.BindAddr = "127.0.0.1:0" // any free port
	cfg.RPCAddr = "127.0.0.1:0"
	cfg.HTTPAddr = "" // serve a.Handler() from your own server instead
	cfg.DataDir = ""  // in memory; a real peer keeps a data dir

	a, err := agent.New(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := a.Start(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	defer a.Shutdown()
	defer a.Leave(context.Background())

	members, _ := a.Members()
	for _, m := range members {
		fmt.Println(m.Name, m.Status, "in ring:", m.InRing)
	}
	owner, _ := a.View().Ring.Owner("jobs/nightly")
	fmt.Println("owner of jobs/nightly:", owner)
	// Output:
	// embedded alive in ring: true
	// owner of jobs/nightly: embedded
}
