package peerrpc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// Client calls methods on peers. It keeps one connection per peer address,
// multiplexing concurrent calls over it, and redials after a failure. Safe
// for concurrent use.
type Client struct {
	cfg Config

	// mu guards conns and closed.
	mu     sync.Mutex
	conns  map[string]*clientConn
	closed bool
	wg     sync.WaitGroup // connections' read loops and cancel senders
}

// NewClient returns a client; cfg.Dial is required.
func NewClient(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Dial == nil {
		return nil, errors.New("peerrpc: client needs a Dial function")
	}
	return &Client{cfg: cfg, conns: make(map[string]*clientConn)}, nil
}

// Call sends req (msgpack-encoded) to method on the peer at addr and decodes
// the answer into resp (which may be nil). Errors wrap ErrUnreachable,
// ErrTimeout or ErrClosed, or are a *RemoteError from the handler. When ctx
// ends before the answer, the server is told to cancel the handler's
// context (MethodCancel), or the connection is dropped, which does too.
func (c *Client) Call(ctx context.Context, addr, method string, req, resp any) error {
	body, err := msgpack.Marshal(req)
	if err != nil {
		return fmt.Errorf("peerrpc: encode %s request: %w", method, err)
	}
	out, err := c.CallRaw(ctx, addr, method, body)
	if err != nil || resp == nil {
		return err
	}
	if err := Unmarshal(out, resp); err != nil {
		return fmt.Errorf("peerrpc: %s answer from %s: %w", method, addr, err)
	}
	return nil
}

// CallRaw is Call with bodies already encoded.
func (c *Client) CallRaw(ctx context.Context, addr, method string, body []byte) ([]byte, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.DefaultTimeout)
		defer cancel()
	}
	cc, err := c.conn(ctx, addr)
	if err != nil {
		return nil, err
	}
	return cc.call(ctx, method, body)
}

// conn returns the pooled connection to addr, dialing when there is none.
// Concurrent callers may dial at once; the first to finish wins.
func (c *Client) conn(ctx context.Context, addr string) (*clientConn, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	if cc := c.conns[addr]; cc != nil {
		c.mu.Unlock()
		return cc, nil
	}
	c.mu.Unlock()

	// A dial takes at most the default timeout, however long the call may
	// last: a peer that cannot be reached is reported as such, soon.
	dctx, cancel := context.WithTimeout(ctx, c.cfg.DefaultTimeout)
	defer cancel()
	nc, err := c.cfg.Dial(dctx, addr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w: dial %s: %v", ErrTimeout, addr, err)
		}
		return nil, fmt.Errorf("%w: dial %s: %v", ErrUnreachable, addr, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		nc.Close()
		return nil, ErrClosed
	}
	if cc := c.conns[addr]; cc != nil {
		nc.Close()
		return cc, nil
	}
	cc := &clientConn{client: c, addr: addr, nc: nc, w: newBatchWriter(nc), pending: make(map[uint64]chan *Frame)}
	cc.lastRead.Store(time.Now().UnixNano())
	c.conns[addr] = cc
	c.wg.Add(1)
	go cc.readLoop()
	return cc, nil
}

// forget drops cc from the pool if it is still the pooled one.
func (c *Client) forget(cc *clientConn) {
	c.mu.Lock()
	if c.conns[cc.addr] == cc {
		delete(c.conns, cc.addr)
	}
	c.mu.Unlock()
}

// track counts a goroutine in wg unless the client is closed.
func (c *Client) track() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.wg.Add(1)
	return true
}

// Close closes every connection, failing calls in flight, and waits for the
// read loops. Safe to call more than once.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	conns := c.conns
	c.conns = make(map[string]*clientConn)
	c.mu.Unlock()
	for _, cc := range conns {
		cc.fail(ErrClosed)
	}
	c.wg.Wait()
	return nil
}

// clientConn is one pooled connection. readLoop owns reading; w batches
// the writes of concurrent calls.
type clientConn struct {
	client   *Client
	addr     string
	nc       net.Conn
	w        *batchWriter
	lastRead atomic.Int64 // unix nanos of the last frame read

	// mu guards nextID, pending and err.
	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]chan *Frame
	err     error // set once the connection is dead
}

func (cc *clientConn) call(ctx context.Context, method string, body []byte) ([]byte, error) {
	deadline, _ := ctx.Deadline()
	cfg := cc.client.cfg
	req := &Frame{Kind: KindRequest, Method: method, Body: body, Timeout: int64(time.Until(deadline))}

	cc.mu.Lock()
	if cc.err != nil {
		err := cc.err
		cc.mu.Unlock()
		return nil, err
	}
	cc.nextID++
	req.ID = cc.nextID
	ch := make(chan *Frame, 1)
	cc.pending[req.ID] = ch
	cc.mu.Unlock()
	defer func() {
		cc.mu.Lock()
		delete(cc.pending, req.ID)
		cc.mu.Unlock()
	}()

	buf, err := AppendFrame(nil, req, cfg.Auth, []byte(cc.addr))
	if err != nil {
		return nil, err
	}
	if len(buf)-headerSize > cfg.MaxFrameSize {
		return nil, fmt.Errorf("%w: %s request of %d bytes, limit %d", ErrFrameTooLarge, method, len(buf)-headerSize, cfg.MaxFrameSize)
	}
	start := time.Now()
	err = cc.w.write(buf, deadline)
	if err != nil {
		cc.fail(fmt.Errorf("%w: write to %s: %v", ErrUnreachable, cc.addr, err))
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w: %s to %s: %v", ErrTimeout, method, cc.addr, err)
		}
		return nil, fmt.Errorf("%w: %s to %s: %v", ErrUnreachable, method, cc.addr, err)
	}
	cfg.countBytes(true, len(buf))

	select {
	case resp := <-ch:
		if resp == nil {
			cc.mu.Lock()
			err := cc.err
			cc.mu.Unlock()
			return nil, err
		}
		if cfg.Auth != nil && resp.Code != CodeUnauthenticated {
			if err := cfg.Auth.Verify(resp, req.Nonce); err != nil {
				cc.fail(fmt.Errorf("%w: %s answered with a bad signature: %v", ErrUnreachable, cc.addr, err))
				return nil, fmt.Errorf("peerrpc: %s answer from %s: %w", method, cc.addr, err)
			}
		}
		if resp.Error != "" || resp.Code != "" {
			re := &RemoteError{Method: method, Code: resp.Code, Message: resp.Error}
			if re.Code == CodeTimeout {
				return nil, fmt.Errorf("%w: %s to %s: %w", ErrTimeout, method, cc.addr, re)
			}
			return nil, re
		}
		return resp.Body, nil
	case <-ctx.Done():
		// A connection that has said nothing for as long as this call waited,
		// and that was long enough, may be stuck behind a partition or a dead
		// host: drop it so the next call dials afresh instead of queueing
		// behind it. A call that ends sooner (its caller had a majority
		// already, or a short deadline) says nothing about the connection,
		// which other calls share: dropping it would fail them all with
		// "did not answer" from a peer that is fine. It only tells the
		// server to stop the handler.
		if cc.lastRead.Load() < start.UnixNano() && time.Since(start) >= cfg.stuckAfter() {
			cc.fail(fmt.Errorf("%w: %s did not answer", ErrUnreachable, cc.addr))
		} else if c := cc.client; c.track() {
			go cc.cancel(req.ID)
		}
		return nil, fmt.Errorf("%w: %s to %s after %v", ErrTimeout, method, cc.addr, time.Since(start).Round(time.Millisecond))
	}
}

// cancel tells the server to stop serving request id, whose caller gave
// up: a handler that holds a request (a lock waiter, say) must not act for
// a caller that is gone. Best effort: it waits at most DefaultTimeout to
// queue the frame, and a connection that cannot take it is dropped, which
// cancels the server's handlers too.
func (cc *clientConn) cancel(id uint64) {
	defer cc.client.wg.Done()
	cfg := cc.client.cfg
	buf, err := AppendFrame(nil, &Frame{Kind: KindRequest, ID: id, Method: MethodCancel}, cfg.Auth, []byte(cc.addr))
	if err != nil {
		return
	}
	if err := cc.w.write(buf, time.Now().Add(cfg.DefaultTimeout)); err != nil {
		cc.fail(fmt.Errorf("%w: write to %s: %v", ErrUnreachable, cc.addr, err))
		return
	}
	cfg.countBytes(true, len(buf))
}

func (cc *clientConn) readLoop() {
	defer cc.client.wg.Done()
	cfg := cc.client.cfg
	br := bufio.NewReaderSize(cc.nc, 32<<10)
	for {
		f, err := ReadFrame(br, cfg.MaxFrameSize)
		if err != nil {
			cc.fail(fmt.Errorf("%w: connection to %s: %v", ErrUnreachable, cc.addr, err))
			return
		}
		cc.lastRead.Store(time.Now().UnixNano())
		cfg.countBytes(false, headerSize+2+len(f.MAC)+len(f.signed))
		if f.Kind != KindResponse {
			cc.fail(fmt.Errorf("%w: %s sent a request on a client connection", ErrUnreachable, cc.addr))
			return
		}
		cc.mu.Lock()
		ch := cc.pending[f.ID]
		delete(cc.pending, f.ID)
		cc.mu.Unlock()
		if ch != nil {
			ch <- f // buffered, and only this loop sends on it
		}
	}
}

// fail marks the connection dead with err, closes it, wakes every pending
// call and removes it from the pool. Only the first error is kept.
func (cc *clientConn) fail(err error) {
	cc.mu.Lock()
	if cc.err == nil {
		cc.err = err
	}
	pending := cc.pending
	cc.pending = make(map[uint64]chan *Frame)
	cc.mu.Unlock()
	cc.nc.Close()
	cc.client.forget(cc)
	for _, ch := range pending {
		select {
		case ch <- nil:
		default:
		}
	}
}
