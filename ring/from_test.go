package ring

import (
	"fmt"
	"reflect"
	"testing"

	"pgregory.net/rapid"
)

// TestPropertyNewFromIsNew: NewFrom builds exactly the ring New builds, point for point and
// bucket for bucket, from any earlier ring: members kept, gone, new, or with another weight;
// another VNodes; shared positions (the coarse placement).
func TestPropertyNewFromIsNew(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		prev, _, cfg, place := drawRing(t, 0, 12)
		ms := genMembers(0, 12).Draw(t, "members")
		if rapid.Bool().Draw(t, "other vnodes") {
			cfg = genConfig().Draw(t, "config")
		}
		want, err := build(ms, cfg, place)
		if err != nil {
			t.Fatal(err)
		}
		got, err := buildFrom(prev, ms, cfg, place)
		if err != nil {
			t.Fatalf("buildFrom: %v", err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("buildFrom(%v, %v) differs from build: %v, want %v", prev.Members(), ms, got, want)
		}
	})
}

// TestNewFromSmallChanges: one member back, one gone, one reweighted, from a ring of 50; the
// result is New's.
func TestNewFromSmallChanges(t *testing.T) {
	all := members("peer", 50)
	prev := mustNew(t, all[1:], DefaultConfig())
	reweighted := append([]Member(nil), all[1:]...)
	reweighted[7].Weight = 2
	for _, tt := range []struct {
		name    string
		members []Member
	}{
		{"one back", all},
		{"one gone", all[2:]},
		{"one reweighted", reweighted},
		{"same", all[1:]},
		{"none", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NewFrom(prev, tt.members, DefaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			if want := mustNew(t, tt.members, DefaultConfig()); !reflect.DeepEqual(got, want) {
				t.Fatalf("NewFrom differs from New: %v, want %v", got, want)
			}
		})
	}
	if _, err := NewFrom(prev, []Member{{Name: ""}}, DefaultConfig()); err == nil {
		t.Fatal("NewFrom took a member with no name")
	}
}

// BenchmarkNewFrom is the rebuild after one member of a ring of n+1 comes back, with the
// ring without it at hand: what a peer pays per membership change (compare BenchmarkNew).
func BenchmarkNewFrom(b *testing.B) {
	for _, n := range benchSizes {
		ms := members("peer", n+1)
		prev := mustNew(b, ms[1:], DefaultConfig())
		b.Run(fmt.Sprintf("members=%d/vnodes=128", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sinkRing, _ = NewFrom(prev, ms, DefaultConfig())
			}
		})
	}
}
