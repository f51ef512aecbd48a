package crdt

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// The hand-written record is byte for byte the encoding of the key's State,
// for keys and counts across every msgpack size class.
func TestAppendKeyRecordMatchesState(t *testing.T) {
	s, _ := New(Config{Shards: 2})
	var replicas []ReplicaID
	for i := range 20 {
		r, _ := NewReplicaID(fmt.Sprintf("node-%s%d", strings.Repeat("x", i*3), i), uint64(i)*uint64(1<<i*7))
		replicas = append(replicas, r)
	}
	keys := []string{"k", strings.Repeat("a", 31), strings.Repeat("b", 32), strings.Repeat("c", 255), strings.Repeat("d", 256), strings.Repeat("e", 512)}
	amounts := []int64{1, 127, 128, 255, 256, 65535, 65536, 1 << 32, -5, -(1 << 40)}
	for ki, k := range keys {
		for j := range ki*3 + 1 {
			r := replicas[(ki+j)%len(replicas)]
			if _, err := s.Apply(k, r, amounts[(ki+j)%len(amounts)]); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.AppendKeyRecord([]byte("prefix"), k)
		if err != nil {
			t.Fatal(err)
		}
		want, err := s.States([]string{k}).AppendBinary([]byte("prefix"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("key of %d bytes:\n got %x\nwant %x", len(k), got, want)
		}
	}
	if _, err := s.AppendKeyRecord(nil, "absent"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("absent key: %v", err)
	}
	if _, err := s.AppendKeyRecord(nil, ""); !errors.Is(err, ErrBadKey) {
		t.Fatalf("empty key: %v", err)
	}
}

func BenchmarkAppendKeyRecord(b *testing.B) {
	s, _ := New(DefaultConfig())
	for i := range 5 {
		r, _ := NewReplicaID(fmt.Sprintf("n%d", i), 1795651594684701357)
		s.Apply("users/42/logins", r, int64(i+1)*1000)
	}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = s.AppendKeyRecord(buf[:0], "users/42/logins")
	}
}
