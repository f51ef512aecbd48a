// Package client is the Go client of a Ringleader peer's HTTP API: typed
// calls for membership, the ring, counters and locks, and HeldLock, a lock
// lease that renews itself.
//
//	c, err := client.New("127.0.0.1:7948")
//	l, err := c.Lock(ctx, "jobs/nightly", client.LockOptions{TTL: 10 * time.Second, Wait: time.Minute})
//	defer l.Unlock(context.Background())
//	// do the work, passing l.Token() to the resource; stop when l.Done() closes.
//
// Every call takes a context.Context. A non-2xx answer is an *APIError
// holding the peer's message; match it with errors.Is against ErrHeld,
// ErrUnknownLease, ErrUnavailable, ErrBadRequest and the other sentinels.
//
// A lock is only as safe as its use of the fencing token: a lease can end
// while its holder is paused (GC, swap, a stopped VM) and cannot notice.
// Have the guarded resource refuse a token lower than one it has seen.
package client
