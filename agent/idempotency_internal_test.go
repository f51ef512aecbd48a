package agent

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ringleader/ringleader/ring"
	"github.com/vmihailenco/msgpack/v5"
)

// startOneForIdem starts a one-peer agent for calling the idempotency
// handlers directly.
func startOneForIdem(tb testing.TB) *Agent {
	tb.Helper()
	net, as, _ := startInternalCluster(tb, 1, nil)
	tb.Cleanup(func() {
		as[0].Shutdown()
		net.Close()
	})
	return as[0]
}

// A copy of another peer's idempotency records is validated before any
// is kept: a bad one refuses the call and keeps nothing; a good one is
// kept, and a key that has a record keeps its first.
func TestIdemPutValidatesAndKeepsTheFirst(t *testing.T) {
	a := startOneForIdem(t)
	ctx := context.Background()
	good := idemPut{Key: "order-1", Record: idemRecord{Key: "paid", Delta: 5, Value: 5}, TTLMillis: 60_000}
	for _, tc := range []struct {
		name string
		req  idemPutRequest
		want string
	}{
		{"empty idempotency key", idemPutRequest{Records: []idemPut{good, {Key: "", Record: good.Record, TTLMillis: 1}}}, "record 1"},
		{"bad counter key", idemPutRequest{Records: []idemPut{good, {Key: "x", Record: idemRecord{Key: "", Delta: 1}, TTLMillis: 1}}}, "record 1"},
		{"no time left", idemPutRequest{Records: []idemPut{good, {Key: "x", Record: good.Record, TTLMillis: 0}}}, "want more than 0"},
		{"too many", idemPutRequest{Records: make([]idemPut, MaxBatchItems+1)}, "at most"},
	} {
		if _, err := a.handleIdemPut(ctx, &tc.req); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
		if got, _ := a.handleIdemGet(ctx, &idemGetRequest{Key: good.Key}); got.Found {
			t.Fatalf("%s: a record was kept from a refused call", tc.name)
		}
	}
	if n := a.ctr.idemCount.Load(); n != 0 {
		t.Fatalf("%d records counted after refusals", n)
	}
	resp, err := a.handleIdemPut(ctx, &idemPutRequest{Records: []idemPut{good}})
	if err != nil || resp.Stored != 1 {
		t.Fatalf("good copy: %+v, %v", resp, err)
	}
	other := good
	other.Record.Value = 99
	if resp, err := a.handleIdemPut(ctx, &idemPutRequest{Records: []idemPut{other}}); err != nil || resp.Stored != 0 {
		t.Fatalf("second copy of the key: %+v, %v; want kept the first", resp, err)
	}
	got, err := a.handleIdemGet(ctx, &idemGetRequest{Key: good.Key})
	if err != nil || !got.Found || got.Record != good.Record {
		t.Fatalf("record: %+v, %v; want %+v", got, err, good.Record)
	}
	if n := a.ctr.idemCount.Load(); n != 1 {
		t.Fatalf("%d records counted, want 1", n)
	}
}

// FuzzIdemPut feeds arbitrary msgpack to the copy handler as peer RPC
// would decode it: it must not panic, and keeps records only when it
// says so.
func FuzzIdemPut(f *testing.F) {
	seed, _ := msgpack.Marshal(&idemPutRequest{Records: []idemPut{{Key: "k", Record: idemRecord{Key: "c", Delta: 1, Value: 1}, TTLMillis: 1000}}})
	f.Add(seed)
	f.Add([]byte{0x80})
	f.Add([]byte{0x81, 0xa7, 'r', 'e', 'c', 'o', 'r', 'd', 's', 0x91, 0x80})
	a := startOneForIdem(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		var req idemPutRequest
		if msgpack.Unmarshal(b, &req) != nil {
			return
		}
		before := a.ctr.idemCount.Load()
		resp, err := a.handleIdemPut(context.Background(), &req)
		after := a.ctr.idemCount.Load()
		switch {
		case err != nil && after != before:
			t.Fatalf("refused (%v) but the count went from %d to %d", err, before, after)
		case err == nil && after-before != int64(resp.Stored):
			t.Fatalf("stored %d but the count went from %d to %d", resp.Stored, before, after)
		}
	})
}

// holdsIdem reports whether a holds a live record of idempotency key k.
func holdsIdem(a *Agent, k string) bool {
	_, ok, err := a.ctr.db.GetIdempotency(k, a.clock.Now())
	return err == nil && ok
}

// byName finds the agent named name among as.
func byName(as []*Agent, name string) *Agent {
	for _, a := range as {
		if a.cfg.NodeName == name {
			return a
		}
	}
	return nil
}

// Idempotency records follow their keys when peers join or leave: a join
// of as many peers as hold a record (3) leaves it on its new holders, and
// so does a graceful leave of all 3 at once. Before, each applied the
// retries of those keys a second time.
func TestIdempotencyRecordsFollowJoinsAndLeaves(t *testing.T) {
	net, as, ips := startInternalCluster(t, 3, nil)
	defer net.Close()
	defer func() {
		for _, a := range as {
			a.Shutdown()
		}
	}()
	waitBench(t, 20*time.Second, "3 alive, ready", func() bool {
		return allSeeAlive(as, 3) && as[0].ctr.id.Load() != nil && as[1].ctr.id.Load() != nil && as[2].ctr.id.Load() != nil
	})
	ctx := context.Background()
	first := map[string]int64{}
	for i := range 40 {
		k := fmt.Sprintf("join-%d", i)
		res, err := as[0].Add(ctx, []CounterItem{{Key: "moved", Delta: 1, IdempotencyKey: k}}, Local)
		if err != nil {
			t.Fatal(err)
		}
		first[k] = res[0].Value
	}
	for i := 3; i < 6; i++ {
		a, ip := startInternalAgent(t, net, i, ips, nil)
		as, ips = append(as, a), append(ips, ip)
	}
	waitBench(t, 30*time.Second, "6 alive in every ring", func() bool {
		if !allSeeAlive(as, 6) {
			return false
		}
		for _, a := range as {
			if a.view.load().Ring.Len() != 6 || a.ctr.id.Load() == nil {
				return false
			}
		}
		return true
	})
	// Every peer of each key's new preference list holds its record.
	waitBench(t, 20*time.Second, "records on their new holders", func() bool {
		for k := range first {
			pref, _ := as[0].view.load().Ring.Preference(k, idemCopies)
			for _, name := range pref {
				if !holdsIdem(byName(as, name), k) {
					return false
				}
			}
		}
		return true
	})
	checkReplays(t, as[5], "moved", first, "after the joins")

	// Keys held only by the three that joined, then all three leave.
	newcomers := map[string]bool{"n4": true, "n5": true, "n6": true}
	var theirs []string
	for i := 0; len(theirs) < 4 && i < 100000; i++ {
		k := fmt.Sprintf("leave-%d", i)
		pref, _ := as[0].view.load().Ring.Preference(k, idemCopies)
		if !slices.ContainsFunc(pref, func(n string) bool { return !newcomers[n] }) {
			theirs = append(theirs, k)
		}
	}
	firstLeave := map[string]int64{}
	for _, k := range theirs {
		res, err := as[0].Add(ctx, []CounterItem{{Key: "left", Delta: 1, IdempotencyKey: k}}, Local)
		if err != nil {
			t.Fatal(err)
		}
		firstLeave[k] = res[0].Value
	}
	// All three leave at once: each hands its records to the first three
	// of the list without it, which names the other two leavers, so only
	// the one remaining peer on each list gets them from the hand-off;
	// it copies them on to the others once the ring changes.
	errs := make(chan error, 3)
	for _, a := range as[3:] {
		go func() {
			lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			errs <- a.Leave(lctx)
		}()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range as[3:] {
		a.Shutdown()
	}
	as = as[:3]
	waitBench(t, 20*time.Second, "the leavers out of every ring", func() bool {
		for _, r := range as {
			if r.view.load().Ring.Len() != 3 {
				return false
			}
		}
		return true
	})
	waitBench(t, 20*time.Second, "records on all three remaining", func() bool {
		for k := range firstLeave {
			for _, a := range as {
				if !holdsIdem(a, k) {
					return false
				}
			}
		}
		return true
	})
	checkReplays(t, as[1], "left", firstLeave, "after its 3 holders left")
}

// A copy of a record that does not reach a holder is sent again once
// the holder can be reached, with no ring change to trigger it.
func TestFailedIdemCopyIsSentAgain(t *testing.T) {
	net, as, ips := startInternalCluster(t, 3, nil)
	defer net.Close()
	defer func() {
		for _, a := range as {
			a.Shutdown()
		}
	}()
	waitBench(t, 20*time.Second, "3 alive, ready", func() bool {
		return allSeeAlive(as, 3) && as[0].ctr.id.Load() != nil && as[1].ctr.id.Load() != nil && as[2].ctr.id.Load() != nil
	})
	// As the write path does: the record is committed on n1, then copied.
	n1, n3 := as[0], as[2]
	const k = "copy-again"
	rec := idemRecord{Key: "c", Delta: 2, Value: 2}
	raw, err := msgpack.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	b := n1.ctr.db.NewBatch()
	if err := b.PutIdempotency(k, raw, n1.clock.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	b.Close()
	// n1 and n3 lose each other; n2 still reaches both, so each stays
	// alive in the other's ring while their calls fail.
	before := viewsSince(as)
	if err := net.Cut(ips[0], ips[2]); err != nil {
		t.Fatal(err)
	}
	n1.replicateIdem(context.Background(), []idemPut{{Key: k, Record: rec, TTLMillis: time.Minute.Milliseconds()}})
	if !holdsIdem(as[1], k) {
		t.Fatal("n2, reachable, did not get its copy")
	}
	if holdsIdem(n3, k) {
		t.Fatal("n3 got a copy through a cut link")
	}
	// The first retry (after 1 s) fails too; the next comes after 2 s.
	failures := func() float64 { return sumMetric(as[:1], "ringleader_idempotency_copy_failures_total") }
	waitBench(t, 10*time.Second, "a retry that fails", func() bool { return failures() >= 2 })
	if holdsIdem(n3, k) {
		t.Fatal("n3 got a copy through a cut link")
	}
	net.Heal()
	waitBench(t, 20*time.Second, "the copy to reach n3 after the heal", func() bool { return holdsIdem(n3, k) })
	if after := viewsSince(as); !maps.Equal(before, after) {
		t.Fatalf("a peer left a ring and came back (%v, then %v): the copy may have come from that ring change", before, after)
	}
}

// viewsSince gives, for each agent's view of each peer, since when the
// peer has been in it: a peer that left a view and came back has a new
// time.
func viewsSince(as []*Agent) map[string]time.Time {
	m := map[string]time.Time{}
	for _, a := range as {
		for name, t := range a.view.load().since {
			m[a.cfg.NodeName+" sees "+name] = t
		}
	}
	return m
}

// BenchmarkIdemMoveScan: what one pass of moveIdemLoop costs a peer
// holding 1,000,000 idempotency records (the default cap) after a sixth
// peer joined five: every record is looked at and its key's preference
// lists before and after compared, as moveIdemLoop does; the copies to
// the joined peer are left out (it is not reachable here), so this is
// the scan alone.
//
//	go test ./agent -run '^$' -bench BenchmarkIdemMoveScan -benchtime 3x -count 3
func BenchmarkIdemMoveScan(b *testing.B) {
	a := startOneForIdem(b)
	const n = 1_000_000
	raw, err := msgpack.Marshal(idemRecord{Key: "counter-key", Delta: 1, Value: 1})
	if err != nil {
		b.Fatal(err)
	}
	exp := a.clock.Now().Add(time.Hour)
	for i := 0; i < n; {
		batch := a.ctr.db.NewBatch()
		for j := 0; j < 10_000; j, i = j+1, i+1 {
			if err := batch.PutIdempotency(fmt.Sprintf("req-%08d", i), raw, exp); err != nil {
				b.Fatal(err)
			}
		}
		if err := batch.Commit(false); err != nil {
			b.Fatal(err)
		}
		batch.Close()
	}
	var five, six []ring.Member
	for i := range 6 {
		m := ring.Member{Name: fmt.Sprintf("n%d", i+1), Weight: 1}
		six = append(six, m)
		if i < 5 {
			five = append(five, m)
		}
	}
	from, err := ring.New(five, ring.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	to, err := ring.NewFrom(from, six, ring.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	rpc := map[string]string{a.cfg.NodeName: a.cfg.RPCAddr} // n1 only: nothing is sent
	b.ResetTimer()
	moved := 0
	for b.Loop() {
		seen := 0
		moved = 0
		var before []string
		sent, _, err := a.copyIdemRecords(context.Background(), rpc, func(key string) []string {
			seen++
			var pref []string
			pref, before = idemMoveTargets(to, from, nil, key, before)
			moved += len(pref)
			return pref
		})
		if err != nil || sent != 0 || seen != n {
			b.Fatalf("sent %d, saw %d of %d records: %v", sent, seen, n, err)
		}
	}
	b.ReportMetric(float64(moved)/n, "moved/record")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/record")
}

// A copy asked for one peer (a retry, or a starting peer's pull) goes to
// that peer only, not to every holder again; after a ring change, copies
// go to the peers that entered each key's list, and to those asked for.
func TestIdemMoveTargets(t *testing.T) {
	members := func(n int) []ring.Member {
		var ms []ring.Member
		for i := range n {
			ms = append(ms, ring.Member{Name: fmt.Sprintf("n%d", i+1), Weight: 1})
		}
		return ms
	}
	five, err := ring.New(members(5), ring.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	six, err := ring.NewFrom(five, members(6), ring.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	entered, asked := 0, 0
	for i := range 2000 {
		key := fmt.Sprintf("k%d", i)
		now, _ := six.Preference(key, idemCopies)
		was, _ := five.Preference(key, idemCopies)

		got, _ := idemMoveTargets(six, nil, map[string]bool{"n6": true}, key, nil)
		want := slices.DeleteFunc(slices.Clone(now), func(n string) bool { return n != "n6" })
		if !slices.Equal(got, want) {
			t.Fatalf("%s, asked for n6 only: %v, want %v (list %v)", key, got, want, now)
		}
		asked += len(got)

		got, _ = idemMoveTargets(six, five, nil, key, nil)
		want = slices.DeleteFunc(slices.Clone(now), func(n string) bool { return slices.Contains(was, n) })
		if !slices.Equal(got, want) {
			t.Fatalf("%s after n6 joined: %v, want the peers that entered, %v (was %v, now %v)", key, got, want, was, now)
		}
		entered += len(got)

		got, _ = idemMoveTargets(six, five, map[string]bool{now[0]: true}, key, nil)
		if !slices.Contains(got, now[0]) {
			t.Fatalf("%s: %v lacks %s, which was asked for", key, got, now[0])
		}
	}
	if entered == 0 || asked == 0 {
		t.Fatalf("no key's list changed (%d) or named n6 (%d): the test tests nothing", entered, asked)
	}
}

// checkReplays retries +1 on key through a under each idempotency key of
// first, and wants each answered from its record: replayed, with the
// first value.
func checkReplays(t *testing.T, a *Agent, key string, first map[string]int64, when string) {
	t.Helper()
	for k, v := range first {
		res, err := a.Add(context.Background(), []CounterItem{{Key: key, Delta: 1, IdempotencyKey: k}}, Local)
		if err != nil {
			t.Fatal(err)
		}
		if !res[0].Replayed || res[0].Value != v {
			t.Fatalf("retry of %s %s: %+v, first value %d", k, when, res[0], v)
		}
	}
}
