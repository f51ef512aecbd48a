package store

import (
	"errors"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

func TestLockEpochsSurviveReopen(t *testing.T) {
	fs := vfs.NewMem()
	db := openMem(t, fs)
	want := map[string]uint32{"jobs/nightly": 7, "a": 1, "b/c": 1<<31 - 1}
	b := db.NewBatch()
	for k, e := range want {
		if err := b.PutLockEpoch(k, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	// A later record replaces the earlier one.
	b = db.NewBatch()
	if err := b.PutLockEpoch("a", 9); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	want["a"] = 9
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openMem(t, fs)
	defer func() { _ = db.Close() }()
	got := map[string]uint32{}
	var order []string
	if err := db.ScanLockEpochs(func(k string, e uint32) error {
		got[k] = e
		order = append(order, k)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("scanned %v, want %v", got, want)
	}
	for k, e := range want {
		if got[k] != e {
			t.Fatalf("epoch of %q = %d, want %d", k, got[k], e)
		}
	}
	if strings.Join(order, ",") != "a,b/c,jobs/nightly" {
		t.Fatalf("scan order %v, want key byte order", order)
	}
	stop := errors.New("stop")
	if err := db.ScanLockEpochs(func(string, uint32) error { return stop }); err != stop {
		t.Fatalf("ScanLockEpochs returned %v, want fn's error", err)
	}
}

func TestLockEpochRejectsBadKey(t *testing.T) {
	db := openMem(t, vfs.NewMem())
	defer func() { _ = db.Close() }()
	b := db.NewBatch()
	defer b.Close()
	for _, k := range []string{"", strings.Repeat("k", MaxLockKeyLen+1)} {
		if err := b.PutLockEpoch(k, 1); !errors.Is(err, ErrBadKey) {
			t.Fatalf("PutLockEpoch(len %d) = %v, want ErrBadKey", len(k), err)
		}
	}
	if b.Len() != 0 {
		t.Fatalf("a refused put left %d writes in the batch", b.Len())
	}
}
