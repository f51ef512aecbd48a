package store

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

func putIdem(t tb, db *DB, key, value string, expires time.Time) {
	t.Helper()
	b := db.NewBatch()
	if err := b.PutIdempotency(key, []byte(value), expires); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
}

func TestIdempotencyGet(t *testing.T) {
	db := openMem(t, vfs.NewMem())
	defer db.Close()
	exp := testNow.Add(10 * time.Minute)
	putIdem(t, db, "req-1", `{"key":"k","value":3}`, exp)
	putIdem(t, db, "req-2", "", exp)
	tests := []struct {
		name   string
		key    string
		now    time.Time
		want   string
		wantOK bool
	}{
		{"fresh", "req-1", testNow, `{"key":"k","value":3}`, true},
		{"a nanosecond before expiry", "req-1", exp.Add(-time.Nanosecond), `{"key":"k","value":3}`, true},
		{"at expiry", "req-1", exp, "", false},
		{"after expiry", "req-1", exp.Add(time.Hour), "", false},
		{"empty value", "req-2", testNow, "", true},
		{"never put", "req-3", testNow, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, ok, err := db.GetIdempotency(tt.key, tt.now)
			if err != nil {
				t.Fatal(err)
			}
			if ok != tt.wantOK || string(v) != tt.want {
				t.Fatalf("GetIdempotency = %q, %v; want %q, %v", v, ok, tt.want, tt.wantOK)
			}
		})
	}
	// Put again: the new value and expiry replace the old.
	later := exp.Add(time.Hour)
	putIdem(t, db, "req-1", "second", later)
	if v, ok, err := db.GetIdempotency("req-1", exp.Add(time.Minute)); err != nil || !ok || string(v) != "second" {
		t.Fatalf("after a second put: %q, %v, %v; want \"second\", true", v, ok, err)
	}
}

func TestIdempotencyRejects(t *testing.T) {
	db := openMem(t, vfs.NewMem())
	defer db.Close()
	tests := []struct {
		name  string
		key   string
		value []byte
		want  error
	}{
		{"empty key", "", nil, ErrBadKey},
		{"key too long", strings.Repeat("k", MaxIdempotencyKeyLen+1), nil, ErrBadKey},
		{"value too large", "k", make([]byte, MaxIdempotencyValueLen+1), ErrBadValue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := db.NewBatch()
			defer b.Close()
			if err := b.PutIdempotency(tt.key, tt.value, testNow); !errors.Is(err, tt.want) {
				t.Fatalf("PutIdempotency: got %v, want %v", err, tt.want)
			}
			if b.Len() != 0 {
				t.Fatalf("batch holds %d writes after a refused one", b.Len())
			}
		})
	}
	if _, _, err := db.GetIdempotency("", testNow); !errors.Is(err, ErrBadKey) {
		t.Fatalf("GetIdempotency of an empty key: got %v, want ErrBadKey", err)
	}
	// The largest key and value are accepted.
	putIdem(t, db, strings.Repeat("k", MaxIdempotencyKeyLen), string(make([]byte, MaxIdempotencyValueLen)), testNow.Add(time.Minute))
}

// keyspaceLen counts the keys under prefix.
func keyspaceLen(t tb, db *DB, prefix byte) int {
	t.Helper()
	iter, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: []byte{prefix}, UpperBound: keyspaceEnd(prefix)})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for valid := iter.First(); valid; valid = iter.Next() {
		n++
	}
	if err := iter.Close(); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestDeleteExpiredIdempotencyBounded(t *testing.T) {
	db := openMem(t, vfs.NewMem())
	defer db.Close()
	// 100 records expiring a second apart, written in a scrambled order.
	const n = 100
	for i := range n {
		j := (i * 37) % n
		putIdem(t, db, fmt.Sprintf("req-%03d", j), "v", testNow.Add(time.Duration(j)*time.Second))
	}
	// At testNow+29.5s, records 0..29 have expired.
	now := testNow.Add(29*time.Second + 500*time.Millisecond)
	steps := []struct {
		max       int
		wantN     int
		wantMore  bool
		firstLive int // the oldest record still readable at testNow
	}{
		{max: 10, wantN: 10, wantMore: true, firstLive: 10},
		{max: 10, wantN: 10, wantMore: true, firstLive: 20},
		{max: 15, wantN: 10, wantMore: false, firstLive: 30},
		{max: 15, wantN: 0, wantMore: false, firstLive: 30},
	}
	for i, st := range steps {
		got, more, err := db.DeleteExpiredIdempotency(now, st.max)
		if err != nil {
			t.Fatal(err)
		}
		if got != st.wantN || more != st.wantMore {
			t.Fatalf("step %d: deleted %d, more %v; want %d, %v", i, got, more, st.wantN, st.wantMore)
		}
		// Oldest first: exactly the records before firstLive are gone (read at testNow,
		// before any of them expired).
		for j := range n {
			_, ok, err := db.GetIdempotency(fmt.Sprintf("req-%03d", j), testNow)
			if err != nil {
				t.Fatal(err)
			}
			if ok != (j >= st.firstLive) {
				t.Fatalf("step %d: record %d present = %v, want %v", i, j, ok, j >= st.firstLive)
			}
		}
	}
	if got, want := keyspaceLen(t, db, prefixIdempotency), n-30; got != want {
		t.Fatalf("%d idempotency records left, want %d", got, want)
	}
	if got, err := db.CountIdempotency(); err != nil || got != n-30 {
		t.Fatalf("CountIdempotency = %d, %v; want %d", got, err, n-30)
	}
	if got, want := keyspaceLen(t, db, prefixExpiry), n-30; got != want {
		t.Fatalf("%d expiry index entries left, want %d", got, want)
	}
	if got, _, err := db.DeleteExpiredIdempotency(now, 0); err != nil || got != 0 {
		t.Fatalf("max 0 deleted %d, %v", got, err)
	}
}

func TestDeleteExpiredIdempotencyKeepsRenewed(t *testing.T) {
	db := openMem(t, vfs.NewMem())
	defer db.Close()
	putIdem(t, db, "req", "first", testNow.Add(time.Second))
	putIdem(t, db, "req", "second", testNow.Add(time.Hour))
	// The first expiry passes: its index entry goes, the renewed record stays.
	if got, _, err := db.DeleteExpiredIdempotency(testNow.Add(time.Minute), 10); err != nil || got != 1 {
		t.Fatalf("deleted %d, %v; want 1 stale index entry", got, err)
	}
	if v, ok, err := db.GetIdempotency("req", testNow.Add(time.Minute)); err != nil || !ok || string(v) != "second" {
		t.Fatalf("renewed record: %q, %v, %v", v, ok, err)
	}
	if got, _, err := db.DeleteExpiredIdempotency(testNow.Add(2*time.Hour), 10); err != nil || got != 1 {
		t.Fatalf("deleted %d, %v; want 1", got, err)
	}
	if n := keyspaceLen(t, db, prefixIdempotency) + keyspaceLen(t, db, prefixExpiry); n != 0 {
		t.Fatalf("%d keys left, want 0", n)
	}
}

// TestDeleteExpiredIdempotencyRace renews expired records while the cleanup runs: a record
// renewed before a cleanup pass ends must survive it.
func TestDeleteExpiredIdempotencyRace(t *testing.T) {
	db := openMem(t, vfs.NewMem())
	defer db.Close()
	const n = 200
	now := testNow.Add(time.Minute)
	for i := range n {
		putIdem(t, db, fmt.Sprintf("req-%d", i), "old", testNow) // all expired at now
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range n {
			b := db.NewBatch()
			if err := b.PutIdempotency(fmt.Sprintf("req-%d", i), []byte("renewed"), now.Add(time.Hour)); err != nil {
				t.Error(err)
			}
			if err := b.Commit(false); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Go(func() {
		for {
			_, more, err := db.DeleteExpiredIdempotency(now, 7)
			if err != nil {
				t.Error(err)
			}
			if err != nil || !more {
				return
			}
		}
	})
	wg.Wait()
	for i := range n {
		if v, ok, err := db.GetIdempotency(fmt.Sprintf("req-%d", i), now); err != nil || !ok || string(v) != "renewed" {
			t.Fatalf("record %d after renewal: %q, %v, %v", i, v, ok, err)
		}
	}
}

func TestMeta(t *testing.T) {
	fs := vfs.NewMem()
	db := openMem(t, fs)
	defer func() { _ = db.Close() }()
	b := db.NewBatch()
	for _, m := range []struct{ name, value string }{{"incarnation", "\x00\x00\x01"}, {"boot", "7"}, {"empty", ""}} {
		if err := b.PutMeta(m.name, []byte(m.value)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openMem(t, fs)
	tests := []struct {
		name, want string
		wantOK     bool
		wantErr    error
	}{
		{"incarnation", "\x00\x00\x01", true, nil},
		{"boot", "7", true, nil},
		{"empty", "", true, nil},
		{"missing", "", false, nil},
		{"", "", false, ErrBadKey},
		{strings.Repeat("m", MaxMetaNameLen+1), "", false, ErrBadKey},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%.20q", tt.name), func(t *testing.T) {
			v, ok, err := db.GetMeta(tt.name)
			if !errors.Is(err, tt.wantErr) || ok != tt.wantOK || string(v) != tt.want {
				t.Fatalf("GetMeta = %q, %v, %v; want %q, %v, %v", v, ok, err, tt.want, tt.wantOK, tt.wantErr)
			}
		})
	}
	b = db.NewBatch()
	defer b.Close()
	if err := b.PutMeta("big", make([]byte, MaxMetaValueLen+1)); !errors.Is(err, ErrBadValue) {
		t.Fatalf("PutMeta of a too large value: %v, want ErrBadValue", err)
	}
}

func TestBatchDone(t *testing.T) {
	db := openMem(t, vfs.NewMem())
	defer db.Close()
	b := db.NewBatch()
	if err := b.PutMeta("m", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	b.Close() // after Commit: a no-op
	calls := []struct {
		name string
		call func() error
	}{
		{"Commit", func() error { return b.Commit(true) }},
		{"PutMeta", func() error { return b.PutMeta("m", nil) }},
		{"PutIdempotency", func() error { return b.PutIdempotency("k", nil, testNow) }},
		{"MergeCounter", func() error { return b.MergeCounter("k", testRecord(t, "k", "a", 1, 1, 0)) }},
	}
	for _, c := range calls {
		if err := c.call(); !errors.Is(err, ErrBatchDone) {
			t.Errorf("%s after Commit: got %v, want ErrBatchDone", c.name, err)
		}
	}
	// A closed batch commits nothing.
	b = db.NewBatch()
	if err := b.PutMeta("discarded", []byte("v")); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if err := b.Commit(true); !errors.Is(err, ErrBatchDone) {
		t.Fatalf("Commit after Close: %v", err)
	}
	if _, ok, _ := db.GetMeta("discarded"); ok {
		t.Fatal("a closed batch was committed")
	}
}

// ScanIdempotency gives the live records, in key order, with their
// expiries, and stops when asked.
func TestScanIdempotency(t *testing.T) {
	db := openMem(t, vfs.NewMem())
	defer db.Close()
	now := testNow
	for i, k := range []string{"b", "a", "c"} {
		putIdem(t, db, k, "v"+k, now.Add(time.Duration(i)*time.Minute))
	}
	var got []string
	err := db.ScanIdempotency(now.Add(30*time.Second), func(key string, value []byte, expires time.Time) bool {
		got = append(got, fmt.Sprintf("%s=%s@%d", key, value, expires.Sub(now)/time.Minute))
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := "a=va@1 c=vc@2"; strings.Join(got, " ") != want { // b expired at now
		t.Fatalf("scan: %q, want %q", strings.Join(got, " "), want)
	}
	n := 0
	if err := db.ScanIdempotency(now, func(string, []byte, time.Time) bool { n++; return false }); err != nil || n != 1 {
		t.Fatalf("early stop: %d calls, %v", n, err)
	}
}
