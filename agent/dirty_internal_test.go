package agent

import (
	"slices"
	"strconv"
	"sync"
	"testing"
)

// TestDirtySetTakeMissesNoKey: take skips the shards when no key was added
// since the last take; keys added while takes run must each come out of
// exactly one take, however the two interleave.
func TestDirtySetTakeMissesNoKey(t *testing.T) {
	var d dirtySet
	if got := d.take(); got != nil {
		t.Fatalf("take of an empty set = %v, want nil", got)
	}
	d.add("a")
	d.add("b")
	got := d.take()
	slices.Sort(got)
	if !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("take = %v, want [a b]", got)
	}
	if got := d.take(); got != nil {
		t.Fatalf("second take = %v, want nil", got)
	}

	const writers, perWriter = 4, 2000
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				d.add(strconv.Itoa(w) + "/" + strconv.Itoa(i))
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	seen := map[string]int{}
	collect := func() {
		for _, k := range d.take() {
			seen[k]++
		}
	}
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		collect()
	}
	collect() // what the last writers added after the final loop's take
	if len(seen) != writers*perWriter {
		t.Fatalf("takes returned %d distinct keys, want %d", len(seen), writers*perWriter)
	}
	for k, n := range seen {
		if n != 1 {
			t.Fatalf("key %s came out of %d takes, want 1", k, n)
		}
	}
}
