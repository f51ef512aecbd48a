package store

import "fmt"

// GetMeta returns the meta value stored under name by Batch.PutMeta, and whether there is
// one.
func (db *DB) GetMeta(name string) (value []byte, ok bool, err error) {
	if len(name) == 0 || len(name) > MaxMetaNameLen {
		return nil, false, fmt.Errorf("%w: a meta name must be 1 to %d bytes, got %d", ErrBadKey, MaxMetaNameLen, len(name))
	}
	v, ok, err := db.get(appendKey(nil, prefixMeta, name))
	if err != nil {
		return nil, false, db.readError(fmt.Sprintf("read meta value %q", name), err)
	}
	return v, ok, nil
}
