package crdt

import "encoding/binary"

// AppendKeyRecord appends to dst the encoding of key's state (a State holding just key), for
// a caller that keeps one durable record per key. Rebuild a store from such records with
// State.AppendEncoded and Restore. It returns ErrBadKey or ErrNotFound.
//
// It is on the agent's write path (one call per write), so it reads the key's counts under
// its lock and writes the msgpack by hand, allocating only what dst lacks: 66 ns
// where building a State and encoding it took 1.5 µs (BenchmarkAppendKeyRecord).
func (s *Store) AppendKeyRecord(dst []byte, key string) ([]byte, error) {
	var buf [8]slot
	slots := buf[:0]
	var ids []ReplicaID
	err := s.read(key, func(e *entry) {
		ids = s.replicas.load().ids // loaded under the entry lock: it has every replica in e
		for j := range e.numSlots() {
			slots = append(slots, *e.slotAt(j))
		}
	})
	if err != nil {
		return nil, err
	}
	// formatVersion, [kind, [[node, incarnation], ...], [[key, [index, p, n, ...]]]]
	dst = append(dst, formatVersion)
	dst = appendArrayLen(dst, 3)
	dst = appendUint(dst, kindState)
	dst = appendArrayLen(dst, len(slots))
	for _, sl := range slots {
		r := ids[sl.replica]
		dst = appendArrayLen(dst, 2)
		dst = appendStr(dst, r.Node)
		dst = appendUint(dst, r.Incarnation)
	}
	dst = appendArrayLen(dst, 1)
	dst = appendArrayLen(dst, 2)
	dst = appendStr(dst, key)
	dst = appendArrayLen(dst, 3*len(slots))
	for i, sl := range slots {
		dst = appendUint(dst, uint64(i))
		dst = appendUint(dst, sl.p)
		dst = appendUint(dst, sl.n)
	}
	return dst, nil
}

// The msgpack forms below are the ones the msgpack encoder picks (the smallest), so a record
// is byte for byte what encoding its State gives (TestAppendKeyRecordMatchesState).

func appendArrayLen(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, 0x90|byte(n))
	case n < 1<<16:
		return binary.BigEndian.AppendUint16(append(b, 0xdc), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, 0xdd), uint32(n))
}

func appendUint(b []byte, x uint64) []byte {
	switch {
	case x < 128:
		return append(b, byte(x))
	case x < 1<<8:
		return append(b, 0xcc, byte(x))
	case x < 1<<16:
		return binary.BigEndian.AppendUint16(append(b, 0xcd), uint16(x))
	case x < 1<<32:
		return binary.BigEndian.AppendUint32(append(b, 0xce), uint32(x))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xcf), x)
}

func appendStr(b []byte, s string) []byte {
	switch n := len(s); {
	case n < 32:
		b = append(b, 0xa0|byte(n))
	case n < 1<<8:
		b = append(b, 0xd9, byte(n))
	case n < 1<<16:
		b = binary.BigEndian.AppendUint16(append(b, 0xda), uint16(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, 0xdb), uint32(n))
	}
	return append(b, s...)
}
