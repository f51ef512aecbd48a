package ring

import (
	"strconv"
	"testing"

	"github.com/cespare/xxhash/v2"
)

// The golden vectors below pin the placement. If one fails, a change has moved keys: every
// peer of a running cluster that mixes old and new code would disagree on owners. Either
// undo the change, or bump Version and update the vectors on purpose.

// goldenMembers is the member set the placement vectors use.
var goldenMembers = []Member{
	{Name: "peer-a", Weight: 1},
	{Name: "peer-b", Weight: 1},
	{Name: "peer-c", Weight: 2},
	{Name: "peer-d", Weight: 1},
	{Name: "peer-e", Weight: 1},
}

func TestKeyHashGolden(t *testing.T) {
	// The first three are the published XXH64 test vectors (seed 0), so KeyHash is standard
	// XXH64 and any implementation in any language can place keys the same way.
	tests := []struct {
		key  string
		want uint64
	}{
		{"", 0xef46db3751d8e999},
		{"a", 0xd24ec4f1a98c6e5b},
		{"abc", 0x44bc2cf5ad770999},
		{"lock/orders", 0xa458085b0d47da6a},
		{"lock/users/42", 0xa61f9cd7e04ed101},
	}
	for _, tt := range tests {
		if got := KeyHash(tt.key); got != tt.want {
			t.Errorf("KeyHash(%q) = %#016x, want %#016x", tt.key, got, tt.want)
		}
	}
}

func TestVNodePositionGolden(t *testing.T) {
	tests := []struct {
		name string
		i    int
		want uint64
	}{
		{"peer-a", 0, 0x270a98523546591f},   // XXH64("peer-a#0")
		{"peer-a", 127, 0x0cc98f9ea6cbd2b4}, // XXH64("peer-a#127")
	}
	for _, tt := range tests {
		got, _ := vnodePosition(nil, tt.name, tt.i)
		if got != tt.want {
			t.Errorf("vnodePosition(%q, %d) = %#016x, want %#016x", tt.name, tt.i, got, tt.want)
		}
		if want := xxhash.Sum64String(tt.name + "#" + strconv.Itoa(tt.i)); got != want {
			t.Errorf("vnodePosition(%q, %d) = %#016x, want XXH64 of the string %#016x", tt.name, tt.i, got, want)
		}
	}
}

func TestChecksumGolden(t *testing.T) {
	tests := []struct {
		name    string
		members []Member
		cfg     Config
		want    string
	}{
		{"golden members", goldenMembers, DefaultConfig(), "5a75115ad94982f2"},
		{"empty", nil, DefaultConfig(), "b9e667aa6eefe4e0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustNew(t, tt.members, tt.cfg)
			if got := r.ChecksumHex(); got != tt.want {
				t.Errorf("ChecksumHex() = %s, want %s", got, tt.want)
			}
		})
	}
	if got, want := (*Ring)(nil).ChecksumHex(), "16538d339699a221"; got != want {
		t.Errorf("nil ring ChecksumHex() = %s, want %s", got, want)
	}
}

func TestPlacementGolden(t *testing.T) {
	r := mustNew(t, goldenMembers, DefaultConfig())
	tests := []struct {
		key        string
		owner      string
		preference []string
	}{
		{"lock/orders", "peer-e", []string{"peer-e", "peer-a", "peer-c"}},
		{"lock/users/42", "peer-a", []string{"peer-a", "peer-c", "peer-e"}},
		{"lock/invoices", "peer-c", []string{"peer-c", "peer-b", "peer-d"}},
		{"a", "peer-c", []string{"peer-c", "peer-b", "peer-e"}},
		{"b", "peer-c", []string{"peer-c", "peer-a", "peer-d"}},
		{"c", "peer-b", []string{"peer-b", "peer-a", "peer-c"}},
		{"d", "peer-b", []string{"peer-b", "peer-d", "peer-e"}},
		{"e", "peer-d", []string{"peer-d", "peer-e", "peer-a"}},
		{"f", "peer-e", []string{"peer-e", "peer-a", "peer-c"}},
		{"g", "peer-c", []string{"peer-c", "peer-e", "peer-b"}},
		{"h", "peer-e", []string{"peer-e", "peer-c", "peer-d"}},
		{"i", "peer-a", []string{"peer-a", "peer-b", "peer-e"}},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			if got, err := r.Owner(tt.key); err != nil || got != tt.owner {
				t.Errorf("Owner(%q) = %q, %v; want %q", tt.key, got, err, tt.owner)
			}
			got, err := r.Preference(tt.key, 3)
			if err != nil || !equalStrings(got, tt.preference) {
				t.Errorf("Preference(%q, 3) = %q, %v; want %q", tt.key, got, err, tt.preference)
			}
		})
	}

	// One number for the owners of 10,000 keys: XXH64 of "owner\n" for key-0 … key-9999.
	d := xxhash.New()
	for i := range 10000 {
		owner, err := r.Owner("key-" + strconv.Itoa(i))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = d.WriteString(owner + "\n")
	}
	if got, want := d.Sum64(), uint64(0x5435f8c6779d2454); got != want {
		t.Errorf("digest of the owners of key-0 … key-9999 = %#016x, want %#016x", got, want)
	}
}

// TestArcsGolden pins the nearest-point rule with one virtual node per member, where the arc
// boundaries are the midpoints between neighbouring members' positions.
func TestArcsGolden(t *testing.T) {
	r := mustNew(t, goldenMembers, Config{VNodes: 1})
	want := []OwnedArc{
		{Arc{0x0000000000000000, 0x07b0e3654de198d2}, "peer-e"},
		{Arc{0x07b0e3654de198d3, 0x33dac19991dc0893}, "peer-a"},
		{Arc{0x33dac19991dc0894, 0x5b56339782367cd5}, "peer-c"},
		{Arc{0x5b56339782367cd6, 0x88d3b67e52e2689f}, "peer-d"},
		{Arc{0x88d3b67e52e268a0, 0xa794a2a874047a75}, "peer-b"},
		{Arc{0xa794a2a874047a76, 0xcded418d5f5e1eea}, "peer-c"},
		{Arc{0xcded418d5f5e1eeb, 0xffffffffffffffff}, "peer-e"},
	}
	got := r.Arcs()
	if len(got) != len(want) {
		t.Fatalf("Arcs() has %d arcs, want %d: %x", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("Arcs()[%d] = %x, want %x", i, got[i], want[i])
		}
	}
}
