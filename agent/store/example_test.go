package store_test

import (
	"fmt"
	"log"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/ringleader/ringleader/agent/store"
	"github.com/ringleader/ringleader/crdt"
)

// A peer persists a local write and its idempotency record in one synced commit, then
// restarts and rebuilds its counters from the data dir.
func Example() {
	cfg := store.DefaultConfig()
	cfg.FS = vfs.NewMem() // nil: the real disk
	db, err := store.Open("/peer/data/store", cfg)
	if err != nil {
		log.Fatal(err)
	}
	counters, _ := crdt.New(crdt.DefaultConfig())
	self, _ := crdt.NewReplicaID("node-1", 1)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

	// A local write: apply, then persist the key's record before acknowledging.
	value, _ := counters.Apply("requests", self, 5)
	b := db.NewBatch()
	if err := b.MergeCounterFrom(counters, "requests"); err != nil {
		log.Fatal(err)
	}
	if err := b.PutIdempotency("retry-7f3a", fmt.Appendf(nil, "%d", value), now.Add(10*time.Minute)); err != nil {
		log.Fatal(err)
	}
	if err := b.Commit(true); err != nil {
		log.Fatal(err)
	}
	if err := db.Close(); err != nil {
		log.Fatal(err)
	}

	// Restart: reopen and rebuild the store from the records.
	db, err = store.Open("/peer/data/store", cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	var st crdt.State
	if err := db.ScanCounters(func(_ string, rec []byte) error { return st.AppendEncoded(rec) }); err != nil {
		log.Fatal(err)
	}
	restored, _ := crdt.New(crdt.DefaultConfig())
	if err := restored.Restore(st); err != nil {
		log.Fatal(err)
	}
	v, _ := restored.Value("requests")
	first, ok, _ := db.GetIdempotency("retry-7f3a", now.Add(time.Minute))
	fmt.Printf("requests = %d; a retry of retry-7f3a gets %s (%v)\n", v, first, ok)
	// Output: requests = 5; a retry of retry-7f3a gets 5 (true)
}
