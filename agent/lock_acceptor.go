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
}

type promiseKey struct {
	Key   string `msgpack:"k"`
	Epoch uint32 `msgpack:"e"`
}

// promiseResponse answers each key of a promiseRequest, in order.
type promiseResponse struct {
	Answers []promiseAnswer `msgpack:"a"`
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
)

// acceptorSide is this peer's acceptor of ownership leases: lockmgr's
// Acceptor plus the durability of its epochs.
type acceptorSide struct {
	db    *store.DB
	clock Clock

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
	quiet := clock.Now().Add(cfg.LockDelay)
	acc.QuietUntil(quiet)
	return &acceptorSide{db: db, clock: clock, acc: acc, quiet: quiet}, nil
}

// promise answers one owner's request. Epochs it raised are on disk before
// it returns, and so is every raise an earlier request committed (a renewal
// answered OK must not rest on an epoch a crash could still lose).
func (s *acceptorSide) promise(owner lockmgr.Owner, from *lockmgr.Owner, period time.Duration, keys []promiseKey) ([]promiseAnswer, error) {
	out := make([]promiseAnswer, len(keys))
	s.mu.Lock()
	now := s.clock.Now()
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
				return nil, err
			}
		}
	}
	if b != nil {
		if err := b.Commit(false); err != nil {
			s.mu.Unlock()
			return nil, fmt.Errorf("%w: cannot record the promised epochs (%v)", ErrUnavailable, err)
		}
		s.raised++
	}
	raised := s.raised
	s.mu.Unlock()
	if err := s.syncTo(raised); err != nil {
		return nil, err
	}
	return out, nil
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
	answers, err := ls.acceptor.promise(lockmgr.Owner{Name: req.Owner, Incarnation: req.Incarnation}, from, req.Period, req.Keys)
	if err != nil {
		return nil, err
	}
	a.metrics.lockPromisesAnswered.Add(float64(len(answers)))
	return &promiseResponse{Answers: answers}, nil
}
