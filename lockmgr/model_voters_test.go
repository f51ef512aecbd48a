package lockmgr

// Voter-set changes in the lock model test (model_sim_test.go): a VoterProposer per peer,
// its messages through the scripted network to every voter's VoterAcceptor.

import "time"

// propose starts a voter proposer for c on top of the node's committed set, unless c no
// longer applies to it.
func (n *simNode) propose(c VoterChange) {
	if !n.up {
		return
	}
	set := n.vacc.Set()
	if _, err := set.Apply(c); err != nil || !set.Contains(n.name) {
		n.want = VoterChange{}
		return
	}
	if n.s.p.variant == variantVoterNoMajority {
		n.commitAlone(set, c)
		return
	}
	p, err := NewVoterProposer(n.s.cfg, n.name, set, c)
	if err != nil {
		panic(err)
	}
	n.prop, n.want = p, c
	n.s.tracef("%s proposes %v on %v", n.name, c, set)
	n.sendVoter(p, p.Start(n.now()))
}

// sendVoter sends a proposer's messages; each voter acceptor handles its message, syncs its
// state, and answers (Commit has no answer).
func (n *simNode) sendVoter(p *VoterProposer, msgs []VoterMsg) {
	s, life := n.s, n.life
	for _, m := range msgs {
		to := s.byName[m.To]
		s.send(n.idx, to.idx, func() {
			ans, err := to.vacc.Handle(m, to.now())
			to.persist(nil)
			if m.Kind == VoterCommit {
				return
			}
			s.send(to.idx, n.idx, func() {
				if n.life != life || n.prop != p {
					return
				}
				n.sendVoter(p, p.Handle(m.To, ans, err, n.now()))
				if res, done := p.Result(); done {
					n.vacc.Commit(res.Set, n.now())
					n.persist(nil)
					n.prop = nil
					s.tracef("%s voter change done: %v (chosen %v, own %v)", n.name, res.Set, res.Chosen, res.Own)
					if w := n.want; !res.Own {
						s.after(time.Second, func() {
							if n.life == life {
								n.propose(w)
							}
						})
					}
					n.afterVoterChange()
				}
			})
		})
	}
}

// afterVoterChange: a node that proposed its own removal leaves once it is out of the set.
func (n *simNode) afterVoterChange() {
	if n.want.Op == VoterRemove && n.want.Member == n.name && !n.vacc.Set().Contains(n.name) {
		n.s.tracef("%s leaves", n.name)
		n.left, n.up = true, false
		n.life++
	}
}

// commitAlone is variantVoterNoMajority's voter change: committed here at once, on no one
// else's say, and sent to the other voters of the new set as a commit.
func (n *simNode) commitAlone(set VoterSet, c VoterChange) {
	next, err := set.Apply(c)
	if err != nil {
		panic(err) // propose checked it applies
	}
	if err := n.vacc.Commit(next, n.now()); err != nil {
		n.s.tracef("%s cannot commit %v alone: %v", n.name, next, err)
		return
	}
	n.persist(nil)
	n.want = VoterChange{}
	n.s.tracef("%s commits %v alone (broken)", n.name, next)
	var msgs []VoterMsg
	for _, m := range next.Members {
		if m != n.name {
			msgs = append(msgs, VoterMsg{To: m, Kind: VoterCommit, Set: next})
		}
	}
	n.sendVoter(nil, msgs) // commits get no answer, so no proposer is needed
	n.afterVoterChange()
}
