package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringleader/ringleader/agent/client"
)

// This file is the end-to-end test of the locks (issue 6): real peer
// processes on 127.0.0.1, a short lock-delay, and a recorder that checks
// every grant the test saw against every other.

const (
	e2eLockDelay = 3 * time.Second
	e2eLockDrift = 500 * time.Millisecond
	e2eMaxTTL    = e2eLockDelay - e2eLockDrift
	// e2eFailureDetection bounds how long the peers take to mark a killed
	// peer failed and drop it from their rings (memberlist's LAN timings:
	// a probe a second, then a suspicion timeout; 5-7 s measured here).
	e2eFailureDetection = 12 * time.Second
)

var e2eLockArgs = []string{"--lock-delay", e2eLockDelay.String(), "--lock-drift-margin", e2eLockDrift.String()}

// recordedGrant is one lease the test was granted. The holder certainly
// held it from when the grant was answered until end: the earlier of when
// its release was sent and TTL after the last successful acquire or
// renewal was sent (the owner counts the lease from when the request
// arrived, which is later).
type recordedGrant struct {
	key, lease    string
	token         int64
	peer, owner   string // asked through, granted by
	phase, holder string
	sent          time.Time // acquire sent
	answered      time.Time // grant received
	end           time.Time
	released      bool
}

// lockRecorder keeps every grant of the test and proves, per key, that no
// two certain holding intervals overlap and that tokens grow in every
// order the test can be sure of.
type lockRecorder struct {
	t0     time.Time
	mu     sync.Mutex
	grants []*recordedGrant
}

func (r *lockRecorder) granted(phase, peer, holder string, l client.Lease, sent, answered time.Time) *recordedGrant {
	g := &recordedGrant{key: l.Key, lease: l.Lease, token: l.Token, peer: peer, owner: l.Owner, phase: phase, holder: holder,
		sent: sent, answered: answered, end: sent.Add(l.TTL())}
	r.mu.Lock()
	r.grants = append(r.grants, g)
	r.mu.Unlock()
	return g
}

// extend records that the lease is certainly live until deadline (a
// successful renewal sent deadline-TTL ago).
func (r *lockRecorder) extend(g *recordedGrant, deadline time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !g.released && deadline.After(g.end) {
		g.end = deadline
	}
}

// released records that a release of the lease was sent at sent (whatever
// its answer: the holder stops counting on the lease then).
func (r *lockRecorder) released(g *recordedGrant, sent time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if sent.Before(g.end) {
		g.end = sent
	}
	g.released = true
}

func (r *lockRecorder) rel(t time.Time) string {
	return t.Sub(r.t0).Round(100 * time.Microsecond).String()
}

func (r *lockRecorder) describe(g *recordedGrant) string {
	return fmt.Sprintf("token %d (lease %.8s, %s, holder %s, through %s, owner %s): sent %s, granted by %s, held until %s",
		g.token, g.lease, g.phase, g.holder, g.peer, g.owner, r.rel(g.sent), r.rel(g.answered), r.rel(g.end))
}

// maxTokens returns the largest token recorded per key.
func (r *lockRecorder) maxTokens() map[string]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int64{}
	for _, g := range r.grants {
		out[g.key] = max(out[g.key], g.token)
	}
	return out
}

// check proves the safety properties over every grant recorded: per key,
// no two certain holding intervals [answered, end] overlap; a grant
// answered before another was sent has the smaller token; no token is
// granted twice. It returns the violations.
func (r *lockRecorder) check() (grants, keys int, violations []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	byKey := map[string][]*recordedGrant{}
	for _, g := range r.grants {
		byKey[g.key] = append(byKey[g.key], g)
	}
	for key, gs := range byKey {
		seen := map[int64]*recordedGrant{}
		for _, g := range gs {
			if o := seen[g.token]; o != nil {
				violations = append(violations, fmt.Sprintf("%q: token %d granted twice:\n  %s\n  %s", key, g.token, r.describe(o), r.describe(g)))
			}
			seen[g.token] = g
		}
		byAnswer := slices.Clone(gs)
		slices.SortFunc(byAnswer, func(a, b *recordedGrant) int { return a.answered.Compare(b.answered) })
		for i, a := range byAnswer {
			if !a.answered.Before(a.end) {
				continue // not certainly held at any time
			}
			for _, b := range byAnswer[i+1:] {
				if !b.answered.Before(a.end) {
					break
				}
				if b.answered.Before(b.end) {
					violations = append(violations, fmt.Sprintf("%q: two holders at once:\n  %s\n  %s", key, r.describe(a), r.describe(b)))
				}
			}
		}
		bySent := slices.Clone(gs)
		slices.SortFunc(bySent, func(a, b *recordedGrant) int { return a.sent.Compare(b.sent) })
		var top *recordedGrant
		j := 0
		for _, b := range bySent {
			for ; j < len(byAnswer) && byAnswer[j].answered.Before(b.sent); j++ {
				if top == nil || byAnswer[j].token > top.token {
					top = byAnswer[j]
				}
			}
			if top != nil && top.token >= b.token {
				violations = append(violations, fmt.Sprintf("%q: token regression: a grant answered before another was asked for has a token not below it:\n  %s\n  %s", key, r.describe(top), r.describe(b)))
			}
		}
	}
	return len(r.grants), len(byKey), violations
}

// lockCluster is the cluster under test with a client per peer.
type lockCluster struct {
	t   *testing.T // owns the processes and their data dirs
	rec *lockRecorder

	mu      sync.Mutex
	ps      []*peerProc // the current members
	down    map[string]bool
	clients map[string]*client.Client
}

func (lc *lockCluster) client(p *peerProc) *client.Client {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	c := lc.clients[p.name]
	if c == nil {
		var err error
		c, err = client.New(p.httpAddr(), client.WithTimeout(5*time.Second))
		if err != nil {
			panic(err)
		}
		lc.clients[p.name] = c
	}
	return c
}

// up returns the current members not marked down, except those in skip.
func (lc *lockCluster) up(skip ...*peerProc) []*peerProc {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	var out []*peerProc
	for _, p := range lc.ps {
		if !lc.down[p.name] && !slices.Contains(skip, p) {
			out = append(out, p)
		}
	}
	return out
}

func (lc *lockCluster) setDown(p *peerProc, d bool) {
	lc.mu.Lock()
	lc.down[p.name] = d
	lc.mu.Unlock()
}

func (lc *lockCluster) peer(name string) *peerProc {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	for _, p := range lc.ps {
		if p.name == name {
			return p
		}
	}
	return nil
}

// acquire asks p for key and records a grant.
func (lc *lockCluster) acquire(ctx context.Context, phase string, p *peerProc, key string, opts client.LockOptions) (*recordedGrant, error) {
	sent := time.Now()
	l, err := lc.client(p).Acquire(ctx, key, opts)
	if err != nil {
		return nil, err
	}
	return lc.rec.granted(phase, p.name, opts.Holder, l, sent, time.Now()), nil
}

// release releases g through p and records it. The release is recorded
// before it is sent: a grant the release lets through may be recorded
// before the release's answer comes back.
func (lc *lockCluster) release(ctx context.Context, p *peerProc, g *recordedGrant) error {
	lc.rec.released(g, time.Now())
	return lc.client(p).Release(ctx, g.key, g.lease)
}

// heldLock is a self-renewing lease and its record.
type heldLock struct {
	h    *client.HeldLock
	g    *recordedGrant
	peer *peerProc
}

// lock takes a HeldLock through p and records it.
func (lc *lockCluster) lock(ctx context.Context, phase string, p *peerProc, key string, opts client.LockOptions) (*heldLock, error) {
	sent := time.Now()
	h, err := lc.client(p).Lock(ctx, key, opts)
	if err != nil {
		return nil, err
	}
	l := client.Lease{Key: h.Key(), Token: h.Token(), Lease: h.Lease(), TTLMS: h.TTL().Milliseconds(), Owner: h.Owner()}
	g := lc.rec.granted(phase, p.name, opts.Holder, l, sent, time.Now())
	lc.rec.extend(g, h.Deadline())
	return &heldLock{h: h, g: g, peer: p}, nil
}

// unlock records hl's deadline and its release (before sending it, as
// release does), then stops renewing it and releases it.
func (lc *lockCluster) unlock(hl *heldLock) error {
	lc.rec.extend(hl.g, hl.h.Deadline()) // a renewal still in flight can only extend it
	lc.rec.released(hl.g, time.Now())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return hl.h.Unlock(ctx)
}

// lost records the last deadline of a lease whose owner died.
func (lc *lockCluster) lost(hl *heldLock) {
	hl.h.Unlock(context.Background()) // stops renewing; the release fails or finds nothing
	lc.rec.extend(hl.g, hl.h.Deadline())
}

// owner asks p's ring for the owner of key.
func (lc *lockCluster) owner(p *peerProc, key string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	o, err := lc.client(p).RingOwner(ctx, key, 1)
	return o.Owner, err
}

// grantUntil asks random peers (not skip) for key every 50 ms, without
// waiting at the peer, until one grants it or timeout passes.
func (lc *lockCluster) grantUntil(tb testing.TB, phase, key string, ttl, timeout time.Duration, skip ...*peerProc) *recordedGrant {
	tb.Helper()
	start := time.Now()
	var last error
	refusals := map[string]int{}
	for time.Since(start) < timeout {
		ps := lc.up(skip...)
		p := ps[rand.IntN(len(ps))]
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		g, err := lc.acquire(ctx, phase, p, key, client.LockOptions{TTL: ttl, Holder: phase})
		cancel()
		if err == nil && len(refusals) > 0 {
			tb.Logf("%s: %q granted through %s by %s, token %d, after %v (refusals before: %v; last: %v)",
				phase, key, p.name, g.owner, g.token, time.Since(start).Round(time.Millisecond), refusals, last)
		}
		if err == nil {
			return g
		}
		last = err
		refusals[errorKind(err)]++
		time.Sleep(50 * time.Millisecond)
	}
	tb.Fatalf("%s: no grant of %q within %v: refusals %v, last: %v", phase, key, timeout, refusals, last)
	return nil
}

func errorKind(err error) string {
	var ae *client.APIError
	switch {
	case errors.Is(err, client.ErrHeld):
		return "held"
	case errors.As(err, &ae) && ae.Status == 503 && strings.Contains(ae.Message, "no quorum"):
		return "no-quorum"
	case errors.Is(err, client.ErrUnavailable):
		return "unavailable"
	case errors.Is(err, client.ErrUnreachable):
		return "unreachable"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	return "other"
}

// waitLockable waits until key can be granted through p, and releases it.
func (lc *lockCluster) waitLockable(tb testing.TB, p *peerProc, key string) time.Duration {
	tb.Helper()
	return waitUntil(tb, 30*time.Second, "a lock grant through "+p.name, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		g, err := lc.acquire(ctx, "ready", p, key, client.LockOptions{TTL: time.Second, Holder: "ready"})
		if err != nil {
			return err
		}
		return lc.release(ctx, p, g)
	})
}

// TestLocksEndToEnd runs issue 6's end-to-end cases on five real peers
// with a 3 s lock-delay. Every grant goes to one recorder, checked at the
// end of each case and of the test: no two holders of a key at once, and
// tokens that grow in grant order, across owner kills, restarts, handoffs
// and a restart of every peer.
func TestLocksEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real processes")
	}
	began := time.Now()
	ps := startCluster(t, 5, e2eLockArgs...)
	lc := &lockCluster{t: t, rec: &lockRecorder{t0: began}, ps: ps, down: map[string]bool{}, clients: map[string]*client.Client{}}
	waitUntil(t, 30*time.Second, "5 alive everywhere with one ring", func() error { return agree(ps, names(ps, "alive")) })
	lc.waitLockable(t, ps[0], "e2e-ready")
	t.Logf("cluster up and granting locks after %v", time.Since(began).Round(time.Millisecond))

	reported := map[string]bool{} // each violation fails the case that saw it first
	checkRecorder := func(t *testing.T) {
		t.Helper()
		n, keys, violations := lc.rec.check()
		fresh := 0
		for _, v := range violations {
			if reported[v] {
				continue
			}
			reported[v] = true
			if fresh++; fresh <= 20 {
				t.Errorf("SAFETY VIOLATION: %s", v)
			}
		}
		if fresh > 20 {
			t.Errorf("... and %d more violations", fresh-20)
		}
		t.Logf("recorder: %d grants over %d keys, %d violations (%d new)", n, keys, len(violations), fresh)
	}
	defer func() {
		checkRecorder(t)
		t.Logf("wall time %v", time.Since(began).Round(time.Millisecond))
	}()
	run := func(name string, f func(t *testing.T)) {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			f(t)
			checkRecorder(t)
			t.Logf("%s took %v", name, time.Since(start).Round(time.Millisecond))
		})
	}
	run("contention", lc.testContention)

	// From here on, 10 clients keep contending on the same 20 keys through
	// every kill, restart, join and leave; the recorder checks them too.
	var stopBackground atomic.Bool
	bgStop := time.Now().Add(75 * time.Second)
	bg, bgWG := lc.contend("background", 10, 20, 3000, 7, func() bool { return stopBackground.Load() || time.Now().After(bgStop) })
	stopBg := func() {
		if !stopBackground.Swap(true) {
			bgWG.Wait()
			t.Logf("background load: %v; refusals:%s", bg, bg.topReasons(8))
		}
	}
	defer stopBg()
	run("kill-owner", lc.testKillOwner)
	run("kill-restart-owner", lc.testKillRestartOwner)
	run("join-and-leave-handoff", lc.testHandoff)
	run("restart-all", lc.testRestartAll)
	stopBg()
	run("lock-command", lc.testLockCommand)
}

// contendStats counts what contending clients got.
type contendStats struct {
	granted, held, unavailable, other, relErr atomic.Int64
	// relUnknown counts releases answered 404 (unknown lease) although
	// they were sent within the lease's TTL of its acquire.
	relUnknown atomic.Int64
	lastErr    atomic.Value

	mu      sync.Mutex
	latency []time.Duration // of the grants: acquire sent to answered
	reasons map[string]int  // refusals and errors by message, digits masked
}

var digits = regexp.MustCompile(`[0-9]+`)

func (s *contendStats) refused(err error) {
	msg := digits.ReplaceAllString(err.Error(), "N")
	if i := strings.IndexAny(msg, "(;"); i > 0 {
		msg = msg[:i]
	}
	s.mu.Lock()
	if s.reasons == nil {
		s.reasons = map[string]int{}
	}
	s.reasons[msg]++
	s.mu.Unlock()
}

// topReasons returns the most frequent refusals, most frequent first.
func (s *contendStats) topReasons(n int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	type r struct {
		msg string
		n   int
	}
	var rs []r
	for m, c := range s.reasons {
		rs = append(rs, r{m, c})
	}
	slices.SortFunc(rs, func(a, b r) int { return b.n - a.n })
	var b strings.Builder
	for i, x := range rs {
		if i == n {
			break
		}
		fmt.Fprintf(&b, "\n  %6d  %s", x.n, x.msg)
	}
	return b.String()
}

func (s *contendStats) String() string {
	s.mu.Lock()
	lat := slices.Clone(s.latency)
	s.mu.Unlock()
	slices.Sort(lat)
	q := func(f float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[int(f*float64(len(lat)-1))].Round(10 * time.Microsecond)
	}
	return fmt.Sprintf("%d granted (acquire latency p50 %v, p99 %v, max %v), %d still held after the wait, %d unavailable, %d other errors, %d failed releases (%d unknown within the TTL); last error: %v",
		s.granted.Load(), q(0.5), q(0.99), q(1), s.held.Load(), s.unavailable.Load(), s.other.Load(), s.relErr.Load(), s.relUnknown.Load(), s.lastErr.Load())
}

// contend runs clients goroutines that each, up to perClient times and
// until stop says so, acquire a random one of keys lock keys through a
// random peer (waiting up to 2 s), hold it 1-4 ms and release it through
// another random peer.
func (lc *lockCluster) contend(phase string, clients, keys, perClient int, seed uint64, stop func() bool) (*contendStats, *sync.WaitGroup) {
	const ttl = 2 * time.Second
	st := &contendStats{}
	var wg sync.WaitGroup
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), seed))
			holder := fmt.Sprintf("%s-%d", phase, w)
			for i := 0; i < perClient && !stop(); i++ {
				ps := lc.up()
				key := fmt.Sprintf("e2e-lock-%d", rng.IntN(keys))
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				g, err := lc.acquire(ctx, phase, ps[rng.IntN(len(ps))], key,
					client.LockOptions{TTL: ttl, Wait: 2 * time.Second, Holder: holder})
				switch {
				case err == nil:
					st.granted.Add(1)
					st.mu.Lock()
					st.latency = append(st.latency, g.answered.Sub(g.sent))
					st.mu.Unlock()
					time.Sleep(time.Duration(1+rng.IntN(4)) * time.Millisecond)
					sent := time.Now()
					if err := lc.release(ctx, ps[rng.IntN(len(ps))], g); err != nil {
						st.relErr.Add(1)
						st.lastErr.Store(err.Error())
						if errors.Is(err, client.ErrUnknownLease) && sent.Before(g.sent.Add(ttl)) {
							st.relUnknown.Add(1)
							st.lastErr.Store(fmt.Sprintf("release of %q token %d sent %v after its acquire, within its TTL: %v", key, g.token, sent.Sub(g.sent), err))
						}
					}
				case errors.Is(err, client.ErrHeld):
					st.held.Add(1)
				case errors.Is(err, client.ErrUnavailable):
					st.unavailable.Add(1)
					st.lastErr.Store(err.Error())
				default:
					st.other.Add(1)
					st.lastErr.Store(err.Error())
				}
				cancel()
				if err != nil {
					st.refused(err)
					time.Sleep(20 * time.Millisecond) // a peer down or the key failing over
				}
			}
		}()
	}
	return st, &wg
}

// testContention: 50 clients contend on 20 keys through random peers.
func (lc *lockCluster) testContention(t *testing.T) {
	const (
		clients   = 50
		perClient = 120
	)
	stopAt := time.Now().Add(10 * time.Second)
	st, wg := lc.contend("contention", clients, 20, perClient, 6, func() bool { return time.Now().After(stopAt) })
	wg.Wait()
	t.Logf("contention: %v", st)
	if st.granted.Load() < clients*perClient/4 {
		t.Errorf("only %d grants of %d attempts", st.granted.Load(), clients*perClient)
	}
	if n := st.relUnknown.Load(); n > 0 {
		t.Errorf("%d releases sent within their lease's TTL found the lease unknown: %v", n, st.lastErr.Load())
	}
}

// heldKeyOwner takes a self-renewing lock on key through a peer that is not
// the key's owner and returns it and its owner, as the lock route reports.
func (lc *lockCluster) heldKeyOwner(t *testing.T, phase, key string) (*heldLock, *peerProc) {
	t.Helper()
	ownerName, err := lc.owner(lc.up()[0], key)
	if err != nil {
		t.Fatal(err)
	}
	owner := lc.peer(ownerName)
	via := lc.up(owner)[0]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var hl *heldLock
	waitUntil(t, 15*time.Second, "a lock on "+key, func() error {
		hl, err = lc.lock(ctx, phase, via, key, client.LockOptions{TTL: e2eMaxTTL, Holder: phase})
		return err
	})
	info, err := lc.client(via).LockInfo(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if !info.Held || info.Token != hl.h.Token() || info.Owner != ownerName || hl.h.Owner() != ownerName {
		t.Fatalf("%q: info %+v, lease owner %s; want held with token %d by %s", key, info, hl.h.Owner(), hl.h.Token(), ownerName)
	}
	// Let it renew at least once, through the owner.
	time.Sleep(hl.h.TTL() / 2)
	if err := hl.h.Err(); err != nil {
		t.Fatalf("%q: lock lost before the kill: %v", key, err)
	}
	return hl, owner
}

// afterOldLease checks that g was granted after old's lease could have
// ended and with a larger token, and returns how long after kill it came.
func (lc *lockCluster) afterOldLease(t *testing.T, old *heldLock, g *recordedGrant, kill time.Time) time.Duration {
	t.Helper()
	lc.lost(old)
	deadline := old.h.Deadline()
	if g.answered.Before(deadline) {
		t.Errorf("SAFETY: %q granted (token %d) %v after the kill, %v before the old lease (token %d) could end by its holder's count (last renewal sent %v before the kill + TTL %v)",
			g.key, g.token, g.answered.Sub(kill), deadline.Sub(g.answered), old.h.Token(), kill.Sub(deadline.Add(-old.h.TTL())), old.h.TTL())
	}
	if g.token <= old.h.Token() {
		t.Errorf("SAFETY: %q: token %d after the kill, not above the old lease's %d", g.key, g.token, old.h.Token())
	}
	t.Logf("%q: old lease token %d ran to %v after the kill; new grant token %d (epoch %d, seq %d) %v after the kill",
		g.key, old.h.Token(), deadline.Sub(kill).Round(time.Millisecond), g.token, g.token>>32, g.token&(1<<32-1), g.answered.Sub(kill).Round(time.Millisecond))
	return g.answered.Sub(kill)
}

// testKillOwner: kill -9 the owner of a held key, three times, a different
// owner each time; the key is granted again through another peer only
// after the old lease could have ended, with a larger token, within
// lock-delay + failure detection + slack.
func (lc *lockCluster) testKillOwner(t *testing.T) {
	const kills = 3
	var killed []string
	var took []time.Duration
	for i := range kills {
		// A key whose owner was not killed yet.
		key := ""
		for j := 0; key == ""; j++ {
			k := fmt.Sprintf("e2e-kill-%d-%d", i, j)
			o, err := lc.owner(lc.up()[0], k)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(killed, o) {
				key = k
				killed = append(killed, o)
			}
		}
		took = append(took, lc.killOwner(t, key))
	}
	slices.Sort(took)
	t.Logf("KILL -9 -> GRANT over %d kills: min %v, median %v, max %v", kills,
		took[0].Round(time.Millisecond), took[kills/2].Round(time.Millisecond), took[kills-1].Round(time.Millisecond))
}

// killOwner takes a lock on key, kills its owner, waits for the next grant
// and checks it, restarts the owner, and returns the time from the kill to
// the grant.
func (lc *lockCluster) killOwner(t *testing.T, key string) time.Duration {
	old, owner := lc.heldKeyOwner(t, "kill-owner", key)
	lc.setDown(owner, true)
	watcher := lc.up()[0]
	owner.kill()
	kill := time.Now()
	// When the failure is detected: the owner drops out of a survivor's ring.
	detected := make(chan time.Duration, 1)
	go func() {
		for time.Since(kill) < 30*time.Second {
			var st struct {
				RingMembers int `json:"ring_members"`
			}
			if watcher.getJSON("/v1/status", &st) == nil && st.RingMembers == len(lc.up()) {
				detected <- time.Since(kill)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		detected <- -1
	}()
	g := lc.grantUntil(t, "kill-owner", key, time.Second, e2eLockDelay+e2eFailureDetection+5*time.Second, owner)
	took := lc.afterOldLease(t, old, g, kill)
	fd := <-detected
	t.Logf("KILL -9 -> GRANT: %v (owner %s killed; %s dropped it from its ring after %v; lock-delay %v)",
		took.Round(time.Millisecond), owner.name, watcher.name, fd.Round(time.Millisecond), e2eLockDelay)
	if fd > 0 && took > e2eLockDelay+fd+2*time.Second {
		t.Errorf("%q granted %v after its owner's kill: more than lock-delay %v + failure detection %v + 2s", key, took, e2eLockDelay, fd)
	}
	lc.release(context.Background(), lc.peer(g.peer), g)

	// Back with its data dir, for the next cases.
	owner.start(lc.t, e2eLockArgs...)
	waitUntil(t, 30*time.Second, owner.name+" back in every ring", func() error {
		ps := lc.up(owner)
		return agree(append(ps, owner), names(append(ps, owner), "alive"))
	})
	lc.setDown(owner, false)
	return took
}

// testKillRestartOwner: kill -9 the owner of a held key and restart it at
// once with its data dir: no grant while the first lease lives, then one
// with a larger token.
func (lc *lockCluster) testKillRestartOwner(t *testing.T) {
	const key = "e2e-restart"
	old, owner := lc.heldKeyOwner(t, "kill-restart", key)
	owner.kill()
	kill := time.Now()
	owner.start(lc.t, e2eLockArgs...)
	t.Logf("%s restarted %v after its kill", owner.name, time.Since(kill).Round(time.Millisecond))
	g := lc.grantUntil(t, "kill-restart", key, time.Second, e2eLockDelay+e2eFailureDetection+5*time.Second)
	took := lc.afterOldLease(t, old, g, kill)
	t.Logf("KILL -9 + RESTART -> GRANT: %v (owner %s; granted by %s)", took.Round(time.Millisecond), owner.name, g.owner)
	lc.release(context.Background(), lc.peer(g.peer), g)
	ps := lc.up()
	waitUntil(t, 30*time.Second, "5 alive everywhere", func() error { return agree(ps, names(ps, "alive")) })
}

// testHandoff: a 6th peer joins, then another leaves (SIGTERM): held leases
// on keys that move stay renewable with their token, and after a release
// the key is granted again at once with a larger token.
func (lc *lockCluster) testHandoff(t *testing.T) {
	const nkeys = 40
	ttl := 2 * time.Second
	leaver := lc.up()[1]
	holders := lc.up(leaver)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	held := map[string]*heldLock{}
	keys := make([]string, nkeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("e2e-move-%d", i)
		var err error
		p := holders[i%len(holders)]
		waitUntil(t, 10*time.Second, "a lock on "+keys[i], func() error {
			held[keys[i]], err = lc.lock(ctx, "handoff", p, keys[i], client.LockOptions{TTL: ttl, Holder: "move-" + p.name})
			return err
		})
	}
	defer func() {
		for _, hl := range held {
			lc.unlock(hl)
		}
	}()
	owners := func() map[string]string {
		m := map[string]string{}
		for _, k := range keys {
			o, err := lc.owner(holders[0], k)
			if err != nil {
				t.Fatal(err)
			}
			m[k] = o
		}
		return m
	}
	// checkMoved checks the held keys whose owner changed: still held
	// under their lease and token by the new owner, renewable; then
	// released and granted again at once with a larger token.
	checkMoved := func(what string, before, after map[string]string) {
		t.Helper()
		var moved []string
		for _, k := range keys {
			if held[k] != nil && before[k] != after[k] {
				moved = append(moved, k)
			}
		}
		t.Logf("%s: %d of %d held keys moved", what, len(moved), len(held))
		if len(moved) == 0 {
			t.Errorf("%s moved none of the %d held keys", what, len(held))
		}
		// Seen failing on the leave in 2 runs of 7: the new owner handed a
		// key it had just adopted from the leaving peer back to it before
		// it saw the leave (handOff does not look at claim.adopted), the
		// leaving peer redirected every request for it, and a renewal was
		// answered 404 before the key came back.
		for k, hl := range held {
			if err := hl.h.Err(); err != nil {
				t.Errorf("%s: the held lock on %q (owner %s, now %s) was lost: %v", what, k, before[k], after[k], err)
			}
		}
		var regrant []time.Duration
		for _, k := range moved {
			hl := held[k]
			waitUntil(t, 10*time.Second, k+" served by its new owner "+after[k], func() error {
				info, err := lc.client(hl.peer).LockInfo(ctx, k)
				if err != nil {
					return err
				}
				if info.Owner != after[k] || !info.Held || info.Token != hl.h.Token() {
					return fmt.Errorf("%+v; want held by token %d at %s", info, hl.h.Token(), after[k])
				}
				return nil
			})
			sent := time.Now()
			l, err := lc.client(hl.peer).Renew(ctx, k, hl.h.Lease(), ttl)
			if err != nil {
				t.Errorf("%s: renewing %q (moved %s -> %s): %v", what, k, before[k], after[k], err)
			} else {
				lc.rec.extend(hl.g, sent.Add(l.TTL()))
				if l.Token != hl.h.Token() || l.Lease != hl.h.Lease() || l.Owner != after[k] {
					t.Errorf("%s: renewing %q: %+v; want token %d lease %s owner %s", what, k, l, hl.h.Token(), hl.h.Lease(), after[k])
				}
			}
			if err := hl.h.Err(); err != nil {
				t.Errorf("%s: the held lock on %q was lost after the move: %v", what, k, err)
			}
			released := time.Now()
			if err := lc.unlock(hl); err != nil {
				t.Errorf("%s: unlock %q: %v", what, k, err)
			}
			delete(held, k)
			ps := lc.up()
			g, err := lc.acquire(ctx, "handoff-regrant", ps[rand.IntN(len(ps))], k, client.LockOptions{TTL: ttl, Holder: "regrant"})
			if err != nil {
				t.Errorf("%s: %q not granted at once after its release: %v", what, k, err)
				continue
			}
			took := g.answered.Sub(released)
			regrant = append(regrant, took)
			if took > e2eLockDelay/2 {
				t.Errorf("%s: %q granted %v after its release, not at once (lock-delay %v)", what, k, took, e2eLockDelay)
			}
			if g.token <= hl.h.Token() || g.owner != after[k] {
				t.Errorf("%s: %q regranted with token %d by %s; want above %d by %s", what, k, g.token, g.owner, hl.h.Token(), after[k])
			}
			lc.release(ctx, lc.peer(g.peer), g)
		}
		slices.Sort(regrant)
		if len(regrant) > 0 {
			t.Logf("%s: release -> grant of a moved key: min %v, median %v, max %v", what,
				regrant[0].Round(time.Microsecond), regrant[len(regrant)/2].Round(time.Microsecond), regrant[len(regrant)-1].Round(time.Microsecond))
		}
	}

	before := owners()
	n6 := newPeer(lc.t, "n6")
	joined := time.Now()
	n6.start(lc.t, append([]string{"--join", lc.up()[0].gossipAddr()}, e2eLockArgs...)...)
	lc.mu.Lock()
	lc.ps = append(lc.ps, n6)
	lc.mu.Unlock()
	waitUntil(t, 30*time.Second, "6 alive everywhere", func() error { return agree(lc.up(), names(lc.up(), "alive")) })
	t.Logf("n6 in every ring %v after its start", time.Since(joined).Round(time.Millisecond))
	after := owners()
	checkMoved("join of n6", before, after)

	before = after
	lc.setDown(leaver, true)
	code, took := leaver.stop(t, 15*time.Second)
	if code != 0 {
		t.Errorf("%s exited %d after SIGTERM", leaver.name, code)
	}
	t.Logf("%s left and exited in %v", leaver.name, took.Round(time.Millisecond))
	lc.mu.Lock()
	lc.ps = slices.DeleteFunc(lc.ps, func(p *peerProc) bool { return p == leaver })
	lc.mu.Unlock()
	want := names(lc.up(), "alive")
	want[leaver.name] = "left"
	waitUntil(t, 30*time.Second, leaver.name+" left everywhere", func() error { return agreeRing(lc.up(), want, len(lc.up())) })
	after = owners()
	checkMoved("leave of "+leaver.name, before, after)
	for k, hl := range held {
		if err := hl.h.Err(); err != nil {
			t.Errorf("the held lock on %q was lost: %v", k, err)
		}
	}
}

// testRestartAll: kill -9 every peer and start them again with their data
// dirs: every key is granted again with a token above every earlier one.
func (lc *lockCluster) testRestartAll(t *testing.T) {
	ps := lc.up()
	before := lc.rec.maxTokens()
	for _, p := range ps {
		p.kill()
	}
	killed := time.Now()
	ps[0].start(lc.t, e2eLockArgs...)
	waitUntil(t, 10*time.Second, ps[0].name+"'s HTTP API", func() error {
		var h map[string]string
		return ps[0].getJSON("/v1/health", &h)
	})
	for _, p := range ps[1:] {
		p.start(lc.t, append([]string{"--join", ps[0].gossipAddr()}, e2eLockArgs...)...)
	}
	waitUntil(t, 30*time.Second, "all back in every ring", func() error { return agree(ps, names(ps, "alive")) })
	lc.waitLockable(t, ps[0], "e2e-ready")
	t.Logf("every peer killed and restarted: granting again %v after the kill", time.Since(killed).Round(time.Millisecond))
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range before {
			if !yield(k) {
				return
			}
		}
	})
	for _, k := range keys {
		g := lc.grantUntil(t, "restart-all", k, time.Second, 10*time.Second)
		if g.token <= before[k] {
			t.Errorf("SAFETY: %q granted token %d after every peer restarted, not above the %d granted before", k, g.token, before[k])
		}
		lc.release(context.Background(), lc.peer(g.peer), g)
	}
	t.Logf("%d keys granted again, each with a larger token", len(keys))
}

// testLockCommand: peer lock KEY -- CMD against the cluster.
func (lc *lockCluster) testLockCommand(t *testing.T) {
	p := lc.up()[0]
	const key = "e2e-lock-0" // granted before, so its token must grow
	before := lc.rec.maxTokens()[key]
	out := filepath.Join(t.TempDir(), "token")
	var stdout, stderr strings.Builder
	code := run([]string{"lock", "--http-addr", p.httpAddr(), "--ttl", "2s", "--grace", "500ms", "--wait", "10s", key, "--",
		"sh", "-c", `echo "$RINGLEADER_FENCING_TOKEN" > "$0"; exit 7`, out}, &stdout, &stderr)
	if code != 7 {
		t.Errorf("peer lock -- sh: exit %d, want 7; stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || tok <= before || !regexp.MustCompile(`^[0-9]+\n$`).Match(b) {
		t.Errorf("the command saw RINGLEADER_FENCING_TOKEN %q (%v); want a token above %d", b, err, before)
	}
	info, err := lc.client(p).LockInfo(context.Background(), key)
	if err != nil || info.Held {
		t.Errorf("after peer lock: %+v, %v; want the lock released", info, err)
	}
	t.Logf("peer lock ran the command with token %d and exited %d", tok, code)
}
