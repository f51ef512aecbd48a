package memnet_test

import (
	"fmt"
	"time"

	"github.com/ringleader/ringleader/simulation/memnet"
)

// Packet loss draws from the network's seeded random source: the same seed
// loses the same packets.
func ExampleNetwork_SetLoss() {
	for range 2 {
		cfg := memnet.DefaultConfig()
		cfg.Seed = 42
		network, _ := memnet.New(cfg)
		a, _ := network.AddHost("10.0.0.1")
		b, _ := network.AddHost("10.0.0.2")
		ta, _ := a.GossipTransport(7946)
		tb, _ := b.GossipTransport(7946)
		_ = network.SetLoss(25)
		for range 1000 {
			_, _ = ta.WriteTo([]byte("ping"), tb.Addr())
		}
		fmt.Println("delivered", a.Stats().PacketsDelivered, "of 1000")
		_ = ta.Shutdown()
		_ = tb.Shutdown()
	}
	// Output:
	// delivered 770 of 1000
	// delivered 770 of 1000
}

// A paused host's clock stands still and its timers wait; on resume the
// clock jumps forward and the timer that came due fires.
func ExampleNetwork_Pause() {
	network, _ := memnet.New(memnet.DefaultConfig())
	a, _ := network.AddHost("10.0.0.1")
	clock := a.Clock()
	timer := clock.NewTimer(10 * time.Millisecond)

	_ = network.Pause("10.0.0.1")
	frozen := clock.Now()
	time.Sleep(50 * time.Millisecond) // real time passes, the host's does not
	fmt.Println("clock stood still:", clock.Now().Equal(frozen))
	select {
	case <-timer.C():
		fmt.Println("timer fired during the pause")
	default:
		fmt.Println("timer waits")
	}

	_ = network.Resume("10.0.0.1")
	fired := <-timer.C()
	fmt.Println("clock jumped by the pause:", fired.Sub(frozen) >= 50*time.Millisecond)
	// Output:
	// clock stood still: true
	// timer waits
	// clock jumped by the pause: true
}
