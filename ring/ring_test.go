package ring

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name    string
		members []Member
		cfg     Config
		wantErr error
	}{
		{"zero config", []Member{{"a", 1}}, Config{}, ErrBadConfig},
		{"empty name", []Member{{"a", 1}, {"", 1}}, DefaultConfig(), ErrEmptyName},
		{"zero weight", []Member{{"a", 1}, {"b", 0}}, DefaultConfig(), ErrZeroWeight},
		{"negative weight", []Member{{"a", -3}}, DefaultConfig(), ErrZeroWeight},
		{"duplicate", []Member{{"a", 1}, {"b", 1}, {"a", 1}}, DefaultConfig(), ErrDuplicateMember},
		{"duplicate with other weight", []Member{{"a", 1}, {"a", 2}}, DefaultConfig(), ErrDuplicateMember},
		{"weight too large", []Member{{"a", MaxPoints/128 + 1}}, DefaultConfig(), ErrTooManyVNodes},
		{"weights add up too large", []Member{{"a", MaxPoints / 256}, {"b", MaxPoints/256 + 1}}, Config{VNodes: 128}, ErrTooManyVNodes},
		{"huge weight", []Member{{"a", int(^uint(0) >> 1)}}, DefaultConfig(), ErrTooManyVNodes},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := New(tt.members, tt.cfg)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("New() error = %v, want %v", err, tt.wantErr)
			}
			if r != nil {
				t.Errorf("New() returned a ring with an error: %v", r)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "ring: ") {
				t.Errorf("error %q does not start with the package name", msg)
			}
		})
	}
}

func TestNewDoesNotTouchCallerSlice(t *testing.T) {
	in := []Member{{"c", 1}, {"a", 2}, {"b", 1}}
	orig := slices.Clone(in)
	r := mustNew(t, in, DefaultConfig())
	if !slices.Equal(in, orig) {
		t.Errorf("New changed its argument: %v, was %v", in, orig)
	}
	in[0].Name, in[1].Weight = "zzz", 7 // the ring must not see this
	want := []Member{{"a", 2}, {"b", 1}, {"c", 1}}
	if got := r.Members(); !slices.Equal(got, want) {
		t.Errorf("Members() = %v, want %v", got, want)
	}
	got := r.Members()
	got[0].Name = "changed" // nor this
	if r.Members()[0].Name != "a" {
		t.Error("Members() returned the ring's own slice")
	}
}

func TestAccessors(t *testing.T) {
	r := mustNew(t, []Member{{"b", 2}, {"a", 1}}, Config{VNodes: 10})
	if got := r.Len(); got != 2 {
		t.Errorf("Len() = %d, want 2", got)
	}
	if got := r.VNodes(); got != 10 {
		t.Errorf("VNodes() = %d, want 10", got)
	}
	if got := r.Points(); got != 30 {
		t.Errorf("Points() = %d, want 30", got)
	}
	for name, want := range map[string]bool{"a": true, "b": true, "c": false, "": false} {
		if got := r.Has(name); got != want {
			t.Errorf("Has(%q) = %v, want %v", name, got, want)
		}
	}
	if got := r.ChecksumHex(); len(got) != 16 || strings.Trim(got, "0123456789abcdef") != "" {
		t.Errorf("ChecksumHex() = %q, want 16 hex digits", got)
	}
	if got, want := r.String(), "ring{members: 2, vnodes: 10, checksum: "+r.ChecksumHex()+"}"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

// TestEmptyAndNilRings checks that a ring with no members, and a nil *Ring (what an unset
// atomic.Pointer[Ring] loads), answer every call without panicking.
func TestEmptyAndNilRings(t *testing.T) {
	rings := map[string]*Ring{
		"New(nil)":       mustNew(t, nil, DefaultConfig()),
		"New(empty)":     mustNew(t, []Member{}, DefaultConfig()),
		"nil *Ring":      nil,
		"New(nil) V=1":   mustNew(t, nil, Config{VNodes: 1}),
		"New(nil) V=max": mustNew(t, nil, Config{VNodes: MaxVNodes}),
	}
	for name, r := range rings {
		t.Run(name, func(t *testing.T) {
			if _, err := r.Owner("k"); !errors.Is(err, ErrEmptyRing) {
				t.Errorf("Owner() error = %v, want ErrEmptyRing", err)
			}
			if _, err := r.OwnerAt(42); !errors.Is(err, ErrEmptyRing) {
				t.Errorf("OwnerAt() error = %v, want ErrEmptyRing", err)
			}
			if _, err := r.Preference("k", 3); !errors.Is(err, ErrEmptyRing) {
				t.Errorf("Preference() error = %v, want ErrEmptyRing", err)
			}
			if r.Len() != 0 || r.Points() != 0 || len(r.Members()) != 0 || len(r.Arcs()) != 0 || len(r.Shares()) != 0 || r.Has("k") {
				t.Errorf("empty ring reports content: %v", r)
			}
			if len(r.ChecksumHex()) != 16 {
				t.Errorf("ChecksumHex() = %q", r.ChecksumHex())
			}
		})
	}
}

func TestChecksumSeesEverySetting(t *testing.T) {
	base := []Member{{"a", 1}, {"b", 1}}
	rings := map[string]*Ring{
		"base":          mustNew(t, base, DefaultConfig()),
		"other vnodes":  mustNew(t, base, Config{VNodes: 64}),
		"other weight":  mustNew(t, []Member{{"a", 1}, {"b", 2}}, DefaultConfig()),
		"other name":    mustNew(t, []Member{{"a", 1}, {"c", 1}}, DefaultConfig()),
		"extra member":  mustNew(t, []Member{{"a", 1}, {"b", 1}, {"c", 1}}, DefaultConfig()),
		"fewer members": mustNew(t, []Member{{"a", 1}}, DefaultConfig()),
		"split names":   mustNew(t, []Member{{"a", 1}, {"b\x01\x01", 1}}, DefaultConfig()),
		"empty":         mustNew(t, nil, DefaultConfig()),
		"nil":           nil,
	}
	seen := map[uint64]string{}
	for name, r := range rings {
		if other, ok := seen[r.Checksum()]; ok {
			t.Errorf("%s and %s have the same checksum %s", name, other, r.ChecksumHex())
		}
		seen[r.Checksum()] = name
	}
}
