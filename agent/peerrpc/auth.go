package peerrpc

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrAuth is returned (wrapped) when a frame fails authentication: missing or
// wrong MAC, a timestamp outside the window, or a replayed nonce.
var ErrAuth = errors.New("peerrpc: authentication failed")

// DefaultAuthWindow is how far a request's timestamp may be from the
// receiver's clock. It must exceed the clock skew between peers.
const DefaultAuthWindow = 30 * time.Second

// maxSeenNonces bounds the replay cache. When full, new requests are refused
// rather than old nonces forgotten early, which would reopen replays.
const maxSeenNonces = 1 << 20

// Auth signs and checks frames with a key derived from the cluster key.
//
// Every frame carries HMAC-SHA256(k, version || fields || bind), where
// k = HMAC-SHA256(cluster key, "ringleader/peer-rpc/v1"). A request binds the
// address it is sent to (so it cannot be replayed to another peer) and
// carries a fresh random nonce and the sender's time; the receiver accepts it
// only within the time window, only once per nonce, and only if it was sent
// after the receiver started (the nonce cache does not survive a restart).
// A response binds the nonce of its request, so it cannot be replayed as the
// answer to another request. Auth is safe for concurrent use.
type Auth struct {
	key    []byte
	window time.Duration
	now    func() time.Time
	// notBefore is when this Auth was made: requests stamped earlier were
	// sent to an earlier life of this process, whose nonce cache is gone, so
	// they are refused as possible replays.
	notBefore int64

	// mu guards seen and nextSweep.
	mu        sync.Mutex
	seen      map[[nonceSize]byte]int64 // nonce -> unix nanos after which it may be forgotten
	nextSweep int64
}

// NewAuth returns an Auth for clusterKey, which must not be empty.
// window bounds the accepted clock difference; now is the clock.
func NewAuth(clusterKey []byte, window time.Duration, now func() time.Time) (*Auth, error) {
	if len(clusterKey) == 0 {
		return nil, errors.New("peerrpc: empty cluster key")
	}
	if window <= 0 {
		return nil, fmt.Errorf("peerrpc: auth window %v must be positive", window)
	}
	if now == nil {
		now = time.Now
	}
	m := hmac.New(sha256.New, clusterKey)
	m.Write([]byte("ringleader/peer-rpc/v1"))
	return &Auth{key: m.Sum(nil), window: window, now: now, notBefore: now().UnixNano(), seen: make(map[[nonceSize]byte]int64)}, nil
}

// stamp gives f a fresh nonce and the current time.
func (a *Auth) stamp(f *Frame) error {
	nonce := make([]byte, nonceSize)
	if _, err := rand.Read(nonce); err != nil {
		return fmt.Errorf("peerrpc: nonce: %w", err)
	}
	f.Nonce = nonce
	f.Time = a.now().UnixNano()
	return nil
}

func (a *Auth) mac(fields, bind []byte) []byte {
	m := hmac.New(sha256.New, a.key)
	m.Write([]byte{FrameVersion})
	m.Write(fields)
	m.Write(bind)
	return m.Sum(nil)
}

// Verify checks a received frame's MAC over its bytes and bind. For
// requests it also checks the timestamp window and remembers the nonce, so
// the same request is accepted at most once.
func (a *Auth) Verify(f *Frame, bind []byte) error {
	if len(f.MAC) == 0 {
		return fmt.Errorf("%w: frame is not signed; this cluster needs the same --encrypt key on every peer", ErrAuth)
	}
	if !hmac.Equal(f.MAC, a.mac(f.signed, bind)) {
		return fmt.Errorf("%w: bad signature; the peers use different --encrypt keys (or the request was addressed to another peer)", ErrAuth)
	}
	if len(f.Nonce) != nonceSize {
		return fmt.Errorf("%w: nonce is %d bytes, want %d", ErrAuth, len(f.Nonce), nonceSize)
	}
	if f.Kind != KindRequest {
		return nil
	}
	now := a.now().UnixNano()
	skew := now - f.Time
	if skew < 0 {
		skew = -skew
	}
	if skew > int64(a.window) {
		return fmt.Errorf("%w: timestamp is %v away from this peer's clock, limit %v; check the clocks", ErrAuth, time.Duration(skew), a.window)
	}
	if f.Time < a.notBefore {
		return fmt.Errorf("%w: request stamped %v before this peer started (a replay, or the sender's clock is behind; it may retry)", ErrAuth, time.Duration(a.notBefore-f.Time))
	}
	var nonce [nonceSize]byte
	copy(nonce[:], f.Nonce)

	a.mu.Lock()
	defer a.mu.Unlock()
	if now >= a.nextSweep {
		for n, expiry := range a.seen {
			if expiry < now {
				delete(a.seen, n)
			}
		}
		a.nextSweep = now + int64(a.window)/4
	}
	if _, dup := a.seen[nonce]; dup {
		return fmt.Errorf("%w: replayed request", ErrAuth)
	}
	if len(a.seen) >= maxSeenNonces {
		return fmt.Errorf("%w: replay cache full (%d recent requests); retry shortly", ErrAuth, maxSeenNonces)
	}
	// The frame is acceptable until f.Time+window by this clock, so the nonce
	// must be remembered at least that long.
	a.seen[nonce] = max(f.Time, now) + int64(a.window)
	return nil
}
