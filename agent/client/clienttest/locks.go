// Package clienttest serves the lock routes of the HTTP API from an
// in-memory table, for tests of code that uses agent/client (as
// net/http/httptest serves HTTP). It is a stand-in, not the protocol: one
// table, no ring owners, no quorum, no drift. Faults make it fail or hang
// renewals and slow its answers.
package clienttest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// LockServer implements the lock routes of the HTTP API (POST, PUT, DELETE
// and GET /v1/locks/{key...}) over an in-memory table, timing each lease
// from when its request arrived, as a real owner does (that is after the
// client sent it). Acquires wait in the queue up to their wait. Serve it
// with httptest.NewServer. Its methods are safe for concurrent use.
type LockServer struct {
	// mu guards every field below.
	mu      sync.Mutex
	locks   map[string]*lockEntry
	token   int64
	leaseN  int
	renew   RenewMode     // how PUT answers
	delay   time.Duration // held before answering a grant or renewal
	changed chan struct{} // closed and replaced on every release
	seen    []Request
	ends    map[string]time.Time // by lease ID: the expiry last granted
}

// RenewMode is how a LockServer answers renewals.
type RenewMode string

const (
	RenewOK          RenewMode = "ok"   // renew live leases, 404 others
	RenewUnknown     RenewMode = "404"  // 404 unknown lease, always
	RenewUnavailable RenewMode = "503"  // 503 no quorum, always
	RenewHang        RenewMode = "hang" // answer nothing until the client gives up
)

type lockEntry struct {
	holder  string
	token   int64
	lease   string // "" when free
	expiry  time.Time
	waiters int
}

// Request is a request as it arrived.
type Request struct {
	Method string
	Key    string
	Lease  string // of a PUT or DELETE
	At     time.Time
}

// NewLockServer returns an empty table that renews normally and answers at
// once.
func NewLockServer() *LockServer {
	return &LockServer{locks: map[string]*lockEntry{}, ends: map[string]time.Time{}, renew: RenewOK, changed: make(chan struct{})}
}

// SetRenew sets how later renewals are answered.
func (f *LockServer) SetRenew(mode RenewMode) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.renew = mode
}

// SetDelay holds later grant and renewal answers for d after the lease
// was granted or renewed: a slow network or a paused client.
func (f *LockServer) SetDelay(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.delay = d
}

// Requests returns the requests seen so far with method (all for ""), in
// order of arrival.
func (f *LockServer) Requests(method string) []Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	var rs []Request
	for _, r := range f.seen {
		if method == "" || r.Method == method {
			rs = append(rs, r)
		}
	}
	return rs
}

// Expiry is when lease ends (or ended) as last granted or renewed, even
// if it was released sooner: the latest its holder may count on. Zero for
// a lease never granted.
func (f *LockServer) Expiry(lease string) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ends[lease]
}

// live returns the lock on key if held now. f.mu must be held.
func (f *LockServer) live(key string, now time.Time) *lockEntry {
	l := f.locks[key]
	if l == nil || l.lease == "" || !now.Before(l.expiry) {
		return nil
	}
	return l
}

// notify wakes the waiters. f.mu must be held.
func (f *LockServer) notify() {
	close(f.changed)
	f.changed = make(chan struct{})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func (f *LockServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	key, ok := strings.CutPrefix(r.URL.Path, "/v1/locks/")
	if !ok || key == "" {
		writeErr(w, 404, "no route "+r.URL.Path)
		return
	}
	var body struct {
		TTL    string `json:"ttl"`
		Wait   string `json:"wait"`
		Holder string `json:"holder"`
		Lease  string `json:"lease"`
	}
	if r.Method == "POST" || r.Method == "PUT" {
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			writeErr(w, 400, "bad body: "+err.Error())
			return
		}
	}
	ttl, wait := 10*time.Second, time.Duration(0)
	var err error
	if body.TTL != "" {
		if ttl, err = time.ParseDuration(body.TTL); err != nil {
			writeErr(w, 400, "ttl: "+err.Error())
			return
		}
	}
	if body.Wait != "" {
		if wait, err = time.ParseDuration(body.Wait); err != nil {
			writeErr(w, 400, "wait: "+err.Error())
			return
		}
	}
	lease := body.Lease
	if r.Method == "DELETE" {
		lease = r.URL.Query().Get("lease")
	}
	f.mu.Lock()
	f.seen = append(f.seen, Request{Method: r.Method, Key: key, Lease: lease, At: now})
	delay, renew := f.delay, f.renew
	f.mu.Unlock()

	switch r.Method {
	case "POST":
		f.acquire(w, r, key, body.Holder, ttl, now.Add(wait), delay)
	case "PUT":
		switch renew {
		case RenewUnknown:
			writeErr(w, 404, "unknown lease "+lease)
			return
		case RenewUnavailable:
			writeErr(w, 503, "no quorum: 2 of 5 voters promised")
			return
		case RenewHang:
			<-r.Context().Done()
			return
		}
		f.mu.Lock()
		l := f.live(key, now)
		if l == nil || l.lease != lease {
			f.mu.Unlock()
			writeErr(w, 404, "unknown lease "+lease)
			return
		}
		l.expiry = now.Add(ttl)
		f.ends[l.lease] = l.expiry
		ans := map[string]any{"key": key, "token": l.token, "lease": l.lease, "ttl_ms": ttl.Milliseconds(), "owner": "fake-1"}
		f.mu.Unlock()
		pause(r, delay)
		writeJSON(w, 200, ans)
	case "DELETE":
		f.mu.Lock()
		defer f.mu.Unlock()
		l := f.live(key, now)
		if l == nil || l.lease != lease {
			writeErr(w, 404, "unknown lease "+lease)
			return
		}
		l.lease, l.holder, l.token = "", "", 0
		f.notify()
		writeJSON(w, 200, map[string]any{"key": key, "released": true})
	case "GET":
		f.mu.Lock()
		defer f.mu.Unlock()
		ans := map[string]any{"key": key, "held": false, "holder": "", "token": 0, "remaining_ms": 0, "waiters": 0, "owner": "fake-1"}
		if l := f.locks[key]; l != nil {
			ans["waiters"] = l.waiters
		}
		if l := f.live(key, now); l != nil {
			ans["held"], ans["holder"], ans["token"], ans["remaining_ms"] = true, l.holder, l.token, l.expiry.Sub(now).Milliseconds()
		}
		writeJSON(w, 200, ans)
	default:
		writeErr(w, 405, r.Method+" not allowed")
	}
}

// acquire grants key when it is free, waiting until waitUntil; the lease
// is timed from the grant (the request's arrival when the key is free).
func (f *LockServer) acquire(w http.ResponseWriter, r *http.Request, key, holder string, ttl time.Duration, waitUntil time.Time, delay time.Duration) {
	f.mu.Lock()
	if f.locks[key] == nil {
		f.locks[key] = &lockEntry{}
	}
	l := f.locks[key]
	waiting := false
	for {
		now := time.Now()
		cur := f.live(key, now)
		if cur == nil || !now.Before(waitUntil) {
			if waiting {
				l.waiters--
			}
			code, ans := 200, map[string]any{}
			if cur == nil {
				f.token++
				f.leaseN++
				l.holder, l.token, l.lease, l.expiry = holder, f.token, fmt.Sprintf("%032x", f.leaseN), now.Add(ttl)
				f.ends[l.lease] = l.expiry
				ans = map[string]any{"key": key, "token": l.token, "lease": l.lease, "ttl_ms": ttl.Milliseconds(), "owner": "fake-1"}
			} else {
				code = 409
				ans = map[string]any{"error": fmt.Sprintf("%q is held by %q", key, cur.holder), "holder": cur.holder, "remaining_ms": cur.expiry.Sub(now).Milliseconds()}
			}
			f.mu.Unlock()
			if code == 200 {
				pause(r, delay)
			}
			writeJSON(w, code, ans)
			return
		}
		if !waiting {
			waiting = true
			l.waiters++
		}
		changed, expiry := f.changed, cur.expiry
		f.mu.Unlock()
		t := time.NewTimer(time.Until(minTime(waitUntil, expiry)))
		select {
		case <-changed:
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			f.mu.Lock()
			l.waiters--
			f.mu.Unlock()
			return
		}
		t.Stop()
		f.mu.Lock()
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// pause holds an answer for d (a slow network), or until the client gives
// up.
func pause(r *http.Request, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	}
}
