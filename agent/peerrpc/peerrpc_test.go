package peerrpc

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type echoReq struct {
	Text  string
	Sleep time.Duration
}

type echoResp struct {
	Text string
}

var errBoom = errors.New("boom")

func dialTCP(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

// startServer serves echo and fail methods on a loopback port and returns
// its address; it is closed when the test ends.
func startServer(t *testing.T, cfg Config) string {
	t.Helper()
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := Handle(s, "echo", func(ctx context.Context, r *echoReq) (*echoResp, error) {
		if r.Sleep > 0 {
			select {
			case <-time.After(r.Sleep):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return &echoResp{Text: r.Text}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := Handle(s, "fail", func(ctx context.Context, r *echoReq) (*echoResp, error) {
		return nil, WithCode(CodeUnavailable, errBoom)
	}); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(l); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return l.Addr().String()
}

func newClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	cfg.Dial = dialTCP
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testAuth(t *testing.T, key string) *Auth {
	t.Helper()
	a, err := NewAuth([]byte(key), DefaultAuthWindow, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestCall(t *testing.T) {
	for _, tc := range []struct {
		name      string
		serverKey string
		clientKey string
		wantErr   string
	}{
		{name: "no key", wantErr: ""},
		{name: "same key", serverKey: "k1", clientKey: "k1"},
		{name: "wrong key", serverKey: "k1", clientKey: "k2", wantErr: "different --encrypt keys"},
		{name: "client without key", serverKey: "k1", wantErr: "not signed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			scfg, ccfg := DefaultConfig(), DefaultConfig()
			if tc.serverKey != "" {
				scfg.Auth = testAuth(t, tc.serverKey)
			}
			if tc.clientKey != "" {
				ccfg.Auth = testAuth(t, tc.clientKey)
			}
			addr := startServer(t, scfg)
			c := newClient(t, ccfg)
			var resp echoResp
			err := c.Call(context.Background(), addr, "echo", &echoReq{Text: "hi"}, &resp)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("call: %v", err)
				}
				if resp.Text != "hi" {
					t.Fatalf("got %q, want hi", resp.Text)
				}
				return
			}
			var re *RemoteError
			if !errors.As(err, &re) || re.Code != CodeUnauthenticated || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want an unauthenticated error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestCallErrors(t *testing.T) {
	addr := startServer(t, DefaultConfig())
	c := newClient(t, DefaultConfig())
	ctx := context.Background()

	t.Run("remote error keeps its code", func(t *testing.T) {
		err := c.Call(ctx, addr, "fail", &echoReq{}, nil)
		var re *RemoteError
		if !errors.As(err, &re) || re.Code != CodeUnavailable || re.Message != "boom" {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("unknown method", func(t *testing.T) {
		err := c.Call(ctx, addr, "nope", &echoReq{}, nil)
		var re *RemoteError
		if !errors.As(err, &re) || re.Code != CodeUnknownMethod {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		err := c.Call(ctx, addr, "echo", &echoReq{Sleep: 10 * time.Second}, nil)
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("got %v, want ErrTimeout", err)
		}
	})
	t.Run("connection still usable after a timeout", func(t *testing.T) {
		var resp echoResp
		if err := c.Call(ctx, addr, "echo", &echoReq{Text: "again"}, &resp); err != nil || resp.Text != "again" {
			t.Fatalf("got %v %q", err, resp.Text)
		}
	})
	t.Run("nobody listening", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		dead := l.Addr().String()
		l.Close()
		err = c.Call(ctx, dead, "echo", &echoReq{}, nil)
		if !errors.Is(err, ErrUnreachable) {
			t.Fatalf("got %v, want ErrUnreachable", err)
		}
	})
	t.Run("request too large", func(t *testing.T) {
		err := c.Call(ctx, addr, "echo", &echoReq{Text: strings.Repeat("x", 5<<20)}, nil)
		if !errors.Is(err, ErrFrameTooLarge) {
			t.Fatalf("got %v, want ErrFrameTooLarge", err)
		}
	})
}

func TestConcurrentCalls(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Auth = testAuth(t, "key")
	addr := startServer(t, cfg)
	c := newClient(t, cfg)
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			want := strings.Repeat("y", i)
			var resp echoResp
			if err := c.Call(context.Background(), addr, "echo", &echoReq{Text: want}, &resp); err != nil {
				errs <- err
			} else if resp.Text != want {
				errs <- errors.New("answer for another call")
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// rawCall writes frame bytes on a fresh connection and reads one answer.
func rawCall(t *testing.T, addr string, wire []byte) *Frame {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := nc.Write(wire); err != nil {
		t.Fatal(err)
	}
	f, err := ReadFrame(nc, 1<<20)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	return f
}

func TestReplayAndStaleRefused(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Auth = testAuth(t, "key")
	addr := startServer(t, cfg)
	body := []byte{0x81, 0xa4, 'T', 'e', 'x', 't', 0xa2, 'h', 'i'}

	wire, err := AppendFrame(nil, &Frame{Kind: KindRequest, ID: 1, Method: "echo", Body: body}, cfg.Auth, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f := rawCall(t, addr, wire); f.Error != "" {
		t.Fatalf("first send refused: %s", f.Error)
	}
	if f := rawCall(t, addr, wire); f.Code != CodeUnauthenticated || !strings.Contains(f.Error, "replayed") {
		t.Fatalf("replay: got code %q error %q, want a refusal", f.Code, f.Error)
	}

	stale, err := NewAuth([]byte("key"), DefaultAuthWindow, func() time.Time { return time.Now().Add(-time.Minute) })
	if err != nil {
		t.Fatal(err)
	}
	wire, err = AppendFrame(nil, &Frame{Kind: KindRequest, ID: 2, Method: "echo", Body: body}, stale, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f := rawCall(t, addr, wire); f.Code != CodeUnauthenticated || !strings.Contains(f.Error, "clock") {
		t.Fatalf("stale: got code %q error %q, want a refusal", f.Code, f.Error)
	}

	// A tampered body breaks the signature.
	wire, err = AppendFrame(nil, &Frame{Kind: KindRequest, ID: 3, Method: "echo", Body: body}, cfg.Auth, nil)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(wire, []byte("hi"))
	wire[i] = 'H'
	if f := rawCall(t, addr, wire); f.Code != CodeUnauthenticated {
		t.Fatalf("tampered: got code %q error %q, want a refusal", f.Code, f.Error)
	}
}

func TestFrameRoundTrip(t *testing.T) {
	auth := testAuth(t, "key")
	in := &Frame{Kind: KindResponse, ID: 42, Method: "m", Timeout: 7, Code: "c", Error: "e", Body: []byte{1, 2, 3}}
	wire, err := AppendFrame(nil, in, auth, []byte("bind"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := ReadFrame(bytes.NewReader(wire), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if out.ID != 42 || out.Method != "m" || out.Timeout != 7 || out.Code != "c" || out.Error != "e" || !bytes.Equal(out.Body, in.Body) || out.Time != in.Time || !bytes.Equal(out.Nonce, in.Nonce) {
		t.Fatalf("round trip changed the frame: %+v", out)
	}
	if err := auth.Verify(out, []byte("bind")); err != nil {
		t.Fatalf("verify: %v", err)
	}
	if err := auth.Verify(out, []byte("other")); !errors.Is(err, ErrAuth) {
		t.Fatalf("verify with the wrong binding: got %v, want ErrAuth", err)
	}
	if _, err := ReadFrame(bytes.NewReader(wire), 10); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("limit: got %v, want ErrFrameTooLarge", err)
	}
}

func TestCheckMsgpack(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		ok   bool
	}{
		{"fixmap", []byte{0x81, 0xa1, 'a', 0x01}, true},
		{"nested arrays", []byte{0x92, 0x91, 0xc0, 0xc3}, true},
		{"empty", nil, false},
		{"trailing byte", []byte{0xc0, 0xc0}, false},
		{"array32 claims 4G elements", []byte{0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0}, false},
		{"bin32 claims more than is there", []byte{0xc6, 0x00, 0x00, 0x10, 0x00, 1, 2}, false},
		{"reserved code", []byte{0xc1}, false},
		{"too deep", bytes.Repeat([]byte{0x91}, 100), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckMsgpack(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("CheckMsgpack(%x) = %v, want ok=%v", tc.in, err, tc.ok)
			}
		})
	}
}

func TestServerCloseIdempotent(t *testing.T) {
	s, err := NewServer(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(l); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s.Close()
	if err := s.Serve(l); !errors.Is(err, ErrClosed) {
		t.Fatalf("serve after close: got %v", err)
	}
}
