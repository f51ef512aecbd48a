package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Lock routes (docs/locks.md):
//
//	POST   /v1/locks/{key...}  {"ttl":"10s","wait":"5s","holder":"label"} → {"key","token","lease","ttl_ms","owner"}
//	PUT    /v1/locks/{key...}  {"lease":"<32 hex>","ttl":"10s"}           → same as POST
//	DELETE /v1/locks/{key...}?lease=<32 hex>                              → {"key","released"}
//	GET    /v1/locks/{key...}                                             → {"key","held","holder","token","remaining_ms","waiters","owner"}
//
// 400 bad input, 404 unknown lease, 409 still held after the wait (with
// "holder" and "remaining_ms"), 503 no quorum or owner unreachable.

// lockStatus maps the lock errors to HTTP status codes.
func lockStatus(err error) int {
	switch {
	case errors.Is(err, ErrBadLock):
		return http.StatusBadRequest
	case errors.Is(err, ErrLockHeld):
		return http.StatusConflict
	case errors.Is(err, ErrUnknownLease):
		return http.StatusNotFound
	case errors.Is(err, ErrNoQuorum), errors.Is(err, ErrUnavailable):
		return http.StatusServiceUnavailable
	}
	return errorStatus(err)
}

func writeLockError(w http.ResponseWriter, err error) {
	var held *LockHeldError
	if errors.As(err, &held) {
		writeJSON(w, http.StatusConflict, lockHeldAnswer{Error: err.Error(), Holder: held.Holder, RemainingMS: held.Remaining.Milliseconds()})
		return
	}
	writeError(w, lockStatus(err), err.Error())
}

type lockHeldAnswer struct {
	Error       string `json:"error"`
	Holder      string `json:"holder"`
	RemainingMS int64  `json:"remaining_ms"`
}

type lockInfoAnswer struct {
	Key         string `json:"key"`
	Held        bool   `json:"held"`
	Holder      string `json:"holder"`
	Token       int64  `json:"token"`
	RemainingMS int64  `json:"remaining_ms"`
	Waiters     int    `json:"waiters"`
	Owner       string `json:"owner"`
}

// lockBody is the JSON body of POST and PUT; durations are Go duration
// strings ("10s", "1m30s").
type lockBody struct {
	TTL    *string `json:"ttl"`
	Wait   *string `json:"wait"`
	Holder string  `json:"holder"`
	Lease  string  `json:"lease"`
}

// readLockBody decodes an optional body (empty means every default). The
// usual bodies (an object of plain strings) are read by a hand-written
// parser; anything else by encoding/json, strictly (FuzzParseLockBody
// checks that both agree).
func readLockBody(r *http.Request) (lockBody, error) {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return lockBody{}, err
		}
		return lockBody{}, fmt.Errorf("%w: cannot read the body: %v", ErrBadLock, err)
	}
	if b, ok := parseLockBodyFast(raw); ok {
		return b, nil
	}
	return parseLockBodyStrict(raw)
}

// parseLockBodyFast reads {"ttl":"…","wait":"…","holder":"…","lease":"…"},
// any of them, each at most once, as plain strings (no escapes); ok false
// for anything else, which the strict path then judges.
func parseLockBodyFast(raw []byte) (b lockBody, ok bool) {
	p := &fastParser{b: raw}
	if p.end() {
		return b, true
	}
	if !p.lit('{') {
		return b, false
	}
	seen := 0
	for first := true; ; first = false {
		if p.lit('}') {
			return b, p.end()
		}
		if !first && !p.lit(',') {
			return b, false
		}
		name, ok := p.plainString()
		if !ok || !p.lit(':') {
			return b, false
		}
		v, ok := p.plainString()
		if !ok {
			return b, false
		}
		var bit int
		switch name {
		case "ttl":
			bit, b.TTL = 1, &v
		case "wait":
			bit, b.Wait = 2, &v
		case "holder":
			bit, b.Holder = 4, v
		case "lease":
			bit, b.Lease = 8, v
		default:
			return b, false
		}
		if seen&bit != 0 {
			return b, false // a repeated field: the strict path's rules
		}
		seen |= bit
	}
}

// parseLockBodyStrict decodes a body with encoding/json: known fields
// only, one value. A holder label that is not valid UTF-8 is refused here:
// encoding/json would replace its bad bytes or unpaired surrogate escapes
// with U+FFFD.
func parseLockBodyStrict(raw []byte) (lockBody, error) {
	var body struct {
		TTL    *string  `json:"ttl"`
		Wait   *string  `json:"wait"`
		Holder jsonText `json:"holder"`
		Lease  string   `json:"lease"`
	}
	if err := checkObjectKeys(raw); err != nil {
		return lockBody{}, fmt.Errorf("%w: body is not the expected JSON (%v); send {\"ttl\":\"10s\",\"wait\":\"5s\",\"holder\":\"label\"}", ErrBadLock, err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		if errors.Is(err, io.EOF) {
			return lockBody{}, nil
		}
		return lockBody{}, fmt.Errorf("%w: body is not the expected JSON (%s); send {\"ttl\":\"10s\",\"wait\":\"5s\",\"holder\":\"label\"}", ErrBadLock, jsonBodyError(err))
	}
	if dec.More() {
		return lockBody{}, fmt.Errorf("%w: body has more than one JSON value", ErrBadLock)
	}
	if body.Holder.invalid {
		return lockBody{}, fmt.Errorf("%w: holder label is not valid UTF-8 (it has a byte that is not UTF-8 or a \\u escape of half a surrogate pair)", ErrBadLock)
	}
	return lockBody{TTL: body.TTL, Wait: body.Wait, Holder: body.Holder.s, Lease: body.Lease}, nil
}

// parseLockDuration reads an optional Go duration string.
func parseLockDuration(name string, s *string) (time.Duration, error) {
	if s == nil || *s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(*s)
	if err != nil {
		return 0, fmt.Errorf("%w: %s %q is not a duration; give one like \"10s\" or \"1m30s\"", ErrBadLock, name, *s)
	}
	if d < 0 {
		return 0, fmt.Errorf("%w: %s %q is negative", ErrBadLock, name, *s)
	}
	return d, nil
}

// parseLockTTL reads the body's ttl: absent (or "") asks for the default
// (a renewal: the lease's own TTL); a TTL given explicitly must be in range,
// so an explicit 0 is refused rather than taken for the default.
func (a *Agent) parseLockTTL(s *string, renewing bool) (time.Duration, error) {
	ttl, err := parseLockDuration("ttl", s)
	if err != nil || ttl != 0 || s == nil || *s == "" {
		return ttl, err
	}
	return 0, ttlRangeError(a.cfg.Locks.lockmgrConfig(), 0, renewing)
}

func (a *Agent) handleAcquireLock(w http.ResponseWriter, r *http.Request, key string) {
	b, err := readLockBody(r)
	if err != nil {
		writeBodyError(w, err)
		return
	}
	if b.Lease != "" {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%v: POST acquires and takes no lease; renew with PUT", ErrBadLock))
		return
	}
	ttl, err := a.parseLockTTL(b.TTL, false)
	if err == nil {
		var wait time.Duration
		if wait, err = parseLockDuration("wait", b.Wait); err == nil {
			var g LockGrant
			if g, err = a.AcquireLock(r.Context(), key, LockRequest{TTL: ttl, Wait: wait, Holder: b.Holder}); err == nil {
				writeGrant(w, g)
				return
			}
		}
	}
	writeLockError(w, err)
}

// writeGrant writes a grant's answer, encoded by hand: it is the hot path
// of every acquire and renewal (the same bytes encoding/json would write
// for lockGrantAnswer, compact).
func writeGrant(w http.ResponseWriter, g LockGrant) {
	b := make([]byte, 0, 128+len(g.Key))
	b = append(b, `{"key":`...)
	b = appendJSONString(b, g.Key)
	b = append(b, `,"token":`...)
	b = strconv.AppendInt(b, g.Token, 10)
	b = append(b, `,"lease":`...)
	b = appendJSONString(b, g.Lease)
	b = append(b, `,"ttl_ms":`...)
	b = strconv.AppendInt(b, g.TTL.Milliseconds(), 10)
	b = append(b, `,"owner":`...)
	b = appendJSONString(b, g.Owner)
	b = append(b, "}\n"...)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

func (a *Agent) handleRenewLock(w http.ResponseWriter, r *http.Request, key string) {
	b, err := readLockBody(r)
	if err != nil {
		writeBodyError(w, err)
		return
	}
	if b.Wait != nil || b.Holder != "" {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%v: PUT renews and takes only \"lease\" and \"ttl\"", ErrBadLock))
		return
	}
	ttl, err := a.parseLockTTL(b.TTL, true)
	if err == nil {
		var g LockGrant
		if g, err = a.RenewLock(r.Context(), key, b.Lease, ttl); err == nil {
			writeGrant(w, g)
			return
		}
	}
	writeLockError(w, err)
}

func (a *Agent) handleReleaseLock(w http.ResponseWriter, r *http.Request, key string) {
	lease := r.URL.Query().Get("lease")
	if lease == "" {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%v: give the lease to release as ?lease=<32 hex digits>", ErrBadLock))
		return
	}
	if err := a.ReleaseLock(r.Context(), key, lease); err != nil {
		writeLockError(w, err)
		return
	}
	b := append(appendJSONString([]byte(`{"key":`), key), `,"released":true}`+"\n"...)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

func (a *Agent) handleLockInfo(w http.ResponseWriter, r *http.Request, key string) {
	st, err := a.LockInfo(r.Context(), key)
	if err != nil {
		writeLockError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, lockInfoAnswer{Key: key, Held: st.Held, Holder: st.Holder, Token: st.Token,
		RemainingMS: st.Remaining.Milliseconds(), Waiters: st.Waiters, Owner: st.Owner})
}
