package client_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ringleader/ringleader/agent/client"
	"github.com/ringleader/ringleader/agent/client/clienttest"
)

func newLockServer(t *testing.T) (*clienttest.LockServer, *client.Client) {
	t.Helper()
	f := clienttest.NewLockServer()
	srv := httptest.NewServer(f)
	c, err := client.New(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		srv.Close()
	})
	return f, c
}

// doneWithin waits for h.Done and returns when it closed.
func doneWithin(t *testing.T, h *client.HeldLock, timeout time.Duration) time.Time {
	t.Helper()
	select {
	case <-h.Done():
		return time.Now()
	case <-time.After(timeout):
		t.Fatalf("Done still open after %v; deadline %v away", timeout, time.Until(h.Deadline()))
		return time.Time{}
	}
}

func TestLockRenewsUntilUnlock(t *testing.T) {
	f, c := newLockServer(t)
	ctx := context.Background()
	const ttl = 600 * time.Millisecond
	h, err := c.Lock(ctx, "jobs/a b", client.LockOptions{TTL: ttl, Holder: "me"})
	if err != nil {
		t.Fatal(err)
	}
	if h.Key() != "jobs/a b" || h.Token() != 1 || len(h.Lease()) != 32 || h.TTL() != ttl || h.Margin() != 100*time.Millisecond {
		t.Fatalf("lock %q token %d lease %q ttl %v margin %v", h.Key(), h.Token(), h.Lease(), h.TTL(), h.Margin())
	}
	first := h.Deadline()
	// Three renewals span more than two TTLs: the lease lives by renewal.
	waitFor(t, 5*time.Second, "renewed three times", func() bool { return len(f.Requests("PUT")) >= 3 })
	if !h.Deadline().After(first) {
		t.Fatalf("deadline %v did not move on from %v", h.Deadline(), first)
	}
	for _, r := range f.Requests("PUT") {
		if r.Key != "jobs/a b" || r.Lease != h.Lease() {
			t.Fatalf("renewal of %q lease %q", r.Key, r.Lease)
		}
	}
	select {
	case <-h.Done():
		t.Fatalf("Done closed while renewing: %v", h.Err())
	default:
	}
	if h.Err() != nil {
		t.Fatalf("Err %v while held", h.Err())
	}
	info, err := c.LockInfo(ctx, "jobs/a b")
	if err != nil || !info.Held || info.Holder != "me" || info.Token != 1 {
		t.Fatalf("info %+v, %v", info, err)
	}
	if err := h.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(h.Err(), client.ErrUnlocked) {
		t.Fatalf("Err after Unlock: %v", h.Err())
	}
	doneWithin(t, h, time.Second)
	if info, err := c.LockInfo(ctx, "jobs/a b"); err != nil || info.Held {
		t.Fatalf("after Unlock: %+v, %v", info, err)
	}
	renewals := len(f.Requests("PUT"))
	if err := h.Unlock(ctx); err != nil {
		t.Fatalf("second Unlock: %v", err)
	}
	if n := len(f.Requests("DELETE")); n != 1 {
		t.Fatalf("%d releases sent, want 1", n)
	}
	if n := len(f.Requests("PUT")); n != renewals {
		t.Fatalf("renewals went on after Unlock: %d then %d", renewals, n)
	}
}

// TestLockDoneBeforeExpiry switches the owner's renewals to failing in each
// way and checks that Done closes, with the reason, before the owner ends
// the lease — counted from when the request arrived, so a HeldLock that
// counted from its answers would be late when answers are slow.
func TestLockDoneBeforeExpiry(t *testing.T) {
	for _, tc := range []struct {
		name      string
		renew     clienttest.RenewMode
		delay     time.Duration // on every answer
		want      error
		retries   bool // more than one failed renewal before Done
		immediate bool // Done at the first failed renewal
	}{
		{name: "unknown lease", renew: clienttest.RenewUnknown, want: client.ErrUnknownLease, immediate: true},
		{name: "no quorum", renew: clienttest.RenewUnavailable, want: client.ErrUnavailable, retries: true},
		{name: "owner hangs", renew: clienttest.RenewHang, want: context.DeadlineExceeded},
		{name: "owner hangs after slow answers", renew: clienttest.RenewHang, delay: 300 * time.Millisecond, want: context.DeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, c := newLockServer(t)
			f.SetDelay(tc.delay)
			const ttl = time.Second
			h, err := c.Lock(context.Background(), "k", client.LockOptions{TTL: ttl})
			if err != nil {
				t.Fatal(err)
			}
			defer h.Unlock(context.Background())
			waitFor(t, 5*time.Second, "renewed once", func() bool { return len(f.Requests("PUT")) >= 1 })
			// Wait for the answer too, so the next renewal is the one that fails.
			waitFor(t, 5*time.Second, "deadline moved", func() bool {
				return h.Deadline().After(f.Requests("POST")[0].At.Add(ttl))
			})
			f.SetRenew(tc.renew)
			ok := len(f.Requests("PUT"))
			expiry := f.Expiry(h.Lease())
			doneAt := doneWithin(t, h, 3*time.Second)
			if !doneAt.Before(expiry) {
				t.Fatalf("Done closed %v after the owner ended the lease", doneAt.Sub(expiry))
			}
			if room := expiry.Sub(doneAt); !tc.immediate && room > 300*time.Millisecond {
				t.Errorf("Done closed %v before expiry; renewals should go on until the %v margin", room, h.Margin())
			}
			err = h.Err()
			if !errors.Is(err, client.ErrLockLost) || !errors.Is(err, tc.want) {
				t.Fatalf("Err %v: want ErrLockLost and %v", err, tc.want)
			}
			if failed := len(f.Requests("PUT")) - ok; tc.retries && failed < 2 {
				t.Errorf("%d failed renewals before Done; want retries", failed)
			}
			if !h.Deadline().Before(expiry) && !h.Deadline().Equal(expiry) {
				t.Errorf("Deadline %v is after the owner's expiry %v", h.Deadline(), expiry)
			}
		})
	}
}

func TestLockRecoversFromFailedRenewals(t *testing.T) {
	f, c := newLockServer(t)
	h, err := c.Lock(context.Background(), "k", client.LockOptions{TTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Unlock(context.Background())
	f.SetRenew(clienttest.RenewUnavailable)
	waitFor(t, 5*time.Second, "two failed renewals", func() bool { return len(f.Requests("PUT")) >= 2 })
	f.SetRenew(clienttest.RenewOK)
	before := len(f.Requests("PUT"))
	waitFor(t, 5*time.Second, "two renewals after", func() bool { return len(f.Requests("PUT")) >= before+2 })
	if h.Err() != nil {
		t.Fatalf("lock lost after transient failures: %v", h.Err())
	}
}

// TestLockAfterWait: an acquire that waited in the queue longer than a
// renewal interval is renewed before Lock returns, so the deadline counts
// from a recent request, not from the long-ago acquire.
func TestLockAfterWait(t *testing.T) {
	f, c := newLockServer(t)
	ctx := context.Background()
	a, err := c.Lock(ctx, "k", client.LockOptions{TTL: time.Second, Holder: "a"})
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		h   *client.HeldLock
		err error
	}
	got := make(chan result, 1)
	go func() {
		h, err := c.Lock(ctx, "k", client.LockOptions{TTL: time.Second, Wait: 10 * time.Second, Holder: "b"})
		got <- result{h, err}
	}()
	waitFor(t, 5*time.Second, "b queued", func() bool {
		info, err := c.LockInfo(ctx, "k")
		return err == nil && info.Waiters == 1
	})
	// Hold on through a few renewals so b's wait outlasts its TTL.
	n := len(f.Requests("PUT"))
	waitFor(t, 5*time.Second, "a renewed", func() bool { return len(f.Requests("PUT")) >= n+4 })
	if _, err := c.Acquire(ctx, "k", client.LockOptions{}); !errors.Is(err, client.ErrHeld) {
		t.Fatalf("acquire of a held key: %v, want ErrHeld", err)
	}
	if err := a.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.h.Unlock(ctx)
	if r.h.Token() <= a.Token() {
		t.Fatalf("token %d after %d", r.h.Token(), a.Token())
	}
	puts := f.Requests("PUT")
	last := puts[len(puts)-1]
	if last.Lease != r.h.Lease() {
		t.Fatalf("last renewal was of %s, want b's %s renewed before Lock returned", last.Lease, r.h.Lease())
	}
	if d := time.Until(r.h.Deadline()); d < 500*time.Millisecond {
		t.Fatalf("deadline only %v away right after Lock", d)
	}
}

func TestLockRefuses(t *testing.T) {
	f, c := newLockServer(t)
	ctx := context.Background()
	if _, err := c.Lock(ctx, "k", client.LockOptions{TTL: 100 * time.Millisecond}); !errors.Is(err, client.ErrBadRequest) {
		t.Fatalf("TTL at the margin: %v", err)
	}
	if _, err := c.Lock(ctx, "k", client.LockOptions{TTL: 5 * time.Second, Margin: 5 * time.Second}); !errors.Is(err, client.ErrBadRequest) {
		t.Fatalf("margin as long as the TTL: %v", err)
	}
	if n := len(f.Requests("")); n != 0 {
		t.Fatalf("%d requests sent for refused locks", n)
	}
	h, err := c.Lock(ctx, "k", client.LockOptions{TTL: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Unlock(ctx)
	_, err = c.Lock(ctx, "k", client.LockOptions{TTL: 5 * time.Second, Wait: 50 * time.Millisecond})
	var apiErr *client.APIError
	if !errors.Is(err, client.ErrHeld) || !errors.As(err, &apiErr) || apiErr.Holder != "" || apiErr.Remaining <= 0 || apiErr.Status != 409 {
		t.Fatalf("Lock of a held key: %#v", err)
	}
}

// TestUnlockAfterLoss: a lease the owner no longer knows is not an error to
// Unlock, and nothing is released twice.
func TestUnlockAfterLoss(t *testing.T) {
	f, c := newLockServer(t)
	ctx := context.Background()
	h, err := c.Lock(ctx, "k", client.LockOptions{TTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	f.SetRenew(clienttest.RenewUnknown)
	doneWithin(t, h, 3*time.Second)
	if err := h.Unlock(ctx); err != nil {
		t.Fatalf("Unlock of a lost lease: %v", err)
	}
	if !errors.Is(h.Err(), client.ErrLockLost) {
		t.Fatalf("Err %v: the loss must stay the reason", h.Err())
	}
}
