package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

var (
	// ErrLockLost is what HeldLock.Err matches once renewal failed: the
	// peer no longer knew the lease (ErrUnknownLease, also matched), or
	// renewals kept failing until the safety margin before the lease could
	// have expired. Stop the work the lock guards.
	ErrLockLost = errors.New("client: lock lost")
	// ErrUnlocked is what HeldLock.Err returns after Unlock.
	ErrUnlocked = errors.New("client: lock unlocked")
)

// MinSafetyMargin is the least safety margin SafetyMargin gives.
const MinSafetyMargin = 100 * time.Millisecond

// SafetyMargin is how long before the lease can have expired a HeldLock
// with this TTL gives up at the latest when its renewals fail, unless
// LockOptions.Margin says otherwise: max(ttl/10, MinSafetyMargin). It
// covers the time a caller needs to notice Done and stop, and some clock
// rate difference between this host and the key's owner.
func SafetyMargin(ttl time.Duration) time.Duration {
	return max(ttl/10, MinSafetyMargin)
}

// HeldLock is a lock lease that renews itself until Unlock or until a
// renewal fails. Its methods are safe for concurrent use.
//
// Timing: the lease lasts at least TTL from when the request that got or
// renewed it was sent (the owner starts it when the request arrives, which
// is later). HeldLock counts its deadline from that sent time, never from
// when the answer came, so a slow answer cannot make it believe in a lease
// the owner has already ended. It renews every min(TTL/3, (TTL-margin)/2)
// after the last successful request was sent, retries failed renewals,
// and closes Done when the owner no longer knows the lease (404), or at the
// latest margin before the deadline while renewals still fail.
type HeldLock struct {
	c      *Client
	lease  Lease         // the first grant; Key, Token and Lease do not change
	ttl    time.Duration // asked of each renewal
	margin time.Duration
	every  time.Duration // renewal interval
	retry  time.Duration // pause between failed renewals

	cancel   context.CancelFunc // stops run
	finished chan struct{}      // closed when run has returned
	stopOnce sync.Once

	// mu guards deadline, err and the closing of done.
	mu       sync.Mutex
	deadline time.Time // the lease is live until at least then
	err      error     // why done is closed; nil while held
	done     chan struct{}

	// unlockMu serializes Unlock calls and guards released.
	unlockMu sync.Mutex
	released bool
}

// Lock acquires the lock on key (waiting up to opts.Wait at the peer, as
// Acquire) and returns it held, renewing itself in one goroutine until
// Unlock or until renewal fails (then Done closes). ctx bounds the
// acquire only, not the renewals.
//
// An acquire whose answer took longer than a renewal interval (it waited
// in the queue) is renewed once before Lock returns, so that the deadline
// counts from a recent request; if that renewal fails, Lock releases the
// lease and returns the error.
//
// opts.Margin (0: SafetyMargin(ttl)) must leave room to renew: Lock
// refuses, and releases what it got, when the granted TTL is not more
// than the margin.
func (c *Client) Lock(ctx context.Context, key string, opts LockOptions) (*HeldLock, error) {
	if opts.Margin < 0 {
		return nil, fmt.Errorf("%w: negative margin %v", ErrBadRequest, opts.Margin)
	}
	if opts.TTL > 0 && opts.TTL <= marginFor(opts.TTL, opts.Margin) {
		return nil, fmt.Errorf("%w: TTL %v must be more than the safety margin %v, or the lock could not be renewed in time",
			ErrBadRequest, opts.TTL, marginFor(opts.TTL, opts.Margin))
	}
	sent := time.Now()
	l, err := c.Acquire(ctx, key, opts)
	if err != nil {
		return nil, err
	}
	h := &HeldLock{
		c:        c,
		lease:    l,
		ttl:      l.TTL(),
		margin:   marginFor(l.TTL(), opts.Margin),
		deadline: sent.Add(l.TTL()),
		done:     make(chan struct{}),
		finished: make(chan struct{}),
	}
	if h.ttl <= h.margin {
		h.releaseQuietly(ctx)
		return nil, fmt.Errorf("client: lock %q: the peer granted a TTL of %v, not more than the safety margin %v; ask for a longer TTL",
			key, h.ttl, h.margin)
	}
	h.every = min(h.ttl/3, (h.ttl-h.margin)/2)
	h.retry = max(h.every/4, 10*time.Millisecond)
	if time.Since(sent) > h.every {
		if sent, err = h.renewNow(ctx); err != nil {
			h.releaseQuietly(ctx)
			return nil, err
		}
	}
	runCtx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go h.run(runCtx, sent.Add(h.every))
	return h, nil
}

func marginFor(ttl, margin time.Duration) time.Duration {
	if margin > 0 {
		return margin
	}
	return SafetyMargin(ttl)
}

// renewNow renews once, before run starts, bounded by ctx and by ttl minus
// the margin from when it is sent.
// It returns the time the renewal was sent.
func (h *HeldLock) renewNow(ctx context.Context) (time.Time, error) {
	sent := time.Now()
	rctx, cancel := context.WithDeadline(ctx, sent.Add(h.ttl-h.margin))
	defer cancel()
	l, err := h.c.Renew(rctx, h.lease.Key, h.lease.Lease, h.ttl)
	if err != nil {
		return sent, fmt.Errorf("%w: %q: renewing after a long acquire: %w", ErrLockLost, h.lease.Key, err)
	}
	if err := h.checkRenewal(l); err != nil {
		return sent, err
	}
	h.mu.Lock()
	h.deadline = sent.Add(l.TTL())
	h.mu.Unlock()
	return sent, nil
}

func (h *HeldLock) checkRenewal(l Lease) error {
	if l.Lease != "" && l.Lease != h.lease.Lease {
		return fmt.Errorf("%w: %q: the peer renewed lease %s, not ours (%s)", ErrLockLost, h.lease.Key, l.Lease, h.lease.Lease)
	}
	return nil
}

// releaseQuietly releases a lease Lock will not return. A failure only
// leaves the lease to run out.
func (h *HeldLock) releaseQuietly(ctx context.Context) {
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.Background(), h.ttl)
		defer cancel()
	}
	h.c.Release(ctx, h.lease.Key, h.lease.Lease)
}

// run renews the lease, first at next, until ctx ends (Unlock) or
// renewal fails.
func (h *HeldLock) run(ctx context.Context, next time.Time) {
	defer close(h.finished)
	var lastErr error
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		giveUp := h.Deadline().Add(-h.margin)
		timer.Reset(time.Until(minTime(next, giveUp)))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		sent := time.Now()
		if !sent.Before(giveUp) {
			if lastErr == nil {
				lastErr = errors.New("no renewal could be sent in time")
			}
			h.finish(fmt.Errorf("%w: %q: renewal still failing %v before the lease can expire: %w", ErrLockLost, h.lease.Key, h.margin, lastErr))
			return
		}
		rctx, cancel := context.WithDeadline(ctx, giveUp)
		l, err := h.c.Renew(rctx, h.lease.Key, h.lease.Lease, h.ttl)
		cancel()
		if ctx.Err() != nil {
			return // Unlock
		}
		if err == nil {
			err = h.checkRenewal(l)
			if err != nil {
				h.finish(err)
				return
			}
			h.mu.Lock()
			h.deadline = sent.Add(l.TTL())
			h.mu.Unlock()
			lastErr, next = nil, sent.Add(h.every)
			continue
		}
		if errors.Is(err, ErrUnknownLease) {
			h.finish(fmt.Errorf("%w: %q: %w", ErrLockLost, h.lease.Key, err))
			return
		}
		lastErr, next = err, time.Now().Add(h.retry)
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// finish closes done with err, once.
func (h *HeldLock) finish(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err == nil {
		h.err = err
		close(h.done)
	}
}

// Key is the lock's key.
func (h *HeldLock) Key() string { return h.lease.Key }

// Token is the fencing token of the lease. Pass it to the resource the
// lock guards; it does not change with renewals.
func (h *HeldLock) Token() int64 { return h.lease.Token }

// Lease is the lease ID.
func (h *HeldLock) Lease() string { return h.lease.Lease }

// Owner is the peer that granted the lease.
func (h *HeldLock) Owner() string { return h.lease.Owner }

// TTL is the granted time to live, which each renewal asks for again.
func (h *HeldLock) TTL() time.Duration { return h.ttl }

// Margin is how long before Deadline, at the latest, Done closes when
// renewals fail.
func (h *HeldLock) Margin() time.Duration { return h.margin }

// Deadline is the time until which the lease is certainly live: TTL after
// the last successful acquire or renewal was sent. Renewals move it on.
func (h *HeldLock) Deadline() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.deadline
}

// Done is closed when the lock is no longer held: renewal failed (Err
// matches ErrLockLost), at the latest Margin before Deadline; or Unlock
// was called (Err is ErrUnlocked).
func (h *HeldLock) Done() <-chan struct{} { return h.done }

// Err says why Done is closed; nil while it is open.
func (h *HeldLock) Err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

// Unlock stops renewing, waits for the renewal goroutine to end, and
// releases the lease. It is idempotent: once the lease is released (or
// found already gone: ErrUnknownLease is not an error here), later calls
// return nil at once; after a failed release (ctx ended, peer
// unreachable) a later call tries again. A lease whose deadline has passed
// is not released: the owner has ended it or will. Whether the lock was
// lost before Unlock is Err's business, not Unlock's.
func (h *HeldLock) Unlock(ctx context.Context) error {
	h.stopOnce.Do(func() {
		h.cancel()
		<-h.finished
		h.finish(ErrUnlocked)
	})
	h.unlockMu.Lock()
	defer h.unlockMu.Unlock()
	if h.released {
		return nil
	}
	if !time.Now().Before(h.Deadline()) {
		h.released = true
		return nil
	}
	err := h.c.Release(ctx, h.lease.Key, h.lease.Lease)
	if err != nil && !errors.Is(err, ErrUnknownLease) {
		return fmt.Errorf("client: unlock %q: %w", h.lease.Key, err)
	}
	h.released = true
	return nil
}
