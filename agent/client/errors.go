package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Sentinels for errors.Is. Every non-2xx answer is an *APIError, which
// matches the one sentinel that fits its status and route.
var (
	// ErrBadRequest: the peer refused the request as bad input (400): a bad
	// key, TTL, delta or body. Retrying the same request will not help.
	ErrBadRequest = errors.New("client: bad request")
	// ErrNotFound: a 404 on a route other than the lock routes (an unknown
	// member, say).
	ErrNotFound = errors.New("client: not found")
	// ErrUnknownLease: Renew or Release (or a HeldLock's renewal) named a
	// lease the key's owner does not know (404): it expired, was released,
	// or never was. The lock is not held under that lease.
	ErrUnknownLease = errors.New("client: unknown lease")
	// ErrHeld: the lock was still held by another lease when the acquire's
	// wait ran out (409). The *APIError carries the holder's label and the
	// time its lease has left.
	ErrHeld = errors.New("client: lock held")
	// ErrConflict: a 409 on a route other than the lock routes (a counter
	// whose merged value left int64; force-leave of an alive member).
	ErrConflict = errors.New("client: conflict")
	// ErrIdempotencyConflict: an Idempotency-Key was reused for another
	// write (422).
	ErrIdempotencyConflict = errors.New("client: idempotency key reused")
	// ErrUnavailable: the peer cannot serve the request now (503): no
	// quorum, the lock key's owner unreachable, a majority write not
	// acknowledged by a majority, or the peer still starting. Worth a retry
	// later.
	ErrUnavailable = errors.New("client: unavailable")
	// ErrUnreachable: no answer from the peer at all (connection refused,
	// reset, DNS); wrapped together with the network error. A call ended by
	// its context returns the context's error instead.
	ErrUnreachable = errors.New("client: cannot reach the peer")
)

// APIError is an answer with a non-2xx status. Its message is the peer's
// own ("what is wrong, and what to do").
type APIError struct {
	Status  int    // HTTP status code
	Message string // the answer's "error", or a description when it has none
	// Holder is the current holder's label, and Remaining the time its
	// lease had left when the peer answered (a 409 from an acquire).
	Holder    string
	Remaining time.Duration
	// Body is the raw answer, for fields this type does not name.
	Body []byte

	sentinel error
}

// Error returns the peer's message.
func (e *APIError) Error() string { return e.Message }

// Is matches the sentinel for the status: see ErrBadRequest and the rest.
func (e *APIError) Is(target error) bool { return target != nil && target == e.sentinel }

func newAPIError(r request, status int, body []byte) *APIError {
	var b struct {
		Error       string `json:"error"`
		Holder      string `json:"holder"`
		RemainingMS int64  `json:"remaining_ms"`
	}
	e := &APIError{Status: status, Body: body}
	if json.Unmarshal(body, &b) == nil && b.Error != "" {
		e.Message, e.Holder, e.Remaining = b.Error, b.Holder, time.Duration(b.RemainingMS)*time.Millisecond
	} else {
		e.Message = fmt.Sprintf("%s %s: HTTP %d %s", r.method, pathOnly(r.path), status, http.StatusText(status))
	}
	switch status {
	case http.StatusBadRequest:
		e.sentinel = ErrBadRequest
	case http.StatusNotFound:
		e.sentinel = ErrNotFound
		if r.notFound != nil {
			e.sentinel = r.notFound
		}
	case http.StatusConflict:
		e.sentinel = ErrConflict
		if r.conflict != nil {
			e.sentinel = r.conflict
		}
	case http.StatusUnprocessableEntity:
		e.sentinel = ErrIdempotencyConflict
	case http.StatusServiceUnavailable:
		e.sentinel = ErrUnavailable
	}
	return e
}

// pathOnly drops the query from an escaped path.
func pathOnly(p string) string {
	for i := 0; i < len(p); i++ {
		if p[i] == '?' {
			return p[:i]
		}
	}
	return p
}
