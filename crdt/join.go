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
