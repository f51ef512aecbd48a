package store

import (
	"github.com/cockroachdb/pebble/v2"
)

// ScanCounters calls fn with every counter key and its record (the join of all records
// committed for it), in key byte order, streaming: it holds one record at a time. record is
// only valid during the call; crdt's State.AppendEncoded copies what it keeps. If fn returns
// an error, ScanCounters stops and returns it. A record pebble or the merger finds damaged
// stops the scan with an error wrapping ErrCorrupt.
//
// At startup the agent rebuilds its store with it:
//
//	var st crdt.State
//	err := db.ScanCounters(func(_ string, rec []byte) error { return st.AppendEncoded(rec) })
//	... s.Restore(st)
//
// A scan sees the commits made before it started; Close waits for it to end.
func (db *DB) ScanCounters(fn func(key string, record []byte) error) error {
	db.closeMu.RLock()
	defer db.closeMu.RUnlock()
	if db.closed {
		return ErrClosed
	}
	iter, err := db.pdb.NewIter(&pebble.IterOptions{
		LowerBound: []byte{prefixCounter},
		UpperBound: keyspaceEnd(prefixCounter),
	})
	if err != nil {
		return db.readError("scan counters", err)
	}
	for valid := iter.First(); valid; valid = iter.Next() {
		rec, err := iter.ValueAndErr()
		if err != nil {
			_ = iter.Close()
			return db.readError("scan counters", err)
		}
		if err := fn(string(iter.Key()[1:]), rec); err != nil {
			_ = iter.Close()
			return err
		}
	}
	if err := iter.Error(); err != nil {
		_ = iter.Close()
		return db.readError("scan counters", err)
	}
	if err := iter.Close(); err != nil {
		return db.readError("scan counters", err)
	}
	return nil
}
