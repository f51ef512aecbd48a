package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/ringleader/ringleader/agent/client"
	"github.com/ringleader/ringleader/agent/client/clienttest"
)

// Lock a key, do the work while it is held, and unlock. An in-memory lock
// table (clienttest) stands in for a peer's HTTP API here; give New the
// peer's address ("127.0.0.1:7948") instead.
func Example() {
	peer := httptest.NewServer(clienttest.NewLockServer())
	defer peer.Close()
	c, err := client.New(peer.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	ctx := context.Background()

	l, err := c.Lock(ctx, "jobs/nightly", client.LockOptions{TTL: 10 * time.Second, Wait: time.Minute, Holder: "example"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("holding", l.Key(), "with fencing token", l.Token())

	// Another holder finds it held once its wait runs out.
	_, err = c.Acquire(ctx, "jobs/nightly", client.LockOptions{Wait: 10 * time.Millisecond})
	var held *client.APIError
	if errors.Is(err, client.ErrHeld) && errors.As(err, &held) {
		fmt.Println("others see it held by", held.Holder)
	}

	// Do the work, handing l.Token() to the resource, and stop when the
	// lock is lost.
	select {
	case <-l.Done():
		fmt.Println("lost the lock:", l.Err())
		return
	default:
		fmt.Println("working")
	}

	if err := l.Unlock(ctx); err != nil {
		fmt.Println(err)
	}
	info, err := c.LockInfo(ctx, "jobs/nightly")
	fmt.Println("held after Unlock:", info.Held, err)
	// Output:
	// holding jobs/nightly with fencing token 1
	// others see it held by example
	// working
	// held after Unlock: false <nil>
}
