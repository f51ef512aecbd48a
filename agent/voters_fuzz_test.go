package agent

import (
	"testing"
	"time"

	"github.com/ringleader/ringleader/lockmgr"
	"github.com/vmihailenco/msgpack/v5"
)

// FuzzVoterMsg feeds hostile voters.msg requests and answers through the
// decoding the agent uses: a request goes to a VoterAcceptor with a set, an
// answer to a VoterProposer. Neither may panic, and an acceptor's state must
// stay valid whatever it was sent.
func FuzzVoterMsg(f *testing.F) {
	cfg := lockmgr.DefaultConfig()
	base, err := lockmgr.BootstrapSet([]string{"n1", "n2", "n3"})
	if err != nil {
		f.Fatal(err)
	}
	seed := func(v any) {
		b, err := msgpack.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	b := lockmgr.Ballot{Round: 1, Proposer: "n1#0000000000000001"}
	add := lockmgr.VoterChange{Op: lockmgr.VoterAdd, Member: "n4"}
	seed(toVoterRequest(lockmgr.VoterMsg{Kind: lockmgr.VoterPrepare, Set: base, Ballot: b}))
	seed(toVoterRequest(lockmgr.VoterMsg{Kind: lockmgr.VoterAccept, Set: base, Ballot: b, Change: add}))
	next, _ := base.Apply(add)
	seed(toVoterRequest(lockmgr.VoterMsg{Kind: lockmgr.VoterCommit, Set: next}))
	r, _ := toVoterResponse(lockmgr.VoterAnswer{}, &lockmgr.VoterRefusedError{Err: lockmgr.ErrStaleVersion, Set: next})
	seed(r)
	r, _ = toVoterResponse(lockmgr.VoterAnswer{Kind: lockmgr.VoterPrepare, Version: 1, Ballot: b, Accepted: b, Change: add}, nil)
	seed(r)
	now := time.Unix(1e9, 0)
	f.Fuzz(func(t *testing.T, data []byte) {
		var req voterMsgRequest
		if msgpack.Unmarshal(data, &req) == nil {
			a, err := lockmgr.NewVoterAcceptor(cfg, lockmgr.VoterAcceptorState{Set: base}, now.Add(-time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			ans, err := a.Handle(req.msg(), now)
			if _, err := toVoterResponse(ans, err); err != nil && err.Error() == "" {
				t.Fatal("an error without a message")
			}
			if err := a.State().Validate(); err != nil {
				t.Fatalf("state after %+v: %v", req, err)
			}
		}
		var resp voterMsgResponse
		if msgpack.Unmarshal(data, &resp) == nil {
			ans, err := resp.answer()
			p, perr := lockmgr.NewVoterProposer(cfg, "n1", base, add)
			if perr != nil {
				t.Fatal(perr)
			}
			p.Start(now)
			p.Handle("n2", ans, err, now)
		}
	})
}
