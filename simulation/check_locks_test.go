package simulation

import (
	"context"
	"github.com/ringleader/ringleader/lockmgr"
	"slices"
	"strings"
	"testing"
	"time"
)

// lockHistory builds a hold's requests: an acquire answered at granted
// (sent at sent) with token and ttl, then a release sent at release
// (acknowledged), unless release is 0.
func lockHold(client, hold int, key, owner string, token int64, sent, granted, ttl, release float64) []LockOp {
	ops := []LockOp{{Client: client, Hold: hold, Op: "acquire", Key: key, Peer: "n1", Start: sent, End: granted,
		Answer: LockOK, Token: token, Lease: "lease" + owner, Owner: owner, TTL: ttl}}
	if release > 0 {
		ops = append(ops, LockOp{Client: client, Hold: hold, Op: "release", Key: key, Peer: "n2", Start: release, End: release + 0.01, Answer: LockOK})
	}
	return ops
}

func kinds(vs []Violation) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.Kind+" "+v.Key+" "+v.Peer)
	}
	return out
}

// A checker that cannot fail is worthless: each lock checker is fed a
// history with one planted violation, and a near miss that is not one.
func TestCheckLocksCatchesPlantedViolations(t *testing.T) {
	three := []Topology{{From: 0, To: 100, Voters: []string{"n1", "n2", "n3"}, Running: []string{"n1", "n2", "n3"}}}
	tests := []struct {
		name string
		ops  [][]LockOp
		topo []Topology
		want []string
	}{
		{name: "one after the other", ops: [][]LockOp{
			lockHold(0, 1, "a", "n1", 10, 0, 0.1, 2, 1.0),
			lockHold(1, 2, "a", "n1", 11, 0.5, 1.05, 2, 1.5), // granted while the release was in flight
		}},
		{name: "overlap", ops: [][]LockOp{
			lockHold(0, 1, "a", "n1", 10, 0, 0.1, 2, 1.0),
			lockHold(1, 2, "a", "n2", 11, 0.5, 0.9, 2, 1.5), // answered before the first release was sent
		}, want: []string{"overlap a "}},
		{name: "overlap with an unreleased lease still within its ttl", ops: [][]LockOp{
			lockHold(0, 1, "a", "n1", 10, 0, 0.1, 2, 0), // live until about 2.0
			lockHold(1, 2, "a", "n2", 11, 1.0, 1.2, 2, 1.5),
		}, want: []string{"overlap a "}},
		{name: "expired lease then another", ops: [][]LockOp{
			lockHold(0, 1, "a", "n1", 10, 0, 0.1, 2, 0), // certainly live only until 2*(1-drift)
			lockHold(1, 2, "a", "n2", 11, 1.9, 1.97, 2, 2.5),
		}},
		{name: "a renew extends the certain part", ops: [][]LockOp{
			append(lockHold(0, 1, "a", "n1", 10, 0, 0.1, 2, 0),
				LockOp{Client: 0, Hold: 1, Op: "renew", Key: "a", Start: 0.7, End: 0.8, Answer: LockOK, Token: 10, TTL: 2}),
			lockHold(1, 2, "a", "n2", 11, 2.0, 2.1, 2, 2.5), // the renewed lease lives to about 2.7
		}, want: []string{"overlap a "}},
		{name: "token regression", ops: [][]LockOp{
			lockHold(0, 1, "a", "n1", 10, 0, 0.1, 2, 0.5),
			lockHold(1, 2, "a", "n2", 9, 0.6, 0.7, 2, 0.9),
		}, want: []string{"token-order a "}},
		{name: "concurrent grants may come in either token order", ops: [][]LockOp{
			lockHold(0, 1, "a", "n1", 11, 0, 0.1, 2, 0.5),
			lockHold(1, 2, "a", "n2", 10, 0.05, 0.6, 2, 0.9), // sent before the other was answered
		}},
		{name: "token reused", ops: [][]LockOp{
			lockHold(0, 1, "a", "n1", 10, 0, 0.1, 2, 0.5),
			lockHold(1, 2, "b", "n1", 10, 0, 0.1, 2, 0.5), // another key: fine
			lockHold(1, 3, "a", "n2", 10, 0.05, 0.6, 2, 0.9),
		}, want: []string{"token-reused a "}},
		{name: "renew with another token", ops: [][]LockOp{
			append(lockHold(0, 1, "a", "n1", 10, 0, 0.1, 2, 0),
				LockOp{Client: 0, Hold: 1, Op: "renew", Key: "a", Start: 0.7, End: 0.8, Answer: LockOK, Token: 12, TTL: 2}),
		}, want: []string{"token-changed a "}},
		{name: "minority grant", topo: []Topology{
			{From: 0, To: 1, Voters: []string{"n1", "n2", "n3"}, Running: []string{"n1", "n2", "n3"}},
			{From: 1, To: 10, Voters: []string{"n1", "n2", "n3"}, Running: []string{"n1", "n2", "n3"}, Groups: [][]string{{"n1"}, {"n2", "n3"}}},
			{From: 10, To: 20, Voters: []string{"n1", "n2", "n3"}, Running: []string{"n1", "n2", "n3"}},
		}, ops: [][]LockOp{
			lockHold(0, 1, "a", "n1", 10, 2.0, 2.1, 1, 2.5), // within its promises: fine
			lockHold(0, 2, "a", "n1", 11, 5.0, 5.1, 1, 5.5), // promises lapsed at 1 + 2.5·1.04
			lockHold(1, 3, "b", "n2", 20, 5.0, 5.1, 1, 5.5), // the majority side: fine
			lockHold(1, 4, "b", "n1", 21, 9.5, 10.5, 1, 11), // answered after the heal: fine
		}, want: []string{"minority-grant a n1"}},
		{name: "bridge: the side seeing only the bridge is a minority", topo: []Topology{
			{From: 0, To: 10, Voters: []string{"n1", "n2", "n3", "n4"}, Running: []string{"n1", "n2", "n3", "n4"},
				Cuts: [][2]string{{"n1", "n4"}, {"n4", "n1"}, {"n2", "n4"}, {"n4", "n2"}}},
		}, ops: [][]LockOp{
			lockHold(0, 1, "a", "n1", 10, 5, 5.1, 1, 5.5), // n1 reaches n1, n2, n3: 3 of 4
			lockHold(0, 2, "b", "n4", 10, 5, 5.1, 1, 5.5), // n4 reaches n3, n4: 2 of 4
		}, want: []string{"minority-grant b n4"}},
		{name: "crashed voters count but do not promise", topo: []Topology{
			{From: 0, To: 10, Voters: []string{"n1", "n2", "n3"}, Running: []string{"n1"}},
		}, ops: [][]LockOp{
			lockHold(0, 1, "a", "n1", 10, 5, 5.1, 1, 5.5),
		}, want: []string{"minority-grant a n1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			topo := tc.topo
			if topo == nil {
				topo = three
			}
			ops := slices.Concat(tc.ops...)
			for i := range ops {
				ops[i].ID = i + 1
			}
			lc, vs := CheckLocks(ops, topo, nil, 2.5)
			if got := kinds(vs); strings.Join(got, "; ") != strings.Join(tc.want, "; ") {
				t.Errorf("violations %q, want %q", got, tc.want)
				for _, v := range vs {
					t.Log(v)
				}
			}
			if len(lc.Holds) != len(tc.ops) {
				t.Errorf("%d holds, want %d", len(lc.Holds), len(tc.ops))
			}
		})
	}
}

func TestLockWindowsAndAnswers(t *testing.T) {
	ops := slices.Concat(
		lockHold(0, 1, "a", "n1", 10, 0, 0.1, 2, 0.5),
		[]LockOp{
			{Client: 1, Hold: 2, Op: "acquire", Key: "a", Start: 1.1, End: 1.2, Answer: LockNoQuorum},
			{Client: 1, Hold: 3, Op: "acquire", Key: "a", Start: 1.3, End: 1.4, Answer: LockUnavailable},
		},
		lockHold(1, 4, "a", "n2", (2<<lockmgr.SequenceBits)+1, 2.0, 3.5, 2, 4),
		lockHold(1, 5, "a", "n2", (2<<lockmgr.SequenceBits)+2, 4.1, 4.2, 2, 4.5),
	)
	lc, vs := CheckLocks(ops, nil, []LockCrash{{Peer: "n1", At: 1.0, Keys: []string{"a", "b"}}}, 2.5)
	if len(vs) != 0 {
		t.Fatalf("violations %v", vs)
	}
	if lc.Answers["acquire"][LockOK] != 3 || lc.Answers["acquire"][LockNoQuorum] != 1 || lc.Answers["acquire"][LockUnavailable] != 1 || lc.Answers["release"][LockOK] != 3 {
		t.Errorf("answers %v", lc.Answers)
	}
	if len(lc.Windows) != 2 || lc.Windows[0].Window != 2.5 || lc.Windows[0].Owner != "n2" || lc.Windows[1].Window != -1 {
		t.Errorf("windows %+v", lc.Windows)
	}
}

// The lock checkers are wired into a run: a grant planted twice in the
// history (as if two clients had got the same lease) is caught as an
// overlap and a reused token.
func TestRunCatchesPlantedLockViolation(t *testing.T) {
	t.Parallel()
	sc, err := Parse("planted-lock", "start 3\nwait converged\nwait locks\nrun workload 2s\n", 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := runWith(ctx, testConfig(11), sc, func(r *run) {
		r.h.mu.Lock()
		var g *LockOp
		for i := range r.h.locks {
			if op := r.h.locks[i]; op.Op == "acquire" && op.Answer == LockOK {
				g = &op
				break
			}
		}
		r.h.mu.Unlock()
		if g == nil {
			t.Error("no lock was granted")
			return
		}
		twin := *g
		twin.Client, twin.Hold = 99, 1<<30
		r.h.addLockOp(twin)
	})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(kinds(rep.Violations), "; ")
	if !strings.Contains(got, "overlap") || !strings.Contains(got, "token-reused") {
		t.Fatalf("violations %q, want an overlap and a reused token", got)
	}
}
