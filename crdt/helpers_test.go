package crdt

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// contents returns every key of st with its counter, joining repeated keys.
func contents(st State) map[string]PNCounter {
	m := make(map[string]PNCounter)
	for k, c := range st.All() {
		cur := m[k]
		cur.Merge(c)
		m[k] = cur
	}
	return m
}

// sameContents reports how two key→counter maps differ, or "" if they do not.
func sameContents(got, want map[string]PNCounter) string {
	var diffs []string
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if g, ok := got[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("missing %q", k))
		} else if !g.Equal(want[k]) {
			diffs = append(diffs, fmt.Sprintf("%q differs", k))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("extra %q", k))
		}
	}
	if len(diffs) > 5 {
		diffs = append(diffs[:5], fmt.Sprintf("and %d more", len(diffs)-5))
	}
	return strings.Join(diffs, ", ")
}

func assertSameStore(t tb, got, want *Store) {
	t.Helper()
	if d := sameContents(contents(got.Snapshot()), contents(want.Snapshot())); d != "" {
		t.Fatalf("stores differ: %s", d)
	}
}

func mustApply(t tb, s *Store, key string, r ReplicaID, amount int64) int64 {
	t.Helper()
	v, err := s.Apply(key, r, amount)
	if err != nil {
		t.Fatalf("Apply(%q, %s, %d): %v", key, r, amount, err)
	}
	return v
}

// tb is what the helpers need of a *testing.T, *testing.B or *rapid.T.
type tb interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

func mustMerge(t tb, s *Store, st State) []string {
	t.Helper()
	changed, err := s.Merge(st)
	if err != nil {
		t.Fatalf("Merge: %v", err)
	}
	return changed
}
