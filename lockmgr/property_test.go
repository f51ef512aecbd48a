package lockmgr

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// tableModel is the reference the property test checks a Table against: per key the last
// grant, whether it ended, the highest token, and the FIFO queue of waiting tickets.
type tableModel struct {
	t      *rapid.T
	tab    *Table
	now    time.Time
	cur    map[string]*Lease // last lease granted per key
	ended  map[string]bool   // cur was released or expired
	last   map[string]int64
	epoch  map[string]uint32
	queue  map[string][]Ticket
	leases []Lease
	ttl    map[LeaseID]time.Duration
	until  map[string]time.Time // ownership deadline per key (zero: none)
	seed   uint64
}

var propKeys = []string{"a", "b", "c"}

func newTableModel(t *rapid.T) *tableModel {
	m := &tableModel{t: t, now: t0, cur: map[string]*Lease{}, ended: map[string]bool{},
		last: map[string]int64{}, epoch: map[string]uint32{}, queue: map[string][]Ticket{},
		ttl: map[LeaseID]time.Duration{}, until: map[string]time.Time{}}
	m.tab = m.fresh()
	for _, k := range propKeys {
		m.tab.SetEpoch(k, 1)
		m.epoch[k] = 1
	}
	return m
}

func (m *tableModel) fresh() *Table {
	m.seed++
	cfg := DefaultConfig()
	cfg.MaxWaiters = 4
	cfg.Rand = rand.NewChaCha8([32]byte{byte(m.seed)})
	tab, err := NewTable(cfg)
	if err != nil {
		m.t.Fatal(err)
	}
	return tab
}

func (m *tableModel) live(key string) bool {
	l := m.cur[key]
	return l != nil && !m.ended[key] && l.Expiry.After(m.now)
}

// granted checks a new grant: no live lease on the key, a larger token.
func (m *tableModel) granted(l Lease) {
	if m.live(l.Key) {
		m.t.Fatalf("two live leases on %q at %v: %+v and %+v", l.Key, m.now, *m.cur[l.Key], l)
	}
	if l.Token <= m.last[l.Key] {
		m.t.Fatalf("token on %q went from %d to %d", l.Key, m.last[l.Key], l.Token)
	}
	if e, _ := SplitToken(l.Token); e != m.epoch[l.Key] {
		m.t.Fatalf("granted under epoch %d, epoch in force %d", e, m.epoch[l.Key])
	}
	if u := m.until[l.Key]; !u.IsZero() && l.Expiry.Add(DefaultConfig().DriftMargin).After(u) {
		m.t.Fatalf("lease on %q until %v outlasts the ownership until %v minus the drift margin", l.Key, l.Expiry, u)
	}
	m.ttl[l.ID] = l.Expiry.Sub(m.now)
	m.last[l.Key] = l.Token
	m.cur[l.Key] = &l
	m.ended[l.Key] = false
	m.leases = append(m.leases, l)
}

func (m *tableModel) events(ev []Event) {
	for _, e := range ev {
		switch e.Kind {
		case LeaseExpired:
			c := m.cur[e.Key]
			if c == nil || c.ID != e.Lease.ID || m.ended[e.Key] || c.Expiry.After(m.now) {
				m.t.Fatalf("expiry of %+v, model has %+v ended %v at %v", e.Lease, c, m.ended[e.Key], m.now)
			}
			m.ended[e.Key] = true
		case WaiterGranted, WaiterFailed:
			q := m.queue[e.Key]
			if len(q) == 0 || q[0] != e.Ticket {
				m.t.Fatalf("%v ticket %d on %q, but the queue is %v (FIFO)", e.Kind, e.Ticket, e.Key, q)
			}
			m.queue[e.Key] = q[1:]
			if e.Kind == WaiterGranted {
				m.granted(e.Lease)
			}
		case WaiterTimedOut:
			i := slices.Index(m.queue[e.Key], e.Ticket)
			if i < 0 {
				m.t.Fatalf("timeout of ticket %d not waiting on %q", e.Ticket, e.Key)
			}
			m.queue[e.Key] = slices.Delete(m.queue[e.Key], i, i+1)
		}
	}
}

func (m *tableModel) owned(key string, expiry time.Time) bool {
	u := m.until[key]
	return u.IsZero() || !expiry.Add(DefaultConfig().DriftMargin).After(u)
}

func (m *tableModel) pickLease(t *rapid.T) (Lease, bool) {
	if len(m.leases) == 0 {
		return Lease{}, false
	}
	return m.leases[rapid.IntRange(0, len(m.leases)-1).Draw(t, "lease")], true
}

func (m *tableModel) isCurrent(l Lease) bool {
	c := m.cur[l.Key]
	return c != nil && c.ID == l.ID && m.live(l.Key)
}

func (m *tableModel) step(t *rapid.T) {
	switch rapid.IntRange(0, 10).Draw(t, "op") {
	case 0, 1, 2: // acquire
		key := rapid.SampledFrom(propKeys).Draw(t, "key")
		ttl := time.Duration(rapid.IntRange(1, 13).Draw(t, "ttl")) * time.Second
		wait := time.Duration(rapid.IntRange(0, 20).Draw(t, "wait")) * time.Second / 2
		a, err := m.tab.Acquire(key, "h", ttl, wait, m.now)
		m.events(m.tab.Tick(m.now))
		switch {
		case err == nil && a.Granted:
			if len(m.queue[key]) != 0 {
				m.t.Fatalf("granted %q past waiters %v", key, m.queue[key])
			}
			m.granted(a.Lease)
		case err == nil:
			m.queue[key] = append(m.queue[key], a.Ticket)
		case errors.Is(err, ErrNotOwned):
			if m.owned(key, m.now.Add(ttl)) {
				m.t.Fatalf("ErrNotOwned with ownership until %v for a lease until %v", m.until[key], m.now.Add(ttl))
			}
		case errors.Is(err, ErrHeld), errors.Is(err, ErrTooManyWaiters):
			if !m.live(key) && len(m.queue[key]) == 0 {
				m.t.Fatalf("refused free key %q: %v", key, err)
			}
		default:
			m.t.Fatal(err)
		}
	case 3: // renew
		l, ok := m.pickLease(t)
		if !ok {
			return
		}
		ev := m.tab.Tick(m.now)
		m.events(ev)
		nl, err := m.tab.Renew(l, 0, m.now)
		want := m.isCurrent(l) && m.owned(l.Key, m.now.Add(m.ttl[l.ID]))
		if (err == nil) != want {
			m.t.Fatalf("renew of %+v: %v, model says it can renew: %v", l, err, want)
		}
		if err == nil {
			if u := m.until[l.Key]; !u.IsZero() && nl.Expiry.Add(DefaultConfig().DriftMargin).After(u) {
				m.t.Fatalf("renewed lease outlasts the ownership")
			}
			m.cur[l.Key] = &nl
		}
	case 4, 5: // release
		l, ok := m.pickLease(t)
		if !ok {
			return
		}
		m.events(m.tab.Tick(m.now))
		wasLive := m.isCurrent(l)
		ev, err := m.tab.Release(l, m.now)
		if (err == nil) != wasLive {
			m.t.Fatalf("release of %+v: %v, model live %v", l, err, wasLive)
		}
		if err == nil {
			m.ended[l.Key] = true
		}
		m.events(ev)
	case 6, 7: // time passes
		m.now = m.now.Add(time.Duration(rapid.IntRange(0, 6000).Draw(t, "ms")) * time.Millisecond)
		m.events(m.tab.Tick(m.now))
	case 10: // ownership deadline moves (or is lifted)
		key := rapid.SampledFrom(propKeys).Draw(t, "key")
		var u time.Time
		if rapid.IntRange(0, 3).Draw(t, "limited") > 0 {
			u = m.now.Add(time.Duration(rapid.IntRange(0, 30).Draw(t, "until")) * time.Second)
		}
		if err := m.tab.SetOwnedUntil(key, u, m.now); err != nil {
			m.t.Fatal(err)
		}
		m.until[key] = u
		m.events(m.tab.Tick(m.now))
	case 8: // new epoch
		m.events(m.tab.Tick(m.now)) // grants made before the new epoch
		key := rapid.SampledFrom(propKeys).Draw(t, "key")
		m.epoch[key]++
		if err := m.tab.SetEpoch(key, m.epoch[key]); err != nil {
			m.t.Fatal(err)
		}
	case 9: // hand every key to a fresh table
		m.handoff()
	}
}

func (m *tableModel) handoff() {
	m.events(m.tab.Tick(m.now))
	nw := m.fresh()
	for _, k := range propKeys {
		st, ok := m.tab.Export(k, m.now)
		if !ok {
			m.t.Fatalf("export of %q: unknown", k)
		}
		b, err := st.MarshalBinary()
		if err != nil {
			m.t.Fatal(err)
		}
		var got KeyState
		if err := got.UnmarshalBinary(b); err != nil {
			m.t.Fatal(err)
		}
		m.tab.Remove(k)
		// The new owner sets its epoch (sometimes the same, mostly one above: a Transfer)
		// and its ownership deadline before it imports.
		if rapid.IntRange(0, 3).Draw(m.t, "new epoch") > 0 {
			m.epoch[k]++
		}
		if err := nw.SetEpoch(k, m.epoch[k]); err != nil {
			m.t.Fatal(err)
		}
		if err := nw.SetOwnedUntil(k, m.until[k], m.now); err != nil {
			m.t.Fatal(err)
		}
		tickets, err := nw.Import(got, m.now)
		if err != nil {
			m.t.Fatal(err)
		}
		old := m.queue[k]
		if len(old) != len(tickets) {
			m.t.Fatalf("handoff of %q: %d waiters, model has %d", k, len(tickets), len(old))
		}
		m.queue[k] = tickets
	}
	m.tab = nw
	m.events(m.tab.Tick(m.now))
}

// Random acquire/renew/release/tick/epoch/handoff sequences never leave two live leases on
// a key, grant waiters in FIFO order, and only ever raise a key's token (also across a
// handoff into a fresh table).
func TestTableProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m := newTableModel(t)
		n := rapid.IntRange(1, 200).Draw(t, "steps")
		for range n {
			m.step(t)
		}
	})
}

// An acceptor never holds two live promises for one key, to different owner incarnations,
// and its highest epoch only grows.
func TestAcceptorProperty(t *testing.T) {
	owners := []Owner{{"a", 1}, {"a", 2}, {"b", 1}, {"c", 7}}
	rapid.Check(t, func(t *rapid.T) {
		acc, _ := NewAcceptor(DefaultConfig())
		now := t0
		type granted struct {
			owner    Owner
			deadline time.Time
		}
		last := map[string]granted{}
		highest := map[string]uint32{}
		for range rapid.IntRange(1, 200).Draw(t, "steps") {
			now = now.Add(time.Duration(rapid.IntRange(0, 4000).Draw(t, "ms")) * time.Millisecond)
			key := rapid.SampledFrom(propKeys).Draw(t, "key")
			owner := rapid.SampledFrom(owners).Draw(t, "owner")
			epoch := uint32(rapid.IntRange(1, 12).Draw(t, "epoch"))
			deadline := now.Add(time.Duration(rapid.IntRange(0, 16000).Draw(t, "dl")) * time.Millisecond)
			var p Promise
			var err error
			if rapid.Bool().Draw(t, "transfer") {
				from := rapid.SampledFrom(owners).Draw(t, "from")
				p, err = acc.Transfer(key, from, owner, epoch, deadline, now)
			} else {
				p, err = acc.Promise(key, owner, epoch, deadline, now)
			}
			if err == nil {
				last[key] = granted{owner, p.Deadline}
			}
			if h := acc.Highest(key); h < highest[key] {
				t.Fatalf("highest epoch of %q went from %d to %d", key, highest[key], h)
			} else {
				highest[key] = h
			}
			// At most one live promise: Live names the last accepted one while it lasts.
			if g, ok := last[key]; ok && g.deadline.After(now) {
				lp, live := acc.Live(key, now)
				if !live || lp.Owner != g.owner || !lp.Deadline.Equal(g.deadline) {
					t.Fatalf("live %+v %v, last accepted %+v", lp, live, g)
				}
			}
		}
	})
}

// Promise (not Transfer) never overlaps promises to two owner incarnations.
func TestAcceptorNoOverlapProperty(t *testing.T) {
	owners := []Owner{{"a", 1}, {"a", 2}, {"b", 1}}
	rapid.Check(t, func(t *rapid.T) {
		acc, _ := NewAcceptor(DefaultConfig())
		now := t0
		type span struct {
			owner      Owner
			start, end time.Time
		}
		spans := map[string][]span{}
		for range rapid.IntRange(1, 200).Draw(t, "steps") {
			now = now.Add(time.Duration(rapid.IntRange(0, 4000).Draw(t, "ms")) * time.Millisecond)
			key := rapid.SampledFrom(propKeys).Draw(t, "key")
			owner := rapid.SampledFrom(owners).Draw(t, "owner")
			epoch := uint32(rapid.IntRange(1, 12).Draw(t, "epoch"))
			deadline := now.Add(time.Duration(rapid.IntRange(0, 16000).Draw(t, "dl")) * time.Millisecond)
			p, err := acc.Promise(key, owner, epoch, deadline, now)
			if err != nil {
				continue
			}
			for _, s := range spans[key] {
				if s.owner != owner && s.end.After(now) {
					t.Fatalf("promise to %v at %v overlaps %v's until %v", owner, now, s.owner, s.end)
				}
			}
			spans[key] = append(spans[key], span{owner, now, p.Deadline})
		}
	})
}
