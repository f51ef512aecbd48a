package crdt

import "fmt"

// JoinRecords returns the CRDT join of records, each an encoded State holding one and the
// same key (what Store.AppendKeyRecord writes): per replica, the larger P and the larger N
// count. When one record already holds the join, which is always so for records taken from
// one growing Store, it is returned itself and nothing is encoded; otherwise the join is
// encoded as a new record. It is meant for a storage engine's merge operator, so it decodes
// into one shared State and compares count slices, with no map per record.
//
// It returns ErrBadEncoding for a record that does not decode, holds no key or more than
// one, or holds another key than the first record, and for an empty list.
func JoinRecords(records [][]byte) ([]byte, error) {
	if len(records) == 0 {
		return nil, fmt.Errorf("%w: no records to join", ErrBadEncoding)
	}
	if len(records) == 1 {
		return records[0], nil
	}
	if out, ok := joinRecordsFast(records); ok {
		return out, nil
	}
	return joinRecordsDecoded(records)
}

// joinRecordsDecoded is JoinRecords through the State decoder: every case, every error.
func joinRecordsDecoded(records [][]byte) ([]byte, error) {
	var st State
	key := ""
	for i, rec := range records {
		before := len(st.keys)
		if err := st.AppendEncoded(rec); err != nil {
			return nil, err
		}
		if len(st.keys) != before+1 {
			return nil, fmt.Errorf("%w: record %d holds %d keys, want 1", ErrBadEncoding, i, len(st.keys)-before)
		}
		if i == 0 {
			key = st.keys[0]
		} else if st.keys[len(st.keys)-1] != key {
			return nil, fmt.Errorf("%w: records of one key hold keys %q and %q", ErrBadEncoding, key, st.keys[len(st.keys)-1])
		}
	}
	// joined[r] is the join's counts for replica index r.
	joined := make([]slot, len(st.replicas))
	for i := range st.keys {
		for _, c := range st.countsOf(i) {
			j := &joined[c.replica]
			j.p, j.n = max(j.p, c.p), max(j.n, c.n)
		}
	}
	nonzero := 0
	for _, j := range joined {
		if j.p != 0 || j.n != 0 {
			nonzero++
		}
	}
	for i := range st.keys {
		counts := st.countsOf(i)
		if len(counts) != nonzero {
			continue
		}
		holds := true
		for _, c := range counts {
			if j := joined[c.replica]; j.p != c.p || j.n != c.n {
				holds = false
				break
			}
		}
		if holds {
			return records[i], nil
		}
	}
	out := State{keys: []string{key}}
	for r, j := range joined {
		if j.p != 0 || j.n != 0 {
			out.counts = append(out.counts, slot{replica: uint32(len(out.replicas)), p: j.p, n: j.n})
			out.replicas = append(out.replicas, st.replicas[r])
		}
	}
	out.ends = []uint32{uint32(len(out.counts))}
	return out.AppendBinary(nil)
}

// The fast path of JoinRecords. A flush or compaction of a busy store joins a dozen records
// per key, and decoding each into a State (strings, maps, slices) was a tenth of a loaded
// peer's CPU. Records from one growing Store always have one that holds the join; this path
// finds it by reading the records in place, with no allocation. It reads only a strict subset
// of the encoding (the forms AppendKeyRecord writes, a few replicas, no repeated replica) and
// checks all that the State decoder checks on that subset; on anything else, including every
// malformed record and a join that no record holds, it reports false and JoinRecords decodes
// (FuzzJoinRecordsFast holds the two paths to the same answers).

const (
	fastJoinRecordReplicas = 16 // replicas a record may list
	fastJoinReplicas       = 32 // distinct replicas over all the records
)

// fastJoin is the join so far: per distinct replica, the larger counts.
type fastJoin struct {
	n    int
	reps [fastJoinReplicas]fastReplica
}

type fastReplica struct {
	node []byte
	inc  uint64
	p, n uint64
}

// find returns the index of replica (node, inc), adding it if add; -1 if absent (or full).
func (j *fastJoin) find(node []byte, inc uint64, add bool) int {
	for i := range j.n {
		if j.reps[i].inc == inc && string(j.reps[i].node) == string(node) {
			return i
		}
	}
	if !add || j.n == len(j.reps) {
		return -1
	}
	j.reps[j.n] = fastReplica{node: node, inc: inc}
	j.n++
	return j.n - 1
}

func joinRecordsFast(records [][]byte) ([]byte, bool) {
	var j fastJoin
	var key []byte
	for i, rec := range records {
		ok := scanRecord(rec, func(k []byte) bool {
			if i == 0 {
				key = k
			}
			return string(k) == string(key)
		}, func(node []byte, inc, p, n uint64) bool {
			r := j.find(node, inc, true)
			if r < 0 {
				return false
			}
			j.reps[r].p, j.reps[r].n = max(j.reps[r].p, p), max(j.reps[r].n, n)
			return true
		})
		if !ok {
			return nil, false
		}
	}
	nonzero := 0
	for _, r := range j.reps[:j.n] {
		if r.p != 0 || r.n != 0 {
			nonzero++
		}
	}
	// The first record that holds the join, as joinRecordsDecoded picks.
	for _, rec := range records {
		counts := 0
		holds := scanRecord(rec, func([]byte) bool { return true }, func(node []byte, inc, p, n uint64) bool {
			counts++
			r := j.find(node, inc, false)
			return r >= 0 && j.reps[r].p == p && j.reps[r].n == n
		})
		if holds && counts == nonzero {
			return rec, true
		}
	}
	return nil, false
}

// scanRecord reads rec, a State holding one key, and calls key with the key and count with
// each non-zero count (and its replica); it reports false, early, when either does, and when
// rec is not in the subset joinRecordsFast reads: then the State decoder must judge it. It
// accepts nothing that decoder refuses, and a key left without non-zero counts (which the
// decoder drops, and JoinRecords then refuses).
func scanRecord(rec []byte, key func([]byte) bool, count func(node []byte, inc, p, n uint64) bool) bool {
	r := recReader{b: rec}
	if !r.byte(formatVersion) || !r.byte(0x93) || !r.byte(kindState) {
		return false
	}
	nrep, ok := r.arrayLen()
	if !ok || nrep > fastJoinRecordReplicas {
		return false
	}
	var nodes [fastJoinRecordReplicas][]byte
	var incs [fastJoinRecordReplicas]uint64
	for i := range nrep {
		if !r.byte(0x92) {
			return false
		}
		node, ok := r.str(MaxNodeLen)
		if !ok {
			return false
		}
		inc, ok := r.uint()
		if !ok {
			return false
		}
		for k := range i {
			if incs[k] == inc && string(nodes[k]) == string(node) {
				return false // a repeated replica: the decoder merges it
			}
		}
		nodes[i], incs[i] = node, inc
	}
	if !r.byte(0x91) || !r.byte(0x92) {
		return false
	}
	k, ok := r.str(MaxKeyLen)
	if !ok || !key(k) {
		return false
	}
	nc, ok := r.arrayLen()
	if !ok || nc%3 != 0 {
		return false
	}
	var seen uint32 // replica indices with a count, to refuse a repeated one
	nonzero := 0
	for range nc / 3 {
		ri, ok1 := r.uint()
		p, ok2 := r.uint()
		n, ok3 := r.uint()
		if !ok1 || !ok2 || !ok3 || ri >= uint64(nrep) || seen&(1<<ri) != 0 {
			return false
		}
		seen |= 1 << ri
		if p == 0 && n == 0 {
			continue
		}
		nonzero++
		if !count(nodes[ri], incs[ri], p, n) {
			return false
		}
	}
	return nonzero > 0 && len(r.b) == 0
}

// recReader reads msgpack in place for scanRecord: only the forms it names.
type recReader struct{ b []byte }

func (r *recReader) byte(want byte) bool {
	if len(r.b) == 0 || r.b[0] != want {
		return false
	}
	r.b = r.b[1:]
	return true
}

// arrayLen reads a fixarray or array16 header.
func (r *recReader) arrayLen() (int, bool) {
	switch {
	case len(r.b) >= 1 && r.b[0]&0xf0 == 0x90:
		n := int(r.b[0] & 0x0f)
		r.b = r.b[1:]
		return n, true
	case len(r.b) >= 3 && r.b[0] == 0xdc:
		n := int(r.b[1])<<8 | int(r.b[2])
		r.b = r.b[3:]
		return n, true
	}
	return 0, false
}

// str reads a fixstr, str8 or str16 of 1 to maxLen bytes, in place.
func (r *recReader) str(maxLen int) ([]byte, bool) {
	if len(r.b) == 0 {
		return nil, false
	}
	var n, h int
	switch c := r.b[0]; {
	case c&0xe0 == 0xa0:
		n, h = int(c&0x1f), 1
	case c == 0xd9 && len(r.b) >= 2:
		n, h = int(r.b[1]), 2
	case c == 0xda && len(r.b) >= 3:
		n, h = int(r.b[1])<<8|int(r.b[2]), 3
	default:
		return nil, false
	}
	if n < 1 || n > maxLen || len(r.b) < h+n {
		return nil, false
	}
	s := r.b[h : h+n]
	r.b = r.b[h+n:]
	return s, true
}

// uint reads what decoder.uint reads: a positive fixint or uint8..uint64.
func (r *recReader) uint() (uint64, bool) {
	if len(r.b) == 0 {
		return 0, false
	}
	c := r.b[0]
	if c <= 0x7f {
		r.b = r.b[1:]
		return uint64(c), true
	}
	var n int
	switch c {
	case 0xcc:
		n = 1
	case 0xcd:
		n = 2
	case 0xce:
		n = 4
	case 0xcf:
		n = 8
	default:
		return 0, false
	}
	if len(r.b) < 1+n {
		return 0, false
	}
	var x uint64
	for _, b := range r.b[1 : 1+n] {
		x = x<<8 | uint64(b)
	}
	r.b = r.b[1+n:]
	return x, true
}
