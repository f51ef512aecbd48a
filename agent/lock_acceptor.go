package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ringleader/ringleader/agent/store"
	"github.com/ringleader/ringleader/lockmgr"
)

// Peer RPC method of the acceptor side of ownership leases.
const methodLockPromise = "lock.promise"

// maxPromiseKeys bounds the keys of one promise request: an owner with more
// keys in use sends several.
const maxPromiseKeys = 4096

// promiseRequest asks an acceptor to promise keys to an owner incarnation
// for Period from when the acceptor receives it. The owner counts its
// ownership lease from when it sent the request, so the acceptor's promise
// (timed from later) outlasts what the owner counts on.
//
// With From set it is a transfer (a handoff): each key's live promise to
// From moves to Owner in one step, or is refused.
type promiseRequest struct {
	Owner           string        `msgpack:"o"`
	Incarnation     uint64        `msgpack:"i"`
	From            string        `msgpack:"f,omitempty"`
	FromIncarnation uint64        `msgpack:"fi,omitempty"`
	Period          time.Duration `msgpack:"p"`
	Keys            []promiseKey  `msgpack:"k"`
	// Voters is the owner's committed voter set: the acceptor refuses a
	// set older than its own (or of another cluster), and learns a newer
	// one.
	Voters *wireSet `msgpack:"v,omitempty"`
}

type promiseKey struct {
	Key   string `msgpack:"k"`
	Epoch uint32 `msgpack:"e"`
}

// promiseResponse answers each key of a promiseRequest, in order.
type promiseResponse struct {
	Answers []promiseAnswer `msgpack:"a"`
	// Voters is the acceptor's newer voter set when it refused the
	// owner's as stale: the owner learns it and asks again.
	Voters *wireSet `msgpack:"v,omitempty"`
}

// promiseAnswer is one key's answer: OK, or why not. Highest is the highest
// epoch the acceptor ever promised for the key (a new owner asks above it);
// Holder and Remaining name a live promise to another owner.
type promiseAnswer struct {
	OK        bool          `msgpack:"ok"`
	Reason    string        `msgpack:"r,omitempty"`
	Highest   uint32        `msgpack:"h"`
	Holder    string        `msgpack:"ho,omitempty"`
	Remaining time.Duration `msgpack:"rm,omitempty"`
}

// Reasons in a promiseAnswer.
const (
	refusedPromised = "promised"
	refusedStale    = "stale-epoch"
	refusedQuiet    = "quiet"
	refusedOther    = "refused"
	refusedVoters   = "voters"
)

// acceptorSide is this peer's acceptor of ownership leases: lockmgr's
// Acceptor plus the durability of its epochs.
type acceptorSide struct {
	db        *store.DB
	clock     Clock
	lockDelay time.Duration

	// mu guards acc and raised: one request at a time changes them, and
	// commits the epochs it raised (unsynced) before letting go, so the
	// log holds them in the order they were raised.
	mu    sync.Mutex
	acc   *lockmgr.Acceptor
	quiet time.Time // no promises before this
	// raised counts the epoch raises committed so far; synced how many of
	// them are known to be on disk (under syncMu).
	raised uint64

	syncMu sync.Mutex
	synced uint64

	// voters is this peer's side of the voter set, under mu too: a
	// promise checks the owner's voter-set version and promises in one
	// step. votersSaved is its state as last synced.
	voters      *lockmgr.VoterAcceptor
	votersSaved []byte
	// gaveUp holds the clusters whose sets this peer abandoned after a
	// merge: it never learns them again.
	gaveUp map[uint64]bool
}

// newAcceptorSide loads the durable epochs and starts the quiet period: a
// peer that restarted forgot the deadlines it promised, so it promises
// nothing for one lock-delay from now.
func newAcceptorSide(db *store.DB, clock Clock, cfg lockmgr.Config) (*acceptorSide, error) {
	acc, err := lockmgr.NewAcceptor(cfg)
	if err != nil {
		return nil, err
	}
	n := 0
	if err := db.ScanLockEpochs(func(key string, epoch uint32) error {
		n++
		return acc.Restore(key, epoch)
	}); err != nil {
		return nil, fmt.Errorf("agent: load lock epochs: %w", err)
	}
	var st lockmgr.VoterAcceptorState
	saved, ok, err := db.GetMeta(metaVoters)
	if err != nil {
		return nil, err
	}
	if ok {
		if err := st.UnmarshalBinary(saved); err != nil {
			return nil, fmt.Errorf("agent: the voter set in the data dir cannot be read (%w); restore the data dir from a backup or start this peer with an empty one", err)
		}
	}
	now := clock.Now()
	va, err := lockmgr.NewVoterAcceptor(cfg, st, now)
	if err != nil {
		return nil, err
	}
	quiet := now.Add(cfg.LockDelay)
	acc.QuietUntil(quiet)
	return &acceptorSide{db: db, clock: clock, lockDelay: cfg.LockDelay, acc: acc, quiet: quiet, voters: va, votersSaved: saved, gaveUp: map[uint64]bool{}}, nil
}

// voterSet returns the committed voter set (Version 0: none yet).
func (s *acceptorSide) voterSet() lockmgr.VoterSet {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.voters.Set()
}

// saveVotersLocked syncs the voter state when it changed; a caller answers
// nothing that rests on the change until it returned nil. Called with mu
// held.
func (s *acceptorSide) saveVotersLocked() error {
	b, err := s.voters.State().MarshalBinary()
	if err != nil {
		return err
	}
	if string(b) == string(s.votersSaved) {
		return nil
	}
	batch := s.db.NewBatch()
	if err := batch.PutMeta(metaVoters, b); err != nil {
		batch.Close()
		return err
	}
	if err := batch.Commit(true); err != nil {
		return fmt.Errorf("%w: cannot record the voter set (%v)", ErrUnavailable, err)
	}
	s.votersSaved = b
	return nil
}

// handleVoterMsg answers a proposer's Prepare, Accept or Commit, with the
// state it changed on disk first.
func (s *acceptorSide) handleVoterMsg(m lockmgr.VoterMsg) (lockmgr.VoterAnswer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gaveUp[m.Set.Cluster] && s.voters.Set().Version == 0 {
		return lockmgr.VoterAnswer{}, &lockmgr.VoterRefusedError{Err: lockmgr.ErrOtherCluster}
	}
	ans, err := s.voters.Handle(m, s.clock.Now())
	if serr := s.saveVotersLocked(); serr != nil {
		return lockmgr.VoterAnswer{}, serr
	}
	return ans, err
}

// learnSet adopts a committed set newer than this peer's (one a peer of
// the cluster sent, or this peer formed or chose).
func (s *acceptorSide) learnSet(set lockmgr.VoterSet) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.learnSetLocked(set)
}

func (s *acceptorSide) learnSetLocked(set lockmgr.VoterSet) error {
	if s.gaveUp[set.Cluster] {
		return fmt.Errorf("%w: %v is of a cluster this peer left after a merge", lockmgr.ErrOtherCluster, set)
	}
	if err := s.voters.Commit(set, s.clock.Now()); err != nil {
		return err
	}
	return s.saveVotersLocked()
}

// abandon gives up the committed set after a lost merge: this peer
// promises nothing for one lock-delay (promises made under the old set may
// be live) and waits to be added to the surviving set.
func (s *acceptorSide) abandon() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	set := s.voters.Set()
	if set.Version == 0 {
		return nil
	}
	s.gaveUp[set.Cluster] = true
	s.voters.Abandon()
	if q := s.clock.Now().Add(s.lockDelay); q.After(s.quiet) {
		s.quiet = q
		s.acc.QuietUntil(q)
	}
	return s.saveVotersLocked()
}

// abandoned reports whether this peer gave up cluster's set.
func (s *acceptorSide) abandoned(cluster uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gaveUp[cluster]
}

// checkVoters checks an owner's voter set before a promise, learning it
// when it is newer than this peer's. On a refusal it returns the reason for
// every key and, for a stale owner, this peer's newer set. Called with mu
// held.
func (s *acceptorSide) checkVotersLocked(owner *wireSet, now time.Time) (reason string, newer *wireSet) {
	set := owner.set()
	if cur := s.voters.Set(); set.Version > cur.Version && (cur.Version == 0 || set.Cluster == cur.Cluster) && set.Validate() == nil {
		if err := s.learnSetLocked(set); err != nil && !errors.Is(err, lockmgr.ErrOtherCluster) {
			return refusedVoters + ": " + err.Error(), nil
		}
	}
	if now.Before(s.quiet) {
		// Nothing is promised (the Acceptor refuses it as quiet): no pass
		// to remember, which would hold off the next voter change.
		return "", nil
	}
	err := s.voters.CheckVersion(set.Cluster, set.Version, now)
	switch {
	case err == nil:
		return "", nil
	case errors.Is(err, lockmgr.ErrNoVoters):
		return refusedVoters + ": this peer has no voter set yet", nil
	case errors.Is(err, lockmgr.ErrStaleVersion):
		cur := s.voters.Set()
		return fmt.Sprintf("%s: has a newer voter set (v%d)", refusedVoters, cur.Version), toWireSet(cur)
	case errors.Is(err, lockmgr.ErrOtherCluster):
		return refusedVoters + ": of another cluster (voters " + voterTag(s.voters.Set()) + ")", nil
	}
	return refusedVoters + ": " + err.Error(), nil
}

// promise answers one owner's request. Epochs it raised are on disk before
// it returns, and so is every raise an earlier request committed (a renewal
// answered OK must not rest on an epoch a crash could still lose).
func (s *acceptorSide) promise(owner lockmgr.Owner, from *lockmgr.Owner, period time.Duration, voters *wireSet, keys []promiseKey) ([]promiseAnswer, *wireSet, error) {
	out := make([]promiseAnswer, len(keys))
	s.mu.Lock()
	now := s.clock.Now()
	if reason, newer := s.checkVotersLocked(voters, now); reason != "" {
		for i, k := range keys {
			out[i] = promiseAnswer{Reason: reason, Highest: s.acc.Highest(k.Key)}
		}
		s.mu.Unlock()
		return out, newer, nil
	}
	deadline := now.Add(period)
	var b *store.Batch
	for i, k := range keys {
		before := s.acc.Highest(k.Key)
		var p lockmgr.Promise
		var err error
		if from != nil {
			p, err = s.acc.Transfer(k.Key, *from, owner, k.Epoch, deadline, now)
		} else {
			p, err = s.acc.Promise(k.Key, owner, k.Epoch, deadline, now)
		}
		out[i] = answerOf(p, err, s.acc.Highest(k.Key), now)
		if out[i].Reason == refusedQuiet {
			out[i].Remaining = s.quiet.Sub(now)
		}
		if err == nil && p.Epoch > before {
			if b == nil {
				b = s.db.NewBatch()
			}
			if err := b.PutLockEpoch(k.Key, p.Epoch); err != nil {
				b.Close()
				s.mu.Unlock()
				return nil, nil, err
			}
		}
	}
	if b != nil {
		if err := b.Commit(false); err != nil {
			s.mu.Unlock()
			return nil, nil, fmt.Errorf("%w: cannot record the promised epochs (%v)", ErrUnavailable, err)
		}
		s.raised++
	}
	raised := s.raised
	s.mu.Unlock()
	if err := s.syncTo(raised); err != nil {
		return nil, nil, err
	}
	return out, nil, nil
}

// syncTo returns once the first n raises are on disk. Concurrent callers
// share one sync.
func (s *acceptorSide) syncTo(n uint64) error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if s.synced >= n {
		return nil
	}
	s.mu.Lock()
	target := s.raised
	s.mu.Unlock()
	if err := s.db.Sync(); err != nil {
		return fmt.Errorf("%w: cannot sync the promised epochs (%v)", ErrUnavailable, err)
	}
	s.synced = target
	return nil
}

func answerOf(p lockmgr.Promise, err error, highest uint32, now time.Time) promiseAnswer {
	a := promiseAnswer{OK: err == nil, Highest: highest}
	if err == nil {
		return a
	}
	var ref *lockmgr.RefusedError
	switch {
	case errors.As(err, &ref) && errors.Is(err, lockmgr.ErrPromised):
		a.Reason, a.Holder, a.Remaining = refusedPromised, ref.Live.Owner.Name, ref.Live.Deadline.Sub(now)
	case errors.Is(err, lockmgr.ErrStaleEpoch):
		a.Reason = refusedStale
	case errors.Is(err, lockmgr.ErrQuiet):
		a.Reason = refusedQuiet
	default:
		a.Reason = refusedOther + ": " + err.Error()
	}
	return a
}

// quietAt reports whether the acceptor is still in its quiet period.
func (s *acceptorSide) quietAt(now time.Time) bool { return now.Before(s.quiet) }

// quietFor returns how much of the quiet period is left at now (0 when it
// is over).
func (s *acceptorSide) quietFor(now time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return max(0, s.quiet.Sub(now))
}

// highest returns the highest epoch this acceptor promised for key.
func (s *acceptorSide) highest(key string) uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acc.Highest(key)
}

func (a *Agent) handleLockPromise(ctx context.Context, req *promiseRequest) (*promiseResponse, error) {
	ls, err := a.lockService()
	if err != nil {
		return nil, err
	}
	if len(req.Keys) == 0 || len(req.Keys) > maxPromiseKeys {
		return nil, fmt.Errorf("a promise request must name 1 to %d keys, got %d", maxPromiseKeys, len(req.Keys))
	}
	if req.Period <= 0 || req.Period > ls.cfg.LockDelay {
		return nil, fmt.Errorf("promise period %v must be positive and at most the lock-delay %v", req.Period, ls.cfg.LockDelay)
	}
	var from *lockmgr.Owner
	if req.From != "" {
		from = &lockmgr.Owner{Name: req.From, Incarnation: req.FromIncarnation}
	}
	answers, newer, err := ls.acceptor.promise(lockmgr.Owner{Name: req.Owner, Incarnation: req.Incarnation}, from, req.Period, req.Voters, req.Keys)
	if err != nil {
		return nil, err
	}
	a.metrics.lockPromisesAnswered.Add(float64(len(answers)))
	return &promiseResponse{Answers: answers, Voters: newer}, nil
}
