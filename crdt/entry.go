package crdt

import (
	"math"
	"runtime"
	"sync/atomic"
)

// entry is one key's counter state: 128 bytes, two cache lines, and its pages are allocated
// aligned, so no two entries share a line, nor a 128-byte pair of lines (the unit in which
// x86 cores prefetch, and so the unit in which two cores writing neighbouring entries would
// still fight over them).
//
// The first line holds everything a write by the key's hot replica (the replica that Apply
// wrote last, normally this peer's own) reads and writes: the lock, the flags, the key and
// the hot replica's counts. Apply takes the lock before it compares the key, so the line
// comes to the writing core once, for writing. The other replicas' counts, which Apply only
// reads, fill the second line and, past inlineSlots replicas, an exactly sized array: they
// change only when a merge or a write under another replica changes them, so every core
// that writes the key keeps its copy of them.
//
// Why: when two cores write random keys of one set, the key's state was last written by the
// other core about half the time, and Apply, which returns the new value, must fetch it from
// there. Each line that moves costs a core-to-core transfer; with the lock and the counts on
// separate lines (and 64-byte entries) two goroutines went barely faster than one (1.1x),
// with this layout 1.4-1.55x (BenchmarkStoreApplyParallel/keys=10000 on a 2-vCPU VM), while
// goroutines that keep to their own keys (the /split benchmark) go 2x or more. One line a
// write is the floor: Apply must wait for that line before it can read the key's value, so
// half the writes wait one core-to-core transfer, which BenchmarkCoreHandoff measures (60-100
// ns there, as long as a whole Apply on one core or longer).
type entry struct {
	lock entryLock
	// flags holds entryPending and entryDead, and above them (flags >> mergeShift) the shard's
	// merges count when a Merge last reported the entry changed, so a key a State repeats is
	// reported once. Guarded by lock.
	flags uint32
	hot   slot   // the hot replica's counts; see slotAt. Guarded by lock
	key   string // written before the entry is published; never changes

	// more and rest hold the other replicas' counts, guarded by lock. A slot of more that is
	// not in use has replica noReplica and zero counts; the slots in use come first, and rest
	// is nil unless more is full.
	more [inlineSlots - 1]slot
	rest []slot // exactly sized

	hash uint64 // stateHash of key and counts as of the flush that last found the entry changed; guarded by the shard's mu
}

const (
	entryPending = 1 << iota // changed since the last flush, and on the shard's pending list
	entryDead                // replaced by Restore: writers must look the key up again

	mergeShift = 2
	flagBits   = 1<<mergeShift - 1

	// inlineSlots is how many replicas' counts an entry holds without the rest array.
	inlineSlots = 3
	// noReplica marks an unused slot of entry.more: replica indices stay below MaxReplicas.
	noReplica = math.MaxUint32
)

// slot is one replica's counts in one key.
type slot struct {
	replica uint32 // index in the store's replica table
	p, n    uint64
}

// An entry's slots, numbered: 0 is hot, 1 to inlineSlots-1 are more, then rest. An entry
// always has slot 0; every slot in use has a non-zero count. The methods below are called
// with e's lock held, or, before e is published, by the shard's mu holder that adds it.

// numSlots returns how many replicas e holds counts of.
func (e *entry) numSlots() int {
	for j := range e.more {
		if e.more[j].replica == noReplica {
			return 1 + j
		}
	}
	return inlineSlots + len(e.rest)
}

// slotAt returns slot j, which must exist.
func (e *entry) slotAt(j int) *slot {
	switch {
	case j == 0:
		return &e.hot
	case j < inlineSlots:
		return &e.more[j-1]
	}
	return &e.rest[j-inlineSlots]
}

// findSlot returns the number of replica r's slot, or -1.
func (e *entry) findSlot(r uint32) int {
	if e.hot.replica == r {
		return 0
	}
	for j := range e.more {
		if e.more[j].replica == r {
			return 1 + j
		}
	}
	for j := range e.rest {
		if e.rest[j].replica == r {
			return inlineSlots + j
		}
	}
	return -1
}

// sum returns the key's value: P minus N over every slot.
func (e *entry) sum() wide {
	w := wide{}.addUint(e.hot.p).subUint(e.hot.n)
	for _, sl := range e.more { // a slot not in use counts zero
		w = w.addUint(sl.p).subUint(sl.n)
	}
	for _, sl := range e.rest {
		w = w.addUint(sl.p).subUint(sl.n)
	}
	return w
}

// appendSlots appends a copy of each of e's slots to dst.
func (e *entry) appendSlots(dst []slot) []slot {
	for j := range e.numSlots() {
		dst = append(dst, *e.slotAt(j))
	}
	return dst
}

// setSlots replaces e's slots with a copy of slots, which must not be empty.
func (e *entry) setSlots(slots []slot) {
	e.hot = slots[0]
	for j := range e.more {
		e.more[j] = slot{replica: noReplica}
		if 1+j < len(slots) {
			e.more[j] = slots[1+j]
		}
	}
	e.rest = nil
	if len(slots) > inlineSlots {
		e.rest = append([]slot(nil), slots[inlineSlots:]...)
	}
}

// addSlot gives e a slot for replica r, which it must not have, with zero counts, and
// returns its number. The caller must make one of its counts non-zero.
func (e *entry) addSlot(r uint32) int {
	n := e.numSlots()
	if n < inlineSlots {
		e.more[n-1] = slot{replica: r}
		return n
	}
	rest := make([]slot, len(e.rest)+1)
	copy(rest, e.rest)
	rest[len(e.rest)].replica = r
	e.rest = rest
	return n
}

// makeHot swaps slot j with slot 0, so that the replica of slot j becomes the hot one.
func (e *entry) makeHot(j int) {
	if j != 0 {
		sl := e.slotAt(j)
		e.hot, *sl = *sl, e.hot
	}
}

// entryLock is a spin lock in 4 bytes: an entry's critical sections are a few dozen
// nanoseconds, and a sync.Mutex would not leave room for the flags and the hot counts in the
// entry's first line.
type entryLock struct{ state atomic.Uint32 }

func (l *entryLock) lock() {
	for spins := 0; !l.state.CompareAndSwap(0, 1); spins++ {
		if spins > 16 {
			runtime.Gosched()
		}
	}
}

func (l *entryLock) unlock() { l.state.Store(0) }
