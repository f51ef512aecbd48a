package main

import (
	"context"
	"fmt"
	"net"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ringleader/ringleader/agent/store"
	"github.com/ringleader/ringleader/crdt"
)

// The storage floor acknowledges each increment only once it is in the
// store: after the run, the data dir reopened holds exactly the
// acknowledged increments.
func TestStoreFloorMakesEveryIncrementDurable(t *testing.T) {
	dir := t.TempDir()
	s, err := newStoreServer(dir)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveHTTP(ctx, l, s.handler()) }()

	r, code, stderr := runJSON(t, "--mode", "incr", "--target", l.Addr().String(), "--connections", "8", "--requests", "800", "--keys", "50", "--duration", "20s")
	cancel()
	if err := <-done; err != nil {
		t.Errorf("store floor: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	checkConsistent(t, r)
	if r.Successes != 800 || r.Increments != 800 || s.served.Load() != 800 {
		t.Fatalf("successes %d increments %d served %d, want 800 each", r.Successes, r.Increments, s.served.Load())
	}

	db, err := store.Open(dir, store.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	cs, err := crdt.New(crdt.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.LoadCounters(cs); err != nil {
		t.Fatal(err)
	}
	var sum, last int64
	keys, lastKey := 0, ""
	if err := db.ScanCounters(func(key string, _ []byte) error {
		keys++
		v, err := cs.Value(key)
		sum += v
		last, lastKey = v, key
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if sum != 800 || keys == 0 || keys > 50 {
		t.Fatalf("reopened store: %d keys summing to %d, want at most 50 keys summing to 800", keys, sum)
	}

	// Restarted on the same dir, it goes on from the counts there.
	s2, err := newStoreServer(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	rec := httptest.NewRecorder()
	s2.handler().ServeHTTP(rec, httptest.NewRequest("POST", "/v1/counters/"+lastKey, strings.NewReader(`{"delta":1}`)))
	if want := fmt.Sprintf(`"value":%d`, last+1); rec.Code != 200 || !strings.Contains(rec.Body.String(), want) {
		t.Fatalf("after a restart, +1 on %q (was %d): %d %s, want %s", lastKey, last, rec.Code, rec.Body, want)
	}
	rec = httptest.NewRecorder()
	s2.handler().ServeHTTP(rec, httptest.NewRequest("GET", "/v1/counters/"+lastKey, nil))
	if rec.Code != 404 || !strings.Contains(rec.Body.String(), "answers only POST") {
		t.Fatalf("GET: %d %s, want a JSON 404 saying what it answers", rec.Code, rec.Body)
	}
}
