package lockmgr_test

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/ringleader/ringleader/lockmgr"
)

// One owner grants a lock, queues a second client, and hands the key over on release.
func Example() {
	cfg := lockmgr.DefaultConfig()
	cfg.Rand = rand.NewChaCha8([32]byte{1}) // tests only: production uses crypto/rand
	t, _ := lockmgr.NewTable(cfg)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

	// The owner holds a majority promise for "cron/nightly" under epoch 7.
	t.SetEpoch("cron/nightly", 7)

	a, _ := t.Acquire("cron/nightly", "worker-a", 10*time.Second, 0, now)
	epoch, seq := lockmgr.SplitToken(a.Lease.Token)
	fmt.Println("a granted:", a.Granted, "token", a.Lease.Token, "= epoch", epoch, "seq", seq)

	b, _ := t.Acquire("cron/nightly", "worker-b", 10*time.Second, 5*time.Second, now)
	fmt.Println("b granted:", b.Granted, "ticket", b.Ticket)

	events, _ := t.Release(a.Lease, now.Add(time.Second))
	for _, e := range events {
		fmt.Println(e.Kind, "ticket", e.Ticket, "holder", e.Holder, "token", e.Lease.Token)
	}

	// Nobody renews: the lease expires at the next tick past its expiry.
	for _, e := range t.Tick(now.Add(11 * time.Second)) {
		fmt.Println(e.Kind, "holder", e.Holder)
	}
	// Output:
	// a granted: true token 14680065 = epoch 7 seq 1
	// b granted: false ticket 1
	// granted ticket 1 holder worker-b token 14680066
	// expired holder worker-b
}
