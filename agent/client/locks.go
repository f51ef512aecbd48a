package client

import (
	"context"
	"fmt"
	"net/url"
	"time"
)

// Lock routes:
//
//	POST   /v1/locks/{key...}  {"ttl","wait","holder"}  → Lease
//	PUT    /v1/locks/{key...}  {"lease","ttl"}          → Lease
//	DELETE /v1/locks/{key...}?lease=ID                  → {"key","released"}
//	GET    /v1/locks/{key...}                           → LockState

const lockRoute = "/v1/locks/"

// LockOptions are the optional parts of an acquire.
type LockOptions struct {
	// TTL is how long the lease lasts unless renewed (0: the peer's
	// default, 10s). The peer refuses (ErrBadRequest) a TTL under 1s or
	// above its lock-delay minus the drift margin.
	TTL time.Duration
	// Wait is how long the peer may queue the request behind the current
	// holder before answering ErrHeld (0: answer at once).
	Wait time.Duration
	// Holder is a label for the holder (a host name, a job), shown to
	// those who find the lock held. It is not checked: the lease is what
	// proves a holder.
	Holder string
	// Margin (Lock only) is how long before the lease can have expired a
	// HeldLock gives up at the latest when its renewals fail; 0:
	// SafetyMargin(TTL). Make it cover the time the guarded work needs to
	// stop. Acquire ignores it.
	Margin time.Duration
}

// Lease is a granted lock lease.
type Lease struct {
	Key string `json:"key"`
	// Token is the fencing token: it grows with every grant of the key,
	// across owners and restarts. Pass it to the resource the lock guards
	// and have the resource refuse a token lower than one it has seen.
	Token int64 `json:"token"`
	// Lease is the lease ID (32 hex digits) that renews and releases.
	Lease string `json:"lease"`
	// TTLMS is the granted time to live in milliseconds; see TTL.
	TTLMS int64 `json:"ttl_ms"`
	// Owner is the peer that granted the lease (the key's ring owner).
	Owner string `json:"owner"`
}

// TTL is the granted time to live. The lease ends at the latest TTL after
// the request that got it was sent.
func (l Lease) TTL() time.Duration { return time.Duration(l.TTLMS) * time.Millisecond }

// LockState is what the peer knows of a lock key.
type LockState struct {
	Key    string `json:"key"`
	Held   bool   `json:"held"`
	Holder string `json:"holder"`
	// Token is the current holder's fencing token (0 when not held).
	Token int64 `json:"token"`
	// RemainingMS is how long the current lease had left, in milliseconds;
	// see Remaining.
	RemainingMS int64 `json:"remaining_ms"`
	// Waiters is how many acquires are queued for the key.
	Waiters int    `json:"waiters"`
	Owner   string `json:"owner"`
}

// Remaining is how long the current lease had left when the peer answered.
func (s LockState) Remaining() time.Duration {
	return time.Duration(s.RemainingMS) * time.Millisecond
}

// durationString is d as a Go duration string, "" for 0.
func durationString(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

func checkDurations(opts LockOptions) error {
	if opts.TTL < 0 || opts.Wait < 0 {
		return fmt.Errorf("%w: negative TTL %v or wait %v", ErrBadRequest, opts.TTL, opts.Wait)
	}
	return nil
}

// Acquire asks for the lock on key, waiting up to opts.Wait at the peer
// while another lease holds it. Still held after the wait: an *APIError
// matching ErrHeld, with the holder's label and remaining time. No quorum
// or the key's owner unreachable: ErrUnavailable.
//
// A call without a context deadline may take DefaultTimeout (or the
// WithTimeout value) plus opts.Wait. If the call fails after the peer
// granted the lease (a lost answer), the lease is not known here and runs
// out after its TTL.
func (c *Client) Acquire(ctx context.Context, key string, opts LockOptions) (Lease, error) {
	if err := checkDurations(opts); err != nil {
		return Lease{}, err
	}
	body := struct {
		TTL    string `json:"ttl,omitempty"`
		Wait   string `json:"wait,omitempty"`
		Holder string `json:"holder,omitempty"`
	}{durationString(opts.TTL), durationString(opts.Wait), opts.Holder}
	var l Lease
	err := c.do(ctx, request{method: "POST", path: keyPath(lockRoute, key), body: body, extra: opts.Wait, conflict: ErrHeld}, &l)
	return l, err
}

// Renew extends lease on key by ttl from now (0: the TTL the lease was
// granted with). An expired, released or unknown lease: ErrUnknownLease.
func (c *Client) Renew(ctx context.Context, key, lease string, ttl time.Duration) (Lease, error) {
	if ttl < 0 {
		return Lease{}, fmt.Errorf("%w: negative TTL %v", ErrBadRequest, ttl)
	}
	body := struct {
		Lease string `json:"lease"`
		TTL   string `json:"ttl,omitempty"`
	}{lease, durationString(ttl)}
	var l Lease
	err := c.do(ctx, request{method: "PUT", path: keyPath(lockRoute, key), body: body, notFound: ErrUnknownLease, conflict: ErrHeld}, &l)
	return l, err
}

// Release ends lease on key; the next waiter, if any, gets the lock. An
// expired, released or unknown lease: ErrUnknownLease.
func (c *Client) Release(ctx context.Context, key, lease string) error {
	path := keyPath(lockRoute, key) + "?lease=" + url.QueryEscape(lease)
	var a struct {
		Released bool `json:"released"`
	}
	if err := c.do(ctx, request{method: "DELETE", path: path, notFound: ErrUnknownLease}, &a); err != nil {
		return err
	}
	if !a.Released {
		return fmt.Errorf("client: DELETE %s: the peer answered 200 without released=true", keyPath(lockRoute, key))
	}
	return nil
}

// LockInfo returns what the key's owner knows of the lock on key.
func (c *Client) LockInfo(ctx context.Context, key string) (LockState, error) {
	var s LockState
	err := c.do(ctx, request{method: "GET", path: keyPath(lockRoute, key)}, &s)
	return s, err
}
