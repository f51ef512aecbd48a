package peerrpc

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"runtime"
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
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Self = l.Addr().String()
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
	other := startServer(t, cfg)
	body := []byte{0x81, 0xa4, 'T', 'e', 'x', 't', 0xa2, 'h', 'i'}
	request := func(a *Auth, id uint64, to string) []byte {
		wire, err := AppendFrame(nil, &Frame{Kind: KindRequest, ID: id, Method: "echo", Body: body}, a, []byte(to))
		if err != nil {
			t.Fatal(err)
		}
		return wire
	}
	refused := func(name string, f *Frame, want string) {
		t.Helper()
		if f.Code != CodeUnauthenticated || !strings.Contains(f.Error, want) {
			t.Fatalf("%s: got code %q error %q, want a refusal saying %q", name, f.Code, f.Error, want)
		}
	}

	wire := request(cfg.Auth, 1, addr)
	if f := rawCall(t, addr, wire); f.Error != "" {
		t.Fatalf("first send refused: %s", f.Error)
	}
	refused("replay", rawCall(t, addr, wire), "replayed")
	refused("replay to another peer", rawCall(t, other, wire), "addressed to another peer")

	stale, err := NewAuth([]byte("key"), DefaultAuthWindow, func() time.Time { return time.Now().Add(-time.Minute) })
	if err != nil {
		t.Fatal(err)
	}
	refused("stale", rawCall(t, addr, request(stale, 2, addr)), "clock")

	// A tampered body breaks the signature.
	wire = request(cfg.Auth, 5, addr)
	i := bytes.Index(wire, []byte("hi"))
	wire[i] = 'H'
	refused("tampered", rawCall(t, addr, wire), "bad signature")
}

func TestRequestFromBeforeStartRefused(t *testing.T) {
	client := testAuth(t, "key")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	body := []byte{0x80}
	// Signed now; the server's Auth is made a moment later, as after a
	// restart that lost the nonce cache.
	wire, err := AppendFrame(nil, &Frame{Kind: KindRequest, ID: 1, Method: "echo", Body: body}, client, []byte(addr))
	if err != nil {
		t.Fatal(err)
	}
	for signed := time.Now(); !time.Now().After(signed); {
		// the server's Auth must be made strictly later
	}
	cfg := DefaultConfig()
	cfg.Auth = testAuth(t, "key")
	cfg.Self = addr
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(l); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if f := rawCall(t, addr, wire); f.Code != CodeUnauthenticated || !strings.Contains(f.Error, "before this peer started") {
		t.Fatalf("got code %q error %q", f.Code, f.Error)
	}
}

// A sender that declares a big frame and stalls is cut off after
// FrameTimeout, and one that sends nothing after IdleTimeout; connections
// over MaxConns are closed at once. The server never closes a healthy
// connection on its own, so a close within a few seconds can only come from
// the limit under test (the bounds stay loose for busy machines).
func TestServerLimits(t *testing.T) {
	closedWithin := func(name string, nc net.Conn, limit time.Duration) {
		t.Helper()
		nc.SetReadDeadline(time.Now().Add(limit))
		if _, err := nc.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("%s: read returned %v; want the server to close the connection within %v", name, err, limit)
		}
	}
	dial := func(addr string) net.Conn {
		t.Helper()
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		return nc
	}

	timeouts := DefaultConfig()
	timeouts.FrameTimeout = 100 * time.Millisecond
	timeouts.IdleTimeout = 200 * time.Millisecond
	addr := startServer(t, timeouts)
	stalled := dial(addr)
	stalled.Write([]byte{0, 0x40, 0, 0, FrameVersion}) // 4 MiB declared, 1 byte sent
	closedWithin("stalled frame", stalled, 5*time.Second)
	closedWithin("idle connection", dial(addr), 5*time.Second)

	limited := DefaultConfig()
	limited.MaxConns = 2
	addr = startServer(t, limited) // idle timeout: minutes
	var conns []net.Conn
	for range 3 {
		conns = append(conns, dial(addr))
	}
	closedWithin("connection over the limit", conns[2], 5*time.Second)
	var resp echoResp
	c := newClient(t, DefaultConfig())
	if err := c.Call(context.Background(), addr, "echo", &echoReq{Text: "x"}, &resp); err == nil {
		t.Fatal("a fourth connection was served while two were held open")
	}
	conns[0].Close()
	conns[1].Close()
	waitUntil(t, 5*time.Second, func() error {
		return c.Call(context.Background(), addr, "echo", &echoReq{Text: "x"}, &resp)
	})
}

func waitUntil(t *testing.T, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still failing after %v: %v", timeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestReadBodyGrowsWithInput(t *testing.T) {
	// 4 MiB declared, 10 bytes sent: the reader must not allocate 4 MiB.
	hdr := []byte{0, 0x40, 0, 0, FrameVersion, 0}
	var m1, m2 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m1)
	_, err := ReadFrame(bytes.NewReader(append(hdr, make([]byte, 8)...)), 8<<20)
	runtime.ReadMemStats(&m2)
	if err == nil {
		t.Fatal("a truncated frame decoded")
	}
	if grew := m2.TotalAlloc - m1.TotalAlloc; grew > 1<<20 {
		t.Fatalf("reading 14 bytes of a 4 MiB frame allocated %d bytes", grew)
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
