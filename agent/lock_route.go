package agent

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/ringleader/ringleader/lockmgr"
)

// Peer RPC method that carries a lock request to the owner of its key.
const methodLockOp = "lock.op"

// maxLockHops is how many times a lock request follows another peer's view
// of who owns its key before giving up with 503.
const maxLockHops = 3

// Lock operations.
const (
	opAcquire = "acquire"
	opRenew   = "renew"
	opRelease = "release"
	opInfo    = "info"
)

// lockOpRequest is one lock request forwarded to the owner of Key.
type lockOpRequest struct {
	Op     string        `msgpack:"op"`
	Key    string        `msgpack:"k"`
	Holder string        `msgpack:"h,omitempty"`
	TTL    time.Duration `msgpack:"t,omitempty"`
	Wait   time.Duration `msgpack:"w,omitempty"`
	Lease  string        `msgpack:"l,omitempty"`
	// Fallback marks a renew or release that a new owner sent on to the
	// previous one because it does not know the lease (yet): the previous
	// owner answers it, and does not send it back.
	Fallback bool `msgpack:"fb,omitempty"`
	// Skip names a peer that said it is leaving: owners are computed as if
	// it had left already (others may not have seen the leave yet).
	Skip string `msgpack:"sk,omitempty"`
}

// lockOpResponse is the owner's answer: Code says which (the agent's error
// it stands for), Redirect names the owner in the answering peer's view
// when it is not the owner itself.
type lockOpResponse struct {
	Code      string        `msgpack:"c"`
	Error     string        `msgpack:"e,omitempty"`
	Redirect  string        `msgpack:"r,omitempty"`
	Owner     string        `msgpack:"o,omitempty"`
	Token     int64         `msgpack:"tk,omitempty"`
	Lease     string        `msgpack:"l,omitempty"`
	TTL       time.Duration `msgpack:"t,omitempty"`
	Held      bool          `msgpack:"hd,omitempty"`
	Holder    string        `msgpack:"h,omitempty"`
	Remaining time.Duration `msgpack:"rm,omitempty"`
	Waiters   int           `msgpack:"wt,omitempty"`
	Fallback  bool          `msgpack:"fb,omitempty"`
	// Leaving: the answering peer is leaving the cluster.
	Leaving bool `msgpack:"lv,omitempty"`
}

// Codes of a lockOpResponse.
const (
	codeOK          = "ok"
	codeRedirect    = "redirect"
	codeHeld        = "held"
	codeBadRequest  = "bad-request"
	codeUnknown     = "unknown-lease"
	codeNoQuorum    = "no-quorum"
	codeUnavailable = "unavailable"
)

// AcquireLock grants key to req through the key's owner (any peer takes
// the request and forwards it), waiting up to req.Wait while it is held.
func (a *Agent) AcquireLock(ctx context.Context, key string, req LockRequest) (LockGrant, error) {
	resp, err := a.lockOp(ctx, &lockOpRequest{Op: opAcquire, Key: key, Holder: req.Holder, TTL: req.TTL, Wait: req.Wait})
	if err != nil {
		return LockGrant{}, err
	}
	return LockGrant{Key: key, Token: resp.Token, Lease: resp.Lease, TTL: resp.TTL, Owner: resp.Owner}, nil
}

// RenewLock extends the live lease on key to ttl from now (0: the TTL it
// was granted with).
func (a *Agent) RenewLock(ctx context.Context, key, lease string, ttl time.Duration) (LockGrant, error) {
	resp, err := a.lockOp(ctx, &lockOpRequest{Op: opRenew, Key: key, Lease: lease, TTL: ttl})
	if err != nil {
		return LockGrant{}, err
	}
	return LockGrant{Key: key, Token: resp.Token, Lease: resp.Lease, TTL: resp.TTL, Owner: resp.Owner}, nil
}

// ReleaseLock ends the live lease on key and hands the key to the next
// waiter.
func (a *Agent) ReleaseLock(ctx context.Context, key, lease string) error {
	_, err := a.lockOp(ctx, &lockOpRequest{Op: opRelease, Key: key, Lease: lease})
	return err
}

// LockInfo describes key as its owner sees it.
func (a *Agent) LockInfo(ctx context.Context, key string) (LockStatus, error) {
	resp, err := a.lockOp(ctx, &lockOpRequest{Op: opInfo, Key: key})
	if err != nil {
		return LockStatus{}, err
	}
	return LockStatus{Key: key, Held: resp.Held, Holder: resp.Holder, Token: resp.Token,
		Remaining: resp.Remaining, Waiters: resp.Waiters, Owner: resp.Owner}, nil
}

// lockOp checks req, then takes it to the owner of its key: served here when
// this peer's ring names it the owner, else forwarded over peer RPC,
// following the owner's own view at most maxLockHops times.
func (a *Agent) lockOp(ctx context.Context, req *lockOpRequest) (*lockOpResponse, error) {
	ls, err := a.lockService()
	if err != nil {
		return nil, err
	}
	if err := checkLockRequest(req); err != nil {
		return nil, err
	}
	target, err := a.view.load().Ring.Owner(req.Key)
	if err != nil {
		return nil, fmt.Errorf("%w: no alive peer owns lock key %q: %v", ErrUnavailable, req.Key, err)
	}
	// The owner may run a promise round (bounded by one RPC timeout) before
	// it answers, and wait up to req.Wait.
	timeout := 2*a.cfg.RPCTimeout + req.Wait
	for hop := 0; ; hop++ {
		var resp *lockOpResponse
		if target == a.cfg.NodeName {
			resp = ls.serve(ctx, req)
		} else {
			if resp, err = a.forwardLock(ctx, target, req, timeout); err != nil {
				return nil, err
			}
		}
		if resp.Code != codeRedirect {
			return resp, resp.err(req.Key)
		}
		req.Fallback = req.Fallback || resp.Fallback
		if resp.Leaving {
			req.Skip = target
		}
		a.metrics.lockRedirects.Inc()
		if hop == maxLockHops {
			return nil, fmt.Errorf("%w: the peers disagree on who owns lock key %q (last said %s after %d redirects); the ring is settling, retry in a moment",
				ErrUnavailable, req.Key, resp.Redirect, hop)
		}
		target = resp.Redirect
	}
}

func (a *Agent) forwardLock(ctx context.Context, target string, req *lockOpRequest, timeout time.Duration) (*lockOpResponse, error) {
	addr, ok := a.view.load().RPC[target]
	if !ok {
		return nil, fmt.Errorf("%w: %s, the owner of lock key %q, is not alive here; retry once the ring has settled", ErrUnavailable, target, req.Key)
	}
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, errOwnerSilent)
	defer cancel()
	if req.Wait > a.cfg.RPCTimeout {
		// The owner may rightly hold the request for the whole wait; ping
		// it meanwhile, so an owner that stopped answering gives a 503
		// within a few RPC timeouts, not at the end of the wait.
		var stop context.CancelCauseFunc
		ctx, stop = context.WithCancelCause(ctx)
		defer stop(nil)
		go a.watchOwner(ctx, addr, stop)
	}
	var resp lockOpResponse
	if err := a.call(ctx, addr, methodLockOp, req, &resp); err != nil {
		if cause := context.Cause(ctx); cause != nil && cause != context.Canceled {
			err = cause
		}
		return nil, fmt.Errorf("%w: %s, the owner of lock key %q, did not answer: %v", ErrUnavailable, target, req.Key, err)
	}
	return &resp, nil
}

var errOwnerSilent = errors.New("no answer within the request's wait plus two RPC timeouts")

// watchOwner pings addr every RPC timeout until ctx ends, and cancels ctx
// with the reason when a ping fails.
func (a *Agent) watchOwner(ctx context.Context, addr string, cancel context.CancelCauseFunc) {
	for {
		t := a.clock.NewTimer(a.cfg.RPCTimeout)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
		pctx, pcancel := context.WithTimeout(ctx, a.cfg.RPCTimeout)
		_, err := a.pingAddr(pctx, addr)
		pcancel()
		if err != nil && ctx.Err() == nil {
			cancel(fmt.Errorf("it stopped answering pings while the request waited: %w", err))
			return
		}
	}
}

func (a *Agent) handleLockOp(ctx context.Context, req *lockOpRequest) (*lockOpResponse, error) {
	ls, err := a.lockService()
	if err != nil {
		return nil, err
	}
	if err := checkLockRequest(req); err != nil {
		return errorResponse(err), nil
	}
	return ls.serve(ctx, req), nil
}

// checkHolder refuses a holder label that is too long, not UTF-8 or has a
// control character, as keys are (ValidateKey): labels are printed to
// terminals ('peer lock info'), so one must not carry line breaks or escape
// sequences.
func checkHolder(holder string) error {
	if len(holder) > lockmgr.MaxHolderLen {
		return fmt.Errorf("%w: a holder label must be at most %d bytes, got %d", ErrBadLock, lockmgr.MaxHolderLen, len(holder))
	}
	if !utf8.ValidString(holder) {
		return fmt.Errorf("%w: holder label is not valid UTF-8", ErrBadLock)
	}
	for i, r := range holder {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: holder label has control character %U at byte %d; use printable text such as \"cron@web1\"", ErrBadLock, r, i)
		}
	}
	return nil
}

// checkLockRequest refuses bad input before it travels.
func checkLockRequest(req *lockOpRequest) error {
	if err := ValidateKey(req.Key); err != nil { // the same keys as counters
		return fmt.Errorf("%w: %v", ErrBadLock, err)
	}
	if err := checkHolder(req.Holder); err != nil {
		return err
	}
	switch req.Op {
	case opAcquire, opInfo:
	case opRenew, opRelease:
		if _, err := parseLeaseID(req.Lease); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%w: unknown lock operation %q", ErrBadLock, req.Op)
	}
	if req.TTL < 0 || req.Wait < 0 {
		return fmt.Errorf("%w: ttl and wait must not be negative", ErrBadLock)
	}
	return nil
}

// parseLeaseID reads a lease ID: 32 hex digits.
func parseLeaseID(s string) (lockmgr.LeaseID, error) {
	var id lockmgr.LeaseID
	if len(s) != 2*len(id) {
		return id, fmt.Errorf("%w: a lease ID is %d hex digits, got %d characters", ErrBadLock, 2*len(id), len(s))
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("%w: lease ID %q is not hex", ErrBadLock, s)
	}
	return id, nil
}

// serve answers a lock request here if this peer's ring names it the owner
// of the key, else redirects to the owner it sees.
func (ls *lockService) serve(ctx context.Context, req *lockOpRequest) *lockOpResponse {
	resp := ls.serveOp(ctx, req)
	if resp.Code == codeRedirect && ls.isLeaving() {
		resp.Leaving = true // so the next hops leave this peer out
	}
	return resp
}

func (ls *lockService) serveOp(ctx context.Context, req *lockOpRequest) *lockOpResponse {
	skip := req.Skip
	if skip == ls.self.Name {
		skip = ""
	}
	owner, err := ownerOn(ls.a.view.load().Ring, req.Key, skip)
	if err != nil {
		return errorResponse(fmt.Errorf("%w: no alive peer owns lock key %q here: %v", ErrUnavailable, req.Key, err))
	}
	if ls.isLeaving() && !ls.holds(req.Key) {
		if to, err := ownerOn(ls.a.view.load().Ring, req.Key, ls.self.Name); err == nil {
			return &lockOpResponse{Code: codeRedirect, Redirect: to, Leaving: true}
		}
		return errorResponse(fmt.Errorf("%w: %s is leaving the cluster and no other peer owns %q", ErrUnavailable, ls.self.Name, req.Key))
	}
	if owner != ls.self.Name && !ls.holds(req.Key) {
		if req.Fallback && (req.Op == opRenew || req.Op == opRelease) {
			// The new owner sent this here and does not know it either:
			// unknown, unless this peer is handing the key over right now
			// (retry) or just did (the lease is there by now).
			switch to, done := ls.movingTo(req.Key); {
			case done && to != ls.self.Name:
				return &lockOpResponse{Code: codeRedirect, Redirect: to}
			case to != "":
				return errorResponse(fmt.Errorf("%w: lock key %q is being handed over to %s; retry in a moment", ErrUnavailable, req.Key, to))
			}
			return errorResponse(fmt.Errorf("%w: key %q has no live lease %s", ErrUnknownLease, req.Key, req.Lease))
		}
		return &lockOpResponse{Code: codeRedirect, Redirect: owner}
	}
	me := ls.self.Name
	switch req.Op {
	case opAcquire:
		l, err := ls.acquire(ctx, req.Key, LockRequest{TTL: req.TTL, Wait: req.Wait, Holder: req.Holder})
		if err != nil {
			return errorResponse(err)
		}
		return grantResponse(l, me, l.Expiry.Sub(ls.a.clock.Now()).Truncate(time.Millisecond))
	case opRenew, opRelease:
		id, err := parseLeaseID(req.Lease)
		if err != nil {
			return errorResponse(err)
		}
		if req.Op == opRelease {
			if err := ls.release(req.Key, id); err != nil {
				return errorResponse(err)
			}
			return &lockOpResponse{Code: codeOK, Owner: me}
		}
		l, err := ls.renew(ctx, req.Key, id, req.TTL)
		if err != nil {
			return errorResponse(err)
		}
		return grantResponse(l, me, l.Expiry.Sub(ls.a.clock.Now()).Truncate(time.Millisecond))
	default:
		in := ls.info(req.Key)
		return &lockOpResponse{Code: codeOK, Owner: me, Held: in.Held, Holder: in.Holder, Token: in.Lease.Token,
			Remaining: in.Remaining, Waiters: in.Waiters}
	}
}

// grantResponse answers a grant or renewal of l with ttl, what is left of
// it as the answer leaves: the holder counts it from when it sent the
// request, so it ends no later than the owner's lease.
func grantResponse(l lockmgr.Lease, owner string, ttl time.Duration) *lockOpResponse {
	return &lockOpResponse{Code: codeOK, Owner: owner, Token: l.Token, Lease: l.ID.String(), TTL: ttl}
}

// errorResponse carries an agent error over the wire.
func errorResponse(err error) *lockOpResponse {
	r := &lockOpResponse{Error: err.Error()}
	var held *LockHeldError
	var rd *redirectError
	switch {
	case errors.As(err, &rd):
		r.Code, r.Redirect, r.Fallback = codeRedirect, rd.to, rd.fallback
	case errors.As(err, &held):
		r.Code, r.Holder, r.Remaining = codeHeld, held.Holder, held.Remaining
	case errors.Is(err, ErrBadLock):
		r.Code = codeBadRequest
	case errors.Is(err, ErrUnknownLease):
		r.Code = codeUnknown
	case errors.Is(err, ErrNoQuorum):
		r.Code = codeNoQuorum
	default:
		r.Code = codeUnavailable
	}
	return r
}

// err turns a response back into the agent's error (nil for codeOK).
func (r *lockOpResponse) err(key string) error {
	switch r.Code {
	case codeOK:
		return nil
	case codeHeld:
		return &LockHeldError{Key: key, Holder: r.Holder, Remaining: r.Remaining}
	case codeBadRequest:
		return fmt.Errorf("%w: %s", ErrBadLock, trimPrefix(r.Error, ErrBadLock))
	case codeUnknown:
		return fmt.Errorf("%w: %s", ErrUnknownLease, trimPrefix(r.Error, ErrUnknownLease))
	case codeNoQuorum:
		return fmt.Errorf("%w: %s", ErrNoQuorum, trimPrefix(r.Error, ErrNoQuorum))
	}
	return fmt.Errorf("%w: %s", ErrUnavailable, trimPrefix(r.Error, ErrUnavailable))
}

// trimPrefix drops the "<sentinel>: " that wrapping adds again.
func trimPrefix(msg string, sentinel error) string {
	p := sentinel.Error() + ": "
	if len(msg) >= len(p) && msg[:len(p)] == p {
		return msg[len(p):]
	}
	return msg
}
