package lockmgr_test

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/ringleader/ringleader/lockmgr"
)

// Three voters admit a fourth: one proposer, its messages delivered at once.
func ExampleVoterProposer() {
	cfg := lockmgr.DefaultConfig()
	cfg.Rand = rand.NewChaCha8([32]byte{1}) // tests only
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

	v1, _ := lockmgr.BootstrapSet([]string{"c", "a", "b"})
	acceptors := map[string]*lockmgr.VoterAcceptor{}
	for _, name := range []string{"a", "b", "c", "d"} {
		acceptors[name], _ = lockmgr.NewVoterAcceptor(cfg, lockmgr.VoterAcceptorState{}, now)
		if v1.Contains(name) {
			acceptors[name].Commit(v1, now) // bootstrap: the agent syncs State after it
		}
	}
	fmt.Println(v1.Version, v1.Members, "majority", v1.Majority())

	p, _ := lockmgr.NewVoterProposer(cfg, "a", v1, lockmgr.VoterChange{Op: lockmgr.VoterAdd, Member: "d"})
	msgs := p.Start(now)
	for len(msgs) > 0 {
		m := msgs[0]
		msgs = msgs[1:]
		ans, err := acceptors[m.To].Handle(m, now) // the agent syncs State before answering
		if m.Kind != lockmgr.VoterCommit {
			msgs = append(msgs, p.Handle(m.To, ans, err, now)...)
		}
	}
	r, _ := p.Result()
	fmt.Println("chosen:", r.Chosen, "own:", r.Own)
	fmt.Println("d has", acceptors["d"].Set().Version, acceptors["d"].Set().Members)
	// Output:
	// 1 [a b c] majority 2
	// chosen: add d own: true
	// d has 2 [a b c d]
}
