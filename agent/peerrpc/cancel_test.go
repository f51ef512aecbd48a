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
// caller that gave up, long before the deadline it was given: by a cancel
// frame on a connection that still answers, and by the connection's end
// when it does not.
func TestCallerGivingUpCancelsHandler(t *testing.T) {
	for _, tc := range []struct {
		name string
		busy bool // another call is answered while the held one waits
	}{{"cancel frame", true}, {"connection dropped", false}} {
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
			if tc.busy {
				// The connection stays usable.
				var resp echoResp
				if err := c.Call(context.Background(), addr, "echo", &echoReq{Text: "y"}, &resp); err != nil || resp.Text != "y" {
					t.Fatalf("echo after the cancel: %v %q", err, resp.Text)
				}
			}
		})
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
