package lockmgr

import (
	"math/rand/v2"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

func newTestTable(tb testing.TB, seed uint64) *Table {
	tb.Helper()
	cfg := DefaultConfig()
	var s [32]byte
	s[0] = byte(seed)
	s[1] = byte(seed >> 8)
	cfg.Rand = rand.NewChaCha8(s)
	tab, err := NewTable(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return tab
}

func kinds(ev []Event) []EventKind {
	var out []EventKind
	for _, e := range ev {
		out = append(out, e.Kind)
	}
	return out
}
