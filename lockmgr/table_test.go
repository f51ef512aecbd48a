package lockmgr

import (
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestAcquireErrors(t *testing.T) {
	tests := []struct {
		name        string
		key, holder string
		ttl, wait   time.Duration
		setEpoch    bool
		err         error
	}{
		{"granted", "k", "a", 0, 0, true, nil},
		{"empty key", "", "a", 0, 0, true, ErrBadKey},
		{"long key", strings.Repeat("k", MaxKeyLen+1), "a", 0, 0, false, ErrBadKey},
		{"long holder", "k", strings.Repeat("h", MaxHolderLen+1), 0, 0, true, ErrBadHolder},
		{"ttl below 1s", "k", "a", 999 * time.Millisecond, 0, true, ErrBadTTL},
		{"ttl above max", "k", "a", 14 * time.Second, 0, true, ErrBadTTL},
		{"ttl at max", "k", "a", 13 * time.Second, 0, true, nil},
		{"negative wait", "k", "a", 0, -1, true, ErrBadWait},
		{"wait above max", "k", "a", 0, 6 * time.Minute, true, ErrBadWait},
		{"no epoch", "k", "a", 0, 0, false, ErrNoEpoch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := newTestTable(t, 1)
			if tt.setEpoch {
				if err := tab.SetEpoch(tt.key, 1); err != nil && tt.key != "" {
					t.Fatal(err)
				}
			}
			got, err := tab.Acquire(tt.key, tt.holder, tt.ttl, tt.wait, t0)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err == nil {
				want := tt.ttl
				if want == 0 {
					want = 10 * time.Second
				}
				if !got.Granted || !got.Lease.Expiry.Equal(t0.Add(want)) {
					t.Fatalf("got %+v, want a grant expiring after %v", got, want)
				}
			}
		})
	}
}

// step is one action of a scenario on key "k" of a fresh table with epoch 1. lease names
// the lease of an earlier step by index.
type step struct {
	op     string // acquire, renew, release, tick, cancel, epoch
	at     time.Duration
	holder string
	ttl    time.Duration
	wait   time.Duration
	ref    int // step whose lease or ticket this uses
	epoch  uint32
	err    error
	events []EventKind // events returned (release, tick)
	holds  string      // holder after the step ("" none)
}

func TestTableScenarios(t *testing.T) {
	s := time.Second
	tests := []struct {
		name  string
		steps []step
	}{
		{"acquire release acquire", []step{
			{op: "acquire", holder: "a", holds: "a"},
			{op: "release", at: s, ref: 0},
			{op: "acquire", at: s, holder: "b", holds: "b"},
		}},
		{"held without wait", []step{
			{op: "acquire", holder: "a", holds: "a"},
			{op: "acquire", holder: "b", err: ErrHeld, holds: "a"},
		}},
		{"expiry frees the key", []step{
			{op: "acquire", holder: "a", ttl: 2 * s, holds: "a"},
			{op: "tick", at: 2*s - 1, holds: "a"},
			{op: "tick", at: 2 * s, events: []EventKind{LeaseExpired}},
			{op: "renew", at: 2 * s, ref: 0, err: ErrUnknownLease},
			{op: "release", at: 2 * s, ref: 0, err: ErrUnknownLease},
		}},
		{"renew extends", []step{
			{op: "acquire", holder: "a", ttl: 2 * s, holds: "a"},
			{op: "renew", at: s, ref: 0, ttl: 5 * s, holds: "a"},
			{op: "tick", at: 5 * s, holds: "a"},
			{op: "tick", at: 6 * s, events: []EventKind{LeaseExpired}},
		}},
		{"renew bad ttl", []step{
			{op: "acquire", holder: "a", holds: "a"},
			{op: "renew", ref: 0, ttl: 20 * s, err: ErrBadTTL, holds: "a"},
		}},
		{"waiters granted in order on release", []step{
			{op: "acquire", holder: "a", holds: "a"},
			{op: "acquire", holder: "b", wait: 5 * s, holds: "a"},
			{op: "acquire", holder: "c", wait: 5 * s, holds: "a"},
			{op: "release", at: s, ref: 0, events: []EventKind{WaiterGranted}, holds: "b"},
		}},
		{"waiter granted on expiry", []step{
			{op: "acquire", holder: "a", ttl: 2 * s, holds: "a"},
			{op: "acquire", holder: "b", wait: 5 * s, holds: "a"},
			{op: "tick", at: 3 * s, events: []EventKind{LeaseExpired, WaiterGranted}, holds: "b"},
		}},
		{"waiter times out", []step{
			{op: "acquire", holder: "a", holds: "a"},
			{op: "acquire", holder: "b", wait: 2 * s, holds: "a"},
			{op: "tick", at: 2 * s, events: []EventKind{WaiterTimedOut}, holds: "a"},
			{op: "cancel", at: 2 * s, ref: 1, err: ErrUnknownTicket, holds: "a"},
		}},
		{"timed-out waiter skipped", []step{
			{op: "acquire", holder: "a", holds: "a"},
			{op: "acquire", holder: "b", wait: 1 * s, holds: "a"},
			{op: "acquire", holder: "c", wait: 9 * s, holds: "a"},
			{op: "release", at: 5 * s, ref: 0, events: []EventKind{WaiterTimedOut, WaiterGranted}, holds: "c"},
		}},
		{"cancelled waiter skipped", []step{
			{op: "acquire", holder: "a", holds: "a"},
			{op: "acquire", holder: "b", wait: 5 * s, holds: "a"},
			{op: "acquire", holder: "c", wait: 5 * s, holds: "a"},
			{op: "cancel", ref: 1, holds: "a"},
			{op: "release", ref: 0, events: []EventKind{WaiterGranted}, holds: "c"},
		}},
		{"newcomer does not jump the queue", []step{
			{op: "acquire", holder: "a", ttl: s, holds: "a"},
			{op: "acquire", holder: "b", wait: 5 * s, holds: "a"},
			{op: "acquire", at: 2 * s, holder: "c", err: ErrHeld, events: []EventKind{LeaseExpired, WaiterGranted}, holds: "b"},
			{op: "tick", at: 2 * s, holds: "b"},
		}},
		{"epoch only grows", []step{
			{op: "epoch", epoch: 5},
			{op: "epoch", epoch: 5},
			{op: "epoch", epoch: 4, err: ErrBadEpoch},
			{op: "acquire", holder: "a", holds: "a"},
		}},
		{"time never runs backwards", []step{
			{op: "acquire", at: 5 * s, holder: "a", ttl: s, holds: "a"},
			{op: "tick", at: 0, holds: "a"},
			{op: "tick", at: 6 * s, events: []EventKind{LeaseExpired}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := newTestTable(t, 2)
			if err := tab.SetEpoch("k", 1); err != nil {
				t.Fatal(err)
			}
			leases := make([]Lease, len(tt.steps))
			tickets := make([]Ticket, len(tt.steps))
			var last int64
			for i, st := range tt.steps {
				now := at(st.at)
				var err error
				var ev []Event
				switch st.op {
				case "acquire":
					var a Acquired
					a, err = tab.Acquire("k", st.holder, st.ttl, st.wait, now)
					leases[i], tickets[i] = a.Lease, a.Ticket
					ev = tab.Tick(now)
				case "renew":
					_, err = tab.Renew(leases[st.ref], st.ttl, now)
				case "release":
					ev, err = tab.Release(leases[st.ref], now)
				case "tick":
					ev = tab.Tick(now)
				case "cancel":
					err = tab.Cancel(tickets[st.ref], now)
				case "epoch":
					err = tab.SetEpoch("k", st.epoch)
				}
				if !errors.Is(err, st.err) {
					t.Fatalf("step %d %s: err %v, want %v", i, st.op, err, st.err)
				}
				if got := kinds(ev); !slices.Equal(got, st.events) {
					t.Fatalf("step %d %s: events %v, want %v", i, st.op, got, st.events)
				}
				in := tab.Info("k", now)
				if in.Holder != st.holds || in.Held != (st.holds != "") {
					t.Fatalf("step %d %s: holder %q (held %v), want %q", i, st.op, in.Holder, in.Held, st.holds)
				}
				if in.Held {
					if in.Lease.Token < last {
						t.Fatalf("step %d: token went back from %d to %d", i, last, in.Lease.Token)
					}
					last = in.Lease.Token
				}
			}
		})
	}
}

func TestSequenceExhausted(t *testing.T) {
	tab := newTestTable(t, 3)
	tab.SetEpoch("k", 1)
	tab.keys["k"].seq = MaxSequence - 1
	a, err := tab.Acquire("k", "a", 0, 0, t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, seq := SplitToken(a.Lease.Token); seq != MaxSequence {
		t.Fatalf("seq %d", seq)
	}
	w, _ := tab.Acquire("k", "w", 0, time.Minute, t0)
	ev, _ := tab.Release(a.Lease, t0)
	if len(ev) != 1 || ev[0].Kind != WaiterFailed || ev[0].Ticket != w.Ticket || !errors.Is(ev[0].Err, ErrSequenceExhausted) {
		t.Fatalf("events %+v", ev)
	}
	if _, err := tab.Acquire("k", "b", 0, 0, t0); !errors.Is(err, ErrSequenceExhausted) {
		t.Fatalf("err %v, want ErrSequenceExhausted", err)
	}
	tab.SetEpoch("k", 2)
	b, err := tab.Acquire("k", "b", 0, 0, t0)
	if err != nil || b.Lease.Token <= a.Lease.Token {
		t.Fatalf("after new epoch: %+v %v", b, err)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

func TestRandomFails(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Rand = failingReader{}
	tab, _ := NewTable(cfg)
	tab.SetEpoch("k", 1)
	if _, err := tab.Acquire("k", "a", 0, 0, t0); !errors.Is(err, ErrRandom) {
		t.Fatalf("err %v", err)
	}
	if e, s := tab.Epoch("k"); e != 1 || s != 0 {
		t.Fatalf("a failed grant used a sequence: %d %d", e, s)
	}
}

func TestTooManyWaiters(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxWaiters = 2
	tab, _ := NewTable(cfg)
	tab.SetEpoch("k", 1)
	tab.Acquire("k", "a", 0, 0, t0)
	for i := range 2 {
		if _, err := tab.Acquire("k", "w", 0, time.Second, t0); err != nil {
			t.Fatal(i, err)
		}
	}
	if _, err := tab.Acquire("k", "w", 0, time.Second, t0); !errors.Is(err, ErrTooManyWaiters) {
		t.Fatalf("err %v", err)
	}
	if d, ok := tab.NextDeadline(); !ok || !d.Equal(t0.Add(time.Second)) {
		t.Fatalf("next deadline %v %v", d, ok)
	}
}

func TestOwnedUntil(t *testing.T) {
	s := time.Second
	tab := newTestTable(t, 7)
	tab.SetEpoch("k", 1)
	// Owned until 10 s with a 2 s drift margin: leases may end at 8 s at the latest.
	tab.SetOwnedUntil("k", at(10*s), t0)
	if _, err := tab.Acquire("k", "a", 9*s, 0, t0); !errors.Is(err, ErrNotOwned) {
		t.Fatalf("9 s lease: %v", err)
	}
	a, err := tab.Acquire("k", "a", 8*s, 0, t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tab.Renew(a.Lease, 8*s, at(s)); !errors.Is(err, ErrNotOwned) {
		t.Fatalf("renew past ownership: %v", err)
	}
	w, _ := tab.Acquire("k", "w", 5*s, 20*s, at(s))
	ev, _ := tab.Release(a.Lease, at(4*s))
	if len(ev) != 0 {
		t.Fatalf("waiter granted past the ownership: %+v", ev)
	}
	tab.SetOwnedUntil("k", at(20*s), at(4*s))
	ev = tab.Tick(at(4 * s))
	if len(ev) != 1 || ev[0].Kind != WaiterGranted || ev[0].Ticket != w.Ticket {
		t.Fatalf("after extending: %+v", ev)
	}
}

func TestTTLSlackShortensNearlyCoveredLeases(t *testing.T) {
	cfg := DefaultConfig()
	cfg.TTLSlack = 500 * time.Millisecond
	tb, err := NewTable(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.SetEpoch("k", 1); err != nil {
		t.Fatal(err)
	}
	// Owned until t0+15s: a 13s lease (the MaxTTL) needs until t0+15s exactly
	// from t0, and falls 100ms short from t0+100ms.
	if err := tb.SetOwnedUntil("k", at(15*time.Second), t0); err != nil {
		t.Fatal(err)
	}
	res, err := tb.Acquire("k", "h", 13*time.Second, 0, at(100*time.Millisecond))
	if err != nil || !res.Lease.Expiry.Equal(at(13*time.Second)) {
		t.Fatalf("acquire 100ms short: %+v, %v; want a lease shortened to end at t0+13s", res, err)
	}
	if _, err := tb.Renew(res.Lease, 13*time.Second, at(time.Second)); !errors.Is(err, ErrNotOwned) {
		t.Fatalf("renew 1s short, beyond the slack: %v, want ErrNotOwned", err)
	}
	cfg.TTLSlack = cfg.MaxTTL()
	if err := cfg.Validate(); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("TTLSlack above MaxTTL - MinTTL: %v, want ErrBadConfig", err)
	}
}
