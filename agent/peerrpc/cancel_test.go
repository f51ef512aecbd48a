package peerrpc

import (
	"context"
	"net"
	"testing"
	"time"
)

// startHoldServer serves "echo" and "hold", whose handler reports on
// started when it runs and on ended, with its context's error, when its
// context ends (the caller asks for a one-minute deadline).
func startHoldServer(t *testing.T) (addr string, started chan struct{}, ended chan error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewServer(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	started, ended = make(chan struct{}, 4), make(chan error, 4)
	if err := Handle(s, "hold", func(ctx context.Context, r *echoReq) (*echoResp, error) {
		started <- struct{}{}
		<-ctx.Done()
		ended <- ctx.Err()
		return nil, ctx.Err()
	}); err != nil {
		t.Fatal(err)
	}
	if err := Handle(s, "echo", func(ctx context.Context, r *echoReq) (*echoResp, error) {
		return &echoResp{Text: r.Text}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(l); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return l.Addr().String(), started, ended
}

// TestCallerGivingUpCancelsHandler checks that a handler stops serving a
// caller that gave up, long before the deadline it was given, whether or
// not the connection answered anything meanwhile; and that the connection
// stays usable.
func TestCallerGivingUpCancelsHandler(t *testing.T) {
	for _, tc := range []struct {
		name string
		busy bool // another call is answered while the held one waits
	}{{"connection answered meanwhile", true}, {"connection silent meanwhile", false}} {
		t.Run(tc.name, func(t *testing.T) {
			addr, started, ended := startHoldServer(t)
			c := newClient(t, DefaultConfig())
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- c.Call(ctx, addr, "hold", &echoReq{}, nil) }()
			waitFor(t, started, "the held call to reach its handler")
			if tc.busy {
				var resp echoResp
				if err := c.Call(context.Background(), addr, "echo", &echoReq{Text: "x"}, &resp); err != nil {
					t.Fatal(err)
				}
			}
			cancel()
			if err := <-done; err == nil {
				t.Fatal("the cancelled call succeeded")
			}
			select {
			case err := <-ended:
				if err != context.Canceled {
					t.Fatalf("the handler's context ended with %v, want it cancelled", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the handler kept serving a caller that gave up")
			}
			var resp echoResp
			if err := c.Call(context.Background(), addr, "echo", &echoReq{Text: "y"}, &resp); err != nil || resp.Text != "y" {
				t.Fatalf("echo after the cancel: %v %q", err, resp.Text)
			}
		})
	}
}

// pooled returns the client's connection to addr, or nil.
func pooled(c *Client, addr string) *clientConn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conns[addr]
}

// TestCancelledCallKeepsSharedConnection checks that a call its caller
// cancels soon, on a connection that has answered nothing since, does not
// drop the connection: other calls share it. Dropping it failed them all
// with "did not answer" from a live peer whenever a majority write
// cancelled its call to the slowest voter.
func TestCancelledCallKeepsSharedConnection(t *testing.T) {
	addr, started, ended := startHoldServer(t)
	c := newClient(t, DefaultConfig())
	ctxA, cancelA := context.WithTimeout(context.Background(), time.Minute)
	defer cancelA()
	ctxB, cancelB := context.WithTimeout(context.Background(), time.Minute)
	defer cancelB()
	doneA, doneB := make(chan error, 1), make(chan error, 1)
	go func() { doneA <- c.Call(ctxA, addr, "hold", &echoReq{}, nil) }()
	waitFor(t, started, "call A to reach its handler")
	go func() { doneB <- c.Call(ctxB, addr, "hold", &echoReq{}, nil) }()
	waitFor(t, started, "call B to reach its handler")
	cc := pooled(c, addr)
	if cc == nil {
		t.Fatal("no pooled connection")
	}
	cancelA()
	if err := <-doneA; err == nil {
		t.Fatal("the cancelled call succeeded")
	}
	cc.mu.Lock()
	err := cc.err
	cc.mu.Unlock()
	if err != nil {
		t.Fatalf("cancelling call A failed the shared connection: %v", err)
	}
	if got := pooled(c, addr); got != cc {
		t.Fatal("cancelling call A dropped the pooled connection")
	}
	select {
	case err := <-doneB:
		t.Fatalf("call B ended when call A was cancelled: %v", err)
	default:
	}
	cancelB()
	if err := <-doneB; err == nil {
		t.Fatal("the cancelled call B succeeded")
	}
	for range 2 {
		select {
		case <-ended:
		case <-time.After(10 * time.Second):
			t.Fatal("a handler kept serving a caller that gave up")
		}
	}
}

// TestSilentConnectionDropped checks that a call that waited stuckAfter or
// longer with nothing read on its connection drops the connection, so the
// next call dials afresh instead of queueing behind a stuck one.
func TestSilentConnectionDropped(t *testing.T) {
	addr, started, _ := startHoldServer(t)
	cfg := DefaultConfig()
	cfg.DefaultTimeout = 400 * time.Millisecond
	c := newClient(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Call(ctx, addr, "hold", &echoReq{}, nil) }()
	waitFor(t, started, "the held call to reach its handler")
	sent := time.Now() // after the call began: the handler has its request
	cc := pooled(c, addr)
	if cc == nil {
		t.Fatal("no pooled connection")
	}
	// Cancel once the call has waited stuckAfter, on the clock; nothing is
	// read on the connection meanwhile, since the handler never answers.
	for time.Since(sent) <= cfg.stuckAfter() {
		time.Sleep(5 * time.Millisecond) // polling the clock
	}
	cc.mu.Lock()
	waiting := len(cc.pending) > 0
	cc.mu.Unlock()
	if !waiting {
		t.Fatal("the held call is no longer pending")
	}
	cancel()
	if err := <-done; err == nil {
		t.Fatal("the cancelled call succeeded")
	}
	if got := pooled(c, addr); got == cc {
		t.Fatal("a connection silent for longer than stuckAfter stayed pooled")
	}
}

func waitFor(t *testing.T, ch chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}
