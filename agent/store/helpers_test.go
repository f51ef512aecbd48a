package store

import (
	"log/slog"
	"time"

	"github.com/ringleader/ringleader/crdt"
)

var testNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// testRecord returns the record of key holding one replica's counts p and n.
func testRecord(t tb, key, node string, inc uint64, p, n uint64) []byte {
	t.Helper()
	s, err := crdt.New(crdt.Config{Shards: 1})
	if err != nil {
		t.Fatal(err)
	}
	r, err := crdt.NewReplicaID(node, inc)
	if err != nil {
		t.Fatal(err)
	}
	if p > 0 {
		if _, err := s.Apply(key, r, int64(p)); err != nil {
			t.Fatal(err)
		}
	}
	if n > 0 {
		if _, err := s.Apply(key, r, -int64(n)); err != nil {
			t.Fatal(err)
		}
	}
	rec, err := s.AppendKeyRecord(nil, key)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// tb is what the test helpers need of a *testing.T, *testing.B or *rapid.T.
type tb interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}
