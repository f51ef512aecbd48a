package agent_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/ringleader/ringleader/agent"
)

// acquireEventually acquires key through a, retrying while the cluster
// cannot grant yet (quiet periods after start, a ring settling).
func acquireEventually(t *testing.T, a *agent.Agent, key string, req agent.LockRequest) agent.LockGrant {
	t.Helper()
	var g agent.LockGrant
	waitFor(t, 20*time.Second, "grant of "+key+" through "+a.NodeName(), func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var err error
		g, err = a.AcquireLock(ctx, key, req)
		if err != nil && !errors.Is(err, agent.ErrNoQuorum) && !errors.Is(err, agent.ErrUnavailable) {
			t.Fatalf("acquire %q through %s: %v", key, a.NodeName(), err)
		}
		return err
	})
	return g
}

func TestLockGrantRenewRelease(t *testing.T) {
	c := newCluster(t, 3, nil)
	waitFor(t, 20*time.Second, "cluster", func() error { return agreed(c.agents, allAlive(3)) })
	ctx := context.Background()
	g1 := acquireEventually(t, c.agents[0], "jobs/nightly", agent.LockRequest{Holder: "first"})
	if g1.Token <= 0 || len(g1.Lease) != 32 || g1.Owner == "" || g1.TTL <= 0 || g1.TTL > time.Second {
		t.Fatalf("grant %+v: want a positive token, a 32-hex lease, an owner and the default 1s TTL", g1)
	}
	_, err := c.agents[1].AcquireLock(ctx, "jobs/nightly", agent.LockRequest{Holder: "second"})
	var held *agent.LockHeldError
	if !errors.As(err, &held) || held.Holder != "first" || held.Remaining <= 0 {
		t.Fatalf("acquire of a held key: %v, want a LockHeldError naming \"first\"", err)
	}
	st, err := c.agents[2].LockInfo(ctx, "jobs/nightly")
	if err != nil || !st.Held || st.Holder != "first" || st.Token != g1.Token || st.Owner != g1.Owner {
		t.Fatalf("info = %+v, %v; want held by first with token %d", st, err, g1.Token)
	}
	r, err := c.agents[2].RenewLock(ctx, "jobs/nightly", g1.Lease, 1500*time.Millisecond)
	if err != nil || r.Token != g1.Token || r.Lease != g1.Lease || r.TTL > 1500*time.Millisecond || r.TTL < 1400*time.Millisecond {
		t.Fatalf("renew = %+v, %v; want the same token and lease with a 1.5s TTL", r, err)
	}
	// The longest TTL, lock-delay minus the drift margin, is granted (a
	// hair short: the ownership lease runs from when it was asked for).
	long, err := c.agents[0].AcquireLock(ctx, "long", agent.LockRequest{TTL: 1800 * time.Millisecond})
	if err != nil || long.TTL < 1700*time.Millisecond || long.TTL > 1800*time.Millisecond {
		t.Fatalf("acquire with the longest TTL = %+v, %v", long, err)
	}
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"renew of an unknown lease", func() error {
			_, err := c.agents[1].RenewLock(ctx, "jobs/nightly", "00000000000000000000000000000000", 0)
			return err
		}(), agent.ErrUnknownLease},
		{"renew with a bad lease", func() error { _, err := c.agents[1].RenewLock(ctx, "jobs/nightly", "xyz", 0); return err }(), agent.ErrBadLock},
		{"ttl over lock-delay minus drift", func() error {
			_, err := c.agents[1].AcquireLock(ctx, "other", agent.LockRequest{TTL: 5 * time.Second})
			return err
		}(), agent.ErrBadLock},
		{"empty key", func() error { _, err := c.agents[1].AcquireLock(ctx, "", agent.LockRequest{}); return err }(), agent.ErrBadLock},
		{"holder with a control character", func() error {
			_, err := c.agents[1].AcquireLock(ctx, "other", agent.LockRequest{Holder: "cron\x1b[31m"})
			return err
		}(), agent.ErrBadLock},
		{"release of an unknown lease", c.agents[0].ReleaseLock(ctx, "jobs/nightly", "0123456789abcdef0123456789abcdef"), agent.ErrUnknownLease},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	if err := c.agents[1].ReleaseLock(ctx, "jobs/nightly", g1.Lease); err != nil {
		t.Fatalf("release: %v", err)
	}
	g2, err := c.agents[2].AcquireLock(ctx, "jobs/nightly", agent.LockRequest{Holder: "second"})
	if err != nil || g2.Token <= g1.Token {
		t.Fatalf("second grant = %+v, %v; want a token above %d", g2, err, g1.Token)
	}
}

// holdRecord is one client's hold of a key: from when the grant arrived to
// when the release was sent, so the lease covers it.
type holdRecord struct {
	key        string
	token      int64
	start, end time.Time
}

// checkHolds fails the test on overlapping holds of one key or a token that
// does not grow in grant order.
func checkHolds(t *testing.T, holds []holdRecord) {
	t.Helper()
	by := map[string][]holdRecord{}
	for _, h := range holds {
		by[h.key] = append(by[h.key], h)
	}
	for key, hs := range by {
		sort.Slice(hs, func(i, j int) bool { return hs[i].start.Before(hs[j].start) })
		for i := 1; i < len(hs); i++ {
			if hs[i].start.Before(hs[i-1].end) {
				t.Errorf("key %q: holds overlap: token %d held until %v, token %d from %v",
					key, hs[i-1].token, hs[i-1].end, hs[i].token, hs[i].start)
			}
			if hs[i].token <= hs[i-1].token {
				t.Errorf("key %q: token %d granted after %d", key, hs[i].token, hs[i-1].token)
			}
		}
	}
}

func TestLockContentionIsExclusive(t *testing.T) {
	c := newCluster(t, 3, nil)
	waitFor(t, 20*time.Second, "cluster", func() error { return agreed(c.agents, allAlive(3)) })
	keys := []string{"a", "b", "c"}
	for _, k := range keys {
		g := acquireEventually(t, c.agents[0], k, agent.LockRequest{})
		if err := c.agents[0].ReleaseLock(context.Background(), k, g.Lease); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	var holds []holdRecord
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for range 10 {
				key := keys[rng.IntN(len(keys))]
				a := c.agents[rng.IntN(len(c.agents))]
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				g, err := a.AcquireLock(ctx, key, agent.LockRequest{Wait: 5 * time.Second, Holder: fmt.Sprint("w", w)})
				cancel()
				if err != nil {
					errs <- fmt.Errorf("worker %d: acquire %q through %s: %v", w, key, a.NodeName(), err)
					return
				}
				start := time.Now()
				time.Sleep(time.Duration(rng.IntN(3)) * time.Millisecond) // the work under the lock
				end := time.Now()
				if err := c.agents[rng.IntN(len(c.agents))].ReleaseLock(context.Background(), key, g.Lease); err != nil {
					errs <- fmt.Errorf("worker %d: release %q: %v", w, key, err)
					return
				}
				mu.Lock()
				holds = append(holds, holdRecord{key: key, token: g.Token, start: start, end: end})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(holds) != 80 {
		t.Errorf("%d holds recorded, want 80", len(holds))
	}
	checkHolds(t, holds)
}

func TestLockMinorityRefuses(t *testing.T) {
	c := newCluster(t, 5, nil)
	waitFor(t, 20*time.Second, "cluster", func() error { return agreed(c.agents, allAlive(5)) })
	acquireEventually(t, c.agents[2], "warm", agent.LockRequest{}) // past the quiet periods
	if err := c.net.Partition([]string{ip(0), ip(1)}, []string{ip(2), ip(3), ip(4)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "n1 and n2 see the others failed, and their rings only themselves", func() error {
		for _, a := range c.agents[:2] {
			st := statuses(a)
			for _, n := range []string{"n3", "n4", "n5"} {
				if st[n] != "failed" {
					return fmt.Errorf("%s sees %s %s", a.NodeName(), n, st[n])
				}
			}
			if l := a.View().Ring.Len(); l != 2 {
				return fmt.Errorf("%s's ring has %d members", a.NodeName(), l)
			}
		}
		return nil
	})
	// Every key is owned by n1 or n2 on the minority side now.
	for i := range 5 {
		key := fmt.Sprint("minority-", i)
		_, err := c.agents[i%2].AcquireLock(context.Background(), key, agent.LockRequest{})
		if !errors.Is(err, agent.ErrNoQuorum) {
			t.Fatalf("acquire %q on the minority side: %v, want ErrNoQuorum", key, err)
		}
	}
	// The majority side grants.
	acquireEventually(t, c.agents[3], "majority-side", agent.LockRequest{})
	c.net.Heal() // no dial may be left hanging on a cut when the test ends
}

// ownedBy returns keys (from a pool) that a's ring gives to owner.
func keysOwnedBy(t *testing.T, a *agent.Agent, owner string, n int) []string {
	t.Helper()
	var out []string
	for i := 0; len(out) < n && i < 10000; i++ {
		k := fmt.Sprint("handoff-", i)
		if o, err := a.View().Ring.Owner(k); err == nil && o == owner {
			out = append(out, k)
		}
	}
	if len(out) < n {
		t.Fatalf("found %d keys owned by %s, want %d", len(out), owner, n)
	}
	return out
}

// keepRenewing renews grants through a every 100 ms until stop closes,
// tolerating refusals while the ring settles; it reports a lost lease (the
// holder's lock vanished) on the returned channel, and the owner each key
// was last renewed by in owners.
func keepRenewing(a *agent.Agent, grants *sync.Map, stop <-chan struct{}, owners *sync.Map) <-chan error {
	lost := make(chan error, 1)
	go func() {
		defer close(lost)
		for {
			var keys []string
			grants.Range(func(k, _ any) bool { keys = append(keys, k.(string)); return true })
			for _, k := range keys {
				v, _ := grants.Load(k)
				g := v.(agent.LockGrant)
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				r, err := a.RenewLock(ctx, k, g.Lease, 1500*time.Millisecond)
				cancel()
				if errors.Is(err, agent.ErrUnknownLease) {
					lost <- fmt.Errorf("%s: lease lost (granted by %s with token %d, ring of %s says %v): %v", k, g.Owner, g.Token, a.NodeName(), func() string { o, _ := a.View().Ring.Owner(k); return o }(), err)
					return
				}
				if err == nil {
					if r.Token != g.Token {
						lost <- fmt.Errorf("%s: renewed with token %d, granted with %d", k, r.Token, g.Token)
						return
					}
					owners.Store(k, r.Owner)
				}
			}
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return lost
}

// A join moves keys to the new peer: the old owner hands them over, the
// held lease lives on at the new owner with its token, and the next grant
// comes at once (no lock-delay) with a larger token. A graceful leave hands
// them back.
func TestLockHandoffOnJoinAndLeave(t *testing.T) {
	c := newCluster(t, 3, nil)
	waitFor(t, 20*time.Second, "cluster", func() error { return agreed(c.agents, allAlive(3)) })
	ctx := context.Background()
	// Grant 20 keys now, so they are owned before n4 exists; their holders
	// keep renewing them through n1.
	var grants, owners sync.Map
	stop := make(chan struct{})
	lost := keepRenewing(c.agents[0], &grants, stop, &owners)
	var keys []string
	for i := range 20 {
		k := fmt.Sprint("handoff-", i)
		grants.Store(k, acquireEventually(t, c.agents[i%3], k, agent.LockRequest{TTL: 1500 * time.Millisecond, Holder: k}))
		keys = append(keys, k)
	}
	grant := func(k string) agent.LockGrant { v, _ := grants.Load(k); return v.(agent.LockGrant) }
	cfg := newAgentConfig(t, c.net, 3)
	cfg.StartJoin = []string{ip(0) + ":7946"}
	n4 := startAgent(t, cfg)
	all := append(append([]*agent.Agent{}, c.agents...), n4)
	waitFor(t, 20*time.Second, "n4 in every ring", func() error { return agreed(all, allAlive(4)) })
	var moved []string
	for _, k := range keys {
		if o, _ := n4.View().Ring.Owner(k); o == "n4" {
			moved = append(moved, k)
		}
	}
	if len(moved) == 0 {
		t.Fatal("no key moved to n4; use more keys")
	}
	// The held leases live on at n4: renewals keep token and lease, and
	// n4 answers them.
	waitFor(t, 10*time.Second, "the moved leases renewed at n4", func() error {
		select {
		case err := <-lost:
			t.Fatal(err)
		default:
		}
		for _, k := range moved {
			if o, _ := owners.Load(k); o != "n4" {
				return fmt.Errorf("%s last renewed by %v", k, o)
			}
		}
		return nil
	})
	close(stop)
	if err := <-lost; err != nil {
		t.Fatal(err)
	}
	for _, k := range moved {
		if err := n4.ReleaseLock(ctx, k, grant(k).Lease); err != nil {
			t.Fatalf("%s: release at n4: %v", k, err)
		}
		start := time.Now()
		g, err := c.agents[1].AcquireLock(ctx, k, agent.LockRequest{TTL: 1500 * time.Millisecond})
		if err != nil || g.Token <= grant(k).Token || g.Owner != "n4" {
			t.Fatalf("%s: grant after handoff = %+v, %v; want n4 and a token above %d", k, g, err, grant(k).Token)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("%s: the grant after a handoff took %v; the lock-delay is 2s and must not apply", k, d)
		}
		grants.Store(k, g)
	}
	// n4 leaves gracefully: its keys go back, leases and tokens intact,
	// while the holders keep renewing.
	stop = make(chan struct{})
	lost = keepRenewing(c.agents[0], &grants, stop, &owners)
	// A request queued at n4 behind a holder follows the key to its new
	// owner and is granted there once the holder releases.
	queued := make(chan error, 1)
	waitKey := moved[0]
	go func() {
		g, err := c.agents[1].AcquireLock(ctx, waitKey, agent.LockRequest{TTL: time.Second, Wait: 8 * time.Second, Holder: "queued"})
		if err == nil && g.Token <= grant(waitKey).Token {
			err = fmt.Errorf("granted with token %d, not above the holder's %d", g.Token, grant(waitKey).Token)
		}
		queued <- err
	}()
	waitFor(t, 5*time.Second, "the request queued at n4", func() error {
		st, err := n4.LockInfo(ctx, waitKey)
		if err != nil || st.Waiters != 1 {
			return fmt.Errorf("info %+v, %v", st, err)
		}
		return nil
	})
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := n4.Leave(lctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the moved leases renewed by the others", func() error {
		for _, k := range moved {
			if o, _ := owners.Load(k); o == "n4" {
				return fmt.Errorf("%s last renewed by n4", k)
			}
		}
		return nil
	})
	close(stop)
	if err := <-lost; err != nil {
		t.Fatal(err)
	}
	if err := c.agents[0].ReleaseLock(ctx, waitKey, grant(waitKey).Lease); err != nil {
		t.Fatalf("release of %s after n4 left: %v", waitKey, err)
	}
	if err := <-queued; err != nil {
		t.Fatalf("the request queued at the leaving peer: %v", err)
	}
}

// TestLockWaiterGivingUpThroughAnotherPeer checks that a waiter whose
// client gave up at a peer that forwarded it to the owner is dropped by the
// owner, as one that waited at the owner itself is: it is not granted the
// lock later, which would leave the key held by nobody for a whole TTL.
func TestLockWaiterGivingUpThroughAnotherPeer(t *testing.T) {
	c := newCluster(t, 3, func(i int, cfg *agent.Config) {
		// Long enough that the first lease outlasts the test's steps.
		cfg.Locks.LockDelay = 6 * time.Second
		cfg.Locks.DriftMargin = 500 * time.Millisecond
	})
	waitFor(t, 20*time.Second, "cluster", func() error { return agreed(c.agents, allAlive(3)) })
	owner, via := c.agents[0], c.agents[1]
	key := ""
	for i := 0; key == ""; i++ {
		if o, err := via.View().Ring.Owner(fmt.Sprintf("give-up/%d", i)); err == nil && o == owner.NodeName() {
			key = fmt.Sprintf("give-up/%d", i)
		}
	}
	first := acquireEventually(t, owner, key, agent.LockRequest{Holder: "first", TTL: 5 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	waited := make(chan error, 1)
	go func() {
		_, err := via.AcquireLock(ctx, key, agent.LockRequest{Holder: "gave-up", Wait: time.Minute})
		waited <- err
	}()
	waiters := func(want int) func() error {
		return func() error {
			st, err := owner.LockInfo(context.Background(), key)
			if err != nil {
				return err
			}
			if st.Waiters != want {
				return fmt.Errorf("%d waiters, want %d", st.Waiters, want)
			}
			return nil
		}
	}
	waitFor(t, 10*time.Second, "the forwarded waiter to queue at the owner", waiters(1))
	cancel()
	if err := <-waited; err == nil {
		t.Fatal("the cancelled acquire was granted")
	}
	waitFor(t, 10*time.Second, "the owner to drop the waiter", waiters(0))
	if err := owner.ReleaseLock(context.Background(), key, first.Lease); err != nil {
		t.Fatal(err)
	}
	st, err := owner.LockInfo(context.Background(), key)
	if err != nil || st.Held {
		t.Fatalf("after the release: %+v, %v; want the key free", st, err)
	}
}
