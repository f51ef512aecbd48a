package ring

import (
	"errors"
	"math"
	"strconv"
	"sync"
	"testing"
)

// Hand-placed rings, one virtual node per member unless noted.
var (
	// spread: a at 100, b at 200, c at 1000.
	spread = map[string][]uint64{"a": {100}, "b": {200}, "c": {1000}}
	// shared: a and b share position 100; c sits at 300.
	shared = map[string][]uint64{"a": {100}, "b": {100}, "c": {300}}
)

func TestOwnerAtNearestPoint(t *testing.T) {
	const half = uint64(1) << 63
	tests := []struct {
		name      string
		positions map[string][]uint64
		pos       uint64
		want      string
	}{
		{"on a point", spread, 100, "a"},
		{"nearer the point before", spread, 149, "a"},
		{"midpoint goes to the first name", spread, 150, "a"},
		{"nearer the point after", spread, 151, "b"},
		{"midpoint b c", spread, 600, "b"},
		{"just past midpoint b c", spread, 601, "c"},
		{"zero wraps to the first point", spread, 0, "a"},
		{"top of the ring wraps", spread, math.MaxUint64, "a"},
		{"far side nearer c", spread, half + 549, "c"},
		{"far side midpoint", spread, half + 550, "a"},
		{"far side nearer a", spread, half + 551, "a"},
		{"shared position", shared, 100, "a"},
		{"before shared position", shared, 50, "a"},
		{"after shared position", shared, 150, "a"},
		{"nearer c", shared, 201, "c"},
		{"midpoint after shared position", shared, 200, "a"},
		{"past c", shared, 400, "c"},
		{"one point", map[string][]uint64{"x": {7}}, half + 7, "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustBuild(t, membersOf(tt.positions), Config{VNodes: 1}, at(tt.positions))
			if got, err := r.OwnerAt(tt.pos); err != nil || got != tt.want {
				t.Errorf("OwnerAt(%d) = %q, %v; want %q", tt.pos, got, err, tt.want)
			}
		})
	}
}

func TestPreferenceAtOrder(t *testing.T) {
	tests := []struct {
		name      string
		positions map[string][]uint64
		pos       uint64
		n         int
		want      []string
	}{
		{"nearest first", spread, 120, 3, []string{"a", "b", "c"}},
		{"midpoint by name", spread, 150, 3, []string{"a", "b", "c"}},
		{"midpoint b c", spread, 600, 3, []string{"b", "c", "a"}},
		{"counter-clockwise second", spread, 950, 3, []string{"c", "b", "a"}},
		{"wrap", spread, math.MaxUint64 - 5, 3, []string{"a", "b", "c"}},
		{"prefix", spread, 950, 2, []string{"c", "b"}},
		{"zero", spread, 950, 0, nil},
		{"shared position by name", shared, 150, 3, []string{"a", "b", "c"}},
		{"shared position after c", shared, 250, 3, []string{"c", "a", "b"}},
		{"several points per member", map[string][]uint64{"a": {10, 20, 30}, "b": {1000}, "c": {25}}, 21, 3, []string{"a", "c", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustBuild(t, membersOf(tt.positions), Config{VNodes: 1}, at(tt.positions))
			got := r.appendPreference(nil, tt.pos, tt.n)
			if !equalStrings(got, tt.want) {
				t.Errorf("preference at %d, n=%d = %q, want %q", tt.pos, tt.n, got, tt.want)
			}
		})
	}
}

// membersOf returns a member per name, of weight its number of positions, for rings with
// one virtual node per unit of weight.
func membersOf(positions map[string][]uint64) []Member {
	var ms []Member
	for name, ps := range positions {
		ms = append(ms, Member{Name: name, Weight: len(ps)})
	}
	return ms
}

func TestLookupErrors(t *testing.T) {
	r := mustNew(t, members("peer", 3), DefaultConfig())
	tests := []struct {
		name    string
		ring    *Ring
		key     string
		n       int
		wantErr error
	}{
		{"empty key", r, "", 1, ErrEmptyKey},
		{"negative n", r, "k", -1, ErrBadCount},
		{"very negative n", r, "k", math.MinInt, ErrBadCount},
		{"empty ring", mustNew(t, nil, DefaultConfig()), "k", 1, ErrEmptyRing},
		{"nil ring", nil, "k", 1, ErrEmptyRing},
		{"nil ring, empty key", nil, "", 1, ErrEmptyKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.ring.Preference(tt.key, tt.n); !errors.Is(err, tt.wantErr) {
				t.Errorf("Preference() error = %v, want %v", err, tt.wantErr)
			}
			dst := []string{"kept"}
			got, err := tt.ring.AppendPreference(dst, tt.key, tt.n)
			if !errors.Is(err, tt.wantErr) || !equalStrings(got, dst) {
				t.Errorf("AppendPreference() = %q, %v; want %q, %v", got, err, dst, tt.wantErr)
			}
			if tt.n >= 0 {
				if _, err := tt.ring.Owner(tt.key); !errors.Is(err, tt.wantErr) {
					t.Errorf("Owner() error = %v, want %v", err, tt.wantErr)
				}
			}
		})
	}
}

func TestPreferenceCount(t *testing.T) {
	r := mustNew(t, members("peer", 5), DefaultConfig())
	tests := []struct {
		name    string
		n, want int
	}{
		{"zero", 0, 0},
		{"one", 1, 1},
		{"all", 5, 5},
		{"more than members", 6, 5},
		{"huge", math.MaxInt, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.Preference("k", tt.n)
			if err != nil || len(got) != tt.want {
				t.Errorf("Preference(k, %d) = %q, %v; want %d members", tt.n, got, err, tt.want)
			}
		})
	}
}

func TestAppendPreferenceAppends(t *testing.T) {
	r := mustNew(t, members("peer", 5), DefaultConfig())
	want, _ := r.Preference("k", 3)
	got, err := r.AppendPreference([]string{"x"}, "k", 3)
	if err != nil || !equalStrings(got, append([]string{"x"}, want...)) {
		t.Errorf("AppendPreference([x], k, 3) = %q, %v; want x then %q", got, err, want)
	}
}

func TestLookupAllocations(t *testing.T) {
	r := mustNew(t, members("peer", 100), DefaultConfig())
	dst := make([]string, 0, smallPreference)
	tests := []struct {
		name string
		max  float64
		f    func()
	}{
		{"Owner", 0, func() { _, _ = r.Owner("lock/orders") }},
		{"AppendPreference n=3", 0, func() { _, _ = r.AppendPreference(dst[:0], "lock/orders", 3) }},
		{"AppendPreference n=16", 0, func() { _, _ = r.AppendPreference(dst[:0], "lock/orders", 16) }},
		{"Preference n=3", 1, func() { _, _ = r.Preference("lock/orders", 3) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := testing.AllocsPerRun(100, tt.f); got > tt.max {
				t.Errorf("%s allocates %.0f times per call, want at most %.0f", tt.name, got, tt.max)
			}
		})
	}
}

// TestConcurrentReaders has many goroutines read one ring at once; run with -race.
func TestConcurrentReaders(t *testing.T) {
	r := mustNew(t, members("peer", 20), DefaultConfig())
	want := make([]string, 200)
	for i := range want {
		want[i], _ = r.Owner("key-" + strconv.Itoa(i))
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range want {
				key := "key-" + strconv.Itoa((i+g*25)%len(want))
				owner, err := r.Owner(key)
				pref, perr := r.Preference(key, 3)
				if err != nil || perr != nil || owner != want[(i+g*25)%len(want)] || pref[0] != owner {
					t.Errorf("goroutine %d: Owner(%s) = %q, %v; Preference = %q, %v", g, key, owner, err, pref, perr)
					return
				}
			}
			_ = r.Arcs()
			_ = r.Shares()
			_ = r.Members()
		})
	}
	wg.Wait()
}
