package simulation

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ringleader/ringleader/agent"
)

// A checker that cannot fail is worthless: feed it histories with planted
// violations and see each caught, with its key and amount.
func TestCheckCountersCatchesLostAndDoubled(t *testing.T) {
	ops := []Op{
		{Peer: "n1", Key: "a", Delta: 5, Consistency: "local", Outcome: Acked, End: 1},
		{Peer: "n2", Key: "a", Delta: 3, Consistency: "majority", Outcome: Acked, End: 2},
		{Peer: "n2", Key: "b", Delta: 4, Consistency: "local", Outcome: Acked, End: 2},
		{Peer: "n3", Key: "b", Delta: 2, Consistency: "local", Outcome: Ambiguous, End: 3},
		{Peer: "n3", Key: "b", Delta: 9, Consistency: "local", Outcome: Failed, End: 3},
		{Peer: "n1", Key: "c", Delta: -2, Consistency: "local", Outcome: Acked, End: 3},
	}
	tests := []struct {
		name  string
		final map[string]map[string]int64
		wipes []Wipe
		want  []string // "kind key peer amount" of each violation, in order
	}{
		{name: "exact", final: map[string]map[string]int64{
			"n1": {"a": 8, "b": 4, "c": -2}, "n2": {"a": 8, "b": 4, "c": -2},
		}},
		{name: "ambiguous counted once passes", final: map[string]map[string]int64{
			"n1": {"a": 8, "b": 6, "c": -2}, "n2": {"a": 8, "b": 6, "c": -2},
		}},
		{name: "lost increment", final: map[string]map[string]int64{
			"n1": {"a": 5, "b": 4, "c": -2}, "n2": {"a": 5, "b": 4, "c": -2},
		}, want: []string{"lost a n1 3", "lost a n2 3"}},
		{name: "doubled increment", final: map[string]map[string]int64{
			"n1": {"a": 8, "b": 10, "c": -2}, "n2": {"a": 8, "b": 6, "c": -2},
		}, want: []string{"doubled b n1 4", "diverged b  0"}},
		{name: "doubled decrement and missing key", final: map[string]map[string]int64{
			"n1": {"a": 8, "b": 4, "c": -4}, "n2": {"a": 8, "b": 4},
		}, want: []string{"doubled c n1 2", "lost c n2 2", "diverged c  0"}},
		{name: "wiped peer's local write may be lost", wipes: []Wipe{{Peer: "n1", At: 1.5}}, final: map[string]map[string]int64{
			"n1": {"a": 3, "b": 4, "c": -2}, "n2": {"a": 3, "b": 4, "c": -2},
		}},
		{name: "wipe does not excuse a majority write", wipes: []Wipe{{Peer: "n2", At: 5}}, final: map[string]map[string]int64{
			"n1": {"a": 5, "b": 4, "c": -2}, "n2": {"a": 5, "b": 4, "c": -2},
		}, want: []string{"lost a n1 3", "lost a n2 3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, vs := CheckCounters(ops, tt.wipes, tt.final)
			var got []string
			for _, v := range vs {
				got = append(got, strings.Join([]string{v.Kind, v.Key, v.Peer, strconv.FormatInt(v.Amount, 10)}, " "))
			}
			if strings.Join(got, "; ") != strings.Join(tt.want, "; ") {
				t.Fatalf("violations %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCheckMembership(t *testing.T) {
	running := []string{"n1", "n2", "n3"}
	ok := map[string]PeerView{
		"n1": {Alive: []string{"n1", "n2", "n3"}, Ring: "r1"},
		"n2": {Alive: []string{"n3", "n2", "n1"}, Ring: "r1"},
		"n3": {Alive: []string{"n1", "n2", "n3"}, Ring: "r1"},
	}
	if vs := CheckMembership(ok, running); len(vs) != 0 {
		t.Fatalf("agreeing views: %v", vs)
	}
	bad := map[string]PeerView{
		"n1": {Alive: []string{"n1", "n2"}, Ring: "r2"},
		"n2": {Alive: []string{"n1", "n2", "n3"}, Ring: "r1"},
		"n3": {Alive: []string{"n1", "n2", "n3", "n4"}, Ring: "r1"},
	}
	vs := CheckMembership(bad, running)
	var kinds []string
	for _, v := range vs {
		kinds = append(kinds, v.Kind+":"+v.Peer)
	}
	if strings.Join(kinds, " ") != "members:n1 members:n3 ring:" {
		t.Fatalf("violations %v", vs)
	}
}

// The whole harness can fail: a real run in which a write is applied
// behind the history's back (so the cluster counts 7 that nobody was
// acknowledged) and an acknowledgement is recorded for a write never sent
// (3 the cluster lacks) must report exactly those, on every peer.
func TestRunCatchesPlantedViolations(t *testing.T) {
	sc, err := Parse("planted", "start 3\nwait converged\nrun workload 1s\n", 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := runWith(ctx, testConfig(7), sc, func(r *run) {
		p, _ := r.c.Peer("n1")
		a, _ := p.Agent()
		if _, err := a.Add(ctx, []agent.CounterItem{{Key: KeyPrefix + "k0", Delta: 7}}, agent.Local); err != nil {
			t.Errorf("planting the unrecorded write: %v", err)
		}
		r.h.addOp(Op{Peer: "n2", Key: KeyPrefix + "k1", Delta: 3, Consistency: "local", Outcome: Acked, Start: r.h.now(), End: r.h.now()})
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, v := range rep.Violations {
		got = append(got, strings.Join([]string{v.Kind, v.Key, v.Peer, strconv.FormatInt(v.Amount, 10)}, " "))
	}
	want := []string{
		"doubled sim/k0 n1 7", "doubled sim/k0 n2 7", "doubled sim/k0 n3 7",
		"lost sim/k1 n1 3", "lost sim/k1 n2 3", "lost sim/k1 n3 3",
	}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Fatalf("violations\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if rep.OK() {
		t.Fatal("report says OK")
	}
}

// A write in flight when its peer crashes is ambiguous, whatever the peer
// answered: the answer may have come after the disk was cloned. Here a
// majority write waits on a peer cut off from the others; the peer crashes
// meanwhile and restarts with its disk; the write (synced before the
// majority wait) may count, and the checker allows it.
func TestCrashDuringRequestIsAmbiguous(t *testing.T) {
	sc, err := Parse("inflight", "start 3\nwait converged\npartition n1 | rest\n", 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := runWith(ctx, testConfig(9), sc, func(r *run) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			r.wl.do(0, "n1", KeyPrefix+"k0", 5, agent.Majority)
		}()
		time.Sleep(100 * time.Millisecond) // the write is waiting for a majority
		if err := r.c.Crash("n1"); err != nil {
			t.Error(err)
		}
		<-done
		r.c.Heal()
		if err := r.c.Start(ctx, "n1"); err != nil {
			t.Error(err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Ops) != 1 || rep.Ops[0].Outcome != Ambiguous {
		t.Fatalf("ops %+v, want one ambiguous write", rep.Ops)
	}
	for _, v := range rep.Violations {
		t.Error(v)
	}
}
