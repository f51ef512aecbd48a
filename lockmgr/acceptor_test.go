package lockmgr

import (
	"errors"
	"testing"
	"time"
)

func TestAcceptorPromise(t *testing.T) {
	s := time.Second
	a1 := Owner{"a", 1}
	a2 := Owner{"a", 2}
	b1 := Owner{"b", 1}
	type call struct {
		owner    Owner
		epoch    uint32
		at       time.Duration
		deadline time.Duration
		err      error
		wantDl   time.Duration // deadline in force after an accepted call
	}
	tests := []struct {
		name  string
		calls []call
	}{
		{"first promise", []call{{a1, 1, 0, 10 * s, nil, 10 * s}}},
		{"other owner refused while live", []call{
			{a1, 1, 0, 10 * s, nil, 10 * s},
			{b1, 2, 5 * s, 15 * s, ErrPromised, 0},
		}},
		{"other owner after deadline", []call{
			{a1, 1, 0, 10 * s, nil, 10 * s},
			{b1, 2, 10 * s, 20 * s, nil, 20 * s},
		}},
		{"other owner needs a larger epoch", []call{
			{a1, 3, 0, 10 * s, nil, 10 * s},
			{b1, 3, 10 * s, 20 * s, ErrStaleEpoch, 0},
			{b1, 2, 10 * s, 20 * s, ErrStaleEpoch, 0},
		}},
		{"new incarnation refused while old lives", []call{
			{a1, 1, 0, 10 * s, nil, 10 * s},
			{a2, 2, 1 * s, 11 * s, ErrPromised, 0},
			{a2, 2, 10 * s, 20 * s, nil, 20 * s},
		}},
		{"renewal with own epoch", []call{
			{a1, 1, 0, 10 * s, nil, 10 * s},
			{a1, 1, 5 * s, 15 * s, nil, 15 * s},
			{a1, 1, 6 * s, 12 * s, nil, 15 * s},
		}},
		{"own expired promise needs a larger epoch", []call{
			{a1, 1, 0, 10 * s, nil, 10 * s},
			{a1, 1, 10 * s, 20 * s, ErrStaleEpoch, 0},
			{a1, 2, 10 * s, 20 * s, nil, 20 * s},
		}},
		{"bad deadlines", []call{
			{a1, 1, 0, 0, ErrBadDeadline, 0},
			{a1, 1, 0, 16 * s, ErrBadDeadline, 0},
		}},
		{"bad owner and epoch", []call{
			{Owner{}, 1, 0, s, ErrBadOwner, 0},
			{a1, 0, 0, s, ErrBadEpoch, 0},
			{a1, MaxEpoch + 1, 0, s, ErrBadEpoch, 0},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			acc, _ := NewAcceptor(DefaultConfig())
			for i, c := range tt.calls {
				p, err := acc.Promise("k", c.owner, c.epoch, at(c.deadline), at(c.at))
				if !errors.Is(err, c.err) {
					t.Fatalf("call %d: err %v, want %v", i, err, c.err)
				}
				if err == nil && (!p.Deadline.Equal(at(c.wantDl)) || p.Owner != c.owner) {
					t.Fatalf("call %d: promise %+v, want deadline %v", i, p, c.wantDl)
				}
				var re *RefusedError
				if errors.Is(err, ErrPromised) {
					if !errors.As(err, &re) || re.Live.Deadline.IsZero() || re.Live.Owner == c.owner {
						t.Fatalf("call %d: refusal without the live promise: %v", i, err)
					}
				}
			}
		})
	}
}

func TestAcceptorBatchAndTransfer(t *testing.T) {
	acc, _ := NewAcceptor(DefaultConfig())
	a, b := Owner{"a", 1}, Owner{"b", 1}
	ans := acc.PromiseBatch(nil, a, []PromiseRequest{
		{Key: "x", Epoch: 1, Deadline: at(10 * time.Second)},
		{Key: "y", Epoch: 1, Deadline: at(10 * time.Second)},
		{Key: "", Epoch: 1, Deadline: at(10 * time.Second)},
	}, t0)
	if len(ans) != 3 || ans[0].Err != nil || ans[1].Err != nil || !errors.Is(ans[2].Err, ErrBadKey) {
		t.Fatalf("answers %+v", ans)
	}
	if _, err := acc.Transfer("x", Owner{"z", 1}, b, 2, at(15*time.Second), at(time.Second)); !errors.Is(err, ErrPromised) {
		t.Fatalf("transfer from a non-owner: %v", err)
	}
	p, err := acc.Transfer("x", a, b, 2, at(15*time.Second), at(time.Second))
	if err != nil || p.Owner != b {
		t.Fatalf("transfer: %+v %v", p, err)
	}
	if live, ok := acc.Live("x", at(2*time.Second)); !ok || live.Owner != b || acc.Highest("x") != 2 {
		t.Fatalf("live %+v %v highest %d", live, ok, acc.Highest("x"))
	}
	// b hands x on to a under the same epoch; the deadline never shrinks,
	// and an epoch between the live one and the highest is stale.
	c := Owner{"c", 1}
	if _, err := acc.Transfer("x", b, c, 1, at(10*time.Second), at(2*time.Second)); !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("transfer under an epoch below the live one: %v", err)
	}
	p, err = acc.Transfer("x", b, c, 2, at(5*time.Second), at(2*time.Second))
	if err != nil || p.Owner != c || p.Epoch != 2 || !p.Deadline.Equal(at(15*time.Second)) || acc.Highest("x") != 2 {
		t.Fatalf("transfer under the same epoch: %+v %v, want c at epoch 2 until the live deadline", p, err)
	}
	// Once nothing is live there is nothing to move: a transfer promises
	// afresh, under an epoch not below the highest.
	if _, err := acc.Transfer("x", b, a, 1, at(30*time.Second), at(16*time.Second)); !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("fresh transfer under an epoch below the highest: %v", err)
	}
	if p, err := acc.Transfer("x", b, a, 2, at(30*time.Second), at(16*time.Second)); err != nil || p.Owner != a {
		t.Fatalf("fresh transfer: %+v %v", p, err)
	}
	acc.Revoke("y", a, at(time.Second))
	if _, ok := acc.Live("y", at(time.Second)); ok {
		t.Fatal("revoked promise still live")
	}
	if err := acc.Restore("y", 9); err != nil || acc.Highest("y") != 9 {
		t.Fatal(err, acc.Highest("y"))
	}
	acc.Restore("y", 3)
	if acc.Highest("y") != 9 {
		t.Fatal("Restore lowered the highest epoch")
	}
}

func TestAcceptorQuiet(t *testing.T) {
	acc, _ := NewAcceptor(DefaultConfig())
	acc.QuietUntil(at(15 * time.Second))
	if _, err := acc.Promise("k", Owner{"a", 1}, 1, at(20*time.Second), at(14*time.Second)); !errors.Is(err, ErrQuiet) {
		t.Fatalf("during the quiet period: %v", err)
	}
	if _, err := acc.Promise("k", Owner{"a", 1}, 1, at(20*time.Second), at(15*time.Second)); err != nil {
		t.Fatalf("after it: %v", err)
	}
}
