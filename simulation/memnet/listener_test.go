package memnet_test

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ringleader/ringleader/simulation/memnet"
)

func TestListen(t *testing.T) {
	tests := []struct {
		name      string
		first     string // bound first; "" for nothing
		addr      string
		wantAddr  string // "" to only check the ip
		wantInUse bool
		wantErr   string // a part of the error
	}{
		{name: "port only", addr: ":7947", wantAddr: ipA + ":7947"},
		{name: "own ip", addr: ipA + ":7947", wantAddr: ipA + ":7947"},
		{name: "unspecified ipv4", addr: "0.0.0.0:7947", wantAddr: ipA + ":7947"},
		{name: "unspecified ipv6", addr: "[::]:7947", wantAddr: ipA + ":7947"},
		{name: "ephemeral", addr: ":0"},
		{name: "in use", first: ":7947", addr: ":7947", wantInUse: true},
		{name: "in use by another spelling", first: ipA + ":7947", addr: "0.0.0.0:7947", wantInUse: true},
		{name: "other port", first: ":7947", addr: ":7948", wantAddr: ipA + ":7948"},
		{name: "another host's ip", addr: ipB + ":7947", wantErr: "only its own ip"},
		{name: "no port", addr: ipA, wantErr: "not host:port"},
		{name: "bad port", addr: ":http", wantErr: "not a number"},
		{name: "host name", addr: "localhost:7947", wantErr: "no DNS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, a, b, _ := newNetwork(t, memnet.DefaultConfig())
			if tt.first != "" {
				first, err := a.Listen(tt.first)
				if err != nil {
					t.Fatalf("Listen(%q): %v", tt.first, err)
				}
				defer first.Close()
			}
			ln, err := a.Listen(tt.addr)
			switch {
			case tt.wantInUse:
				if !errors.Is(err, syscall.EADDRINUSE) {
					t.Fatalf("Listen(%q): %v; want EADDRINUSE", tt.addr, err)
				}
				return
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Listen(%q): %v; want an error containing %q", tt.addr, err, tt.wantErr)
				}
				return
			case err != nil:
				t.Fatalf("Listen(%q): %v", tt.addr, err)
			}
			defer ln.Close()
			got, ok := ln.Addr().(*net.TCPAddr)
			if !ok || got.IP.String() != ipA || got.Port == 0 || (tt.wantAddr != "" && got.String() != tt.wantAddr) {
				t.Fatalf("Addr = %#v; want a *net.TCPAddr %s", ln.Addr(), tt.wantAddr)
			}
			// The listener is reachable from another host at its address.
			dial(t, b, got.String())
			if c, err := ln.Accept(); err != nil {
				t.Fatalf("Accept: %v", err)
			} else {
				c.Close()
			}
		})
	}
	t.Run("ephemeral ports differ", func(t *testing.T) {
		_, a, _, _ := newNetwork(t, memnet.DefaultConfig())
		seen := make(map[string]bool)
		for range 50 {
			ln, err := a.Listen(":0")
			if err != nil {
				t.Fatalf("Listen(:0): %v", err)
			}
			defer ln.Close()
			if seen[ln.Addr().String()] {
				t.Fatalf("Listen(:0) gave %s twice", ln.Addr())
			}
			seen[ln.Addr().String()] = true
		}
	})
}

func TestListenerClose(t *testing.T) {
	n, a, b, _ := newNetwork(t, memnet.DefaultConfig())
	ln, err := b.Listen(":7947")
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	accepted := dial(t, a, ipB+":7947")
	server, err := ln.Accept()
	if err != nil {
		t.Fatalf("Accept: %v", err)
	}
	defer server.Close()
	waiting := dial(t, a, ipB+":7947") // left in the backlog

	if err := ln.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := ln.Close(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second Close: %v; want net.ErrClosed", err)
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v; want net.ErrClosed", err)
	}
	if r := await(t, readAsync(waiting, 1)); r.err != io.EOF {
		t.Fatalf("read on a conn closed in the backlog: %v; want io.EOF", r.err)
	}
	if _, err := accepted.Write([]byte("still open")); err != nil {
		t.Fatalf("an accepted conn was closed with its listener: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), long)
	defer cancel()
	if _, err := a.DialContext(ctx, ipB+":7947"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial after Close: %v; want ECONNREFUSED", err)
	}
	if s := n.Stats()[ipA]; s.Dials != 2 || s.DialsFailed != 1 {
		t.Fatalf("stats of %s: %d dials, %d failed; want 2, 1", ipA, s.Dials, s.DialsFailed)
	}
	// The port is free again.
	again, err := b.Listen(":7947")
	if err != nil {
		t.Fatalf("Listen after Close: %v", err)
	}
	again.Close()
}

func TestDial(t *testing.T) {
	tests := []struct {
		name      string
		fault     func(n *memnet.Network) error
		addr      string
		noTimeout bool // dial with a context without deadline
		cancel    bool // cancel the context instead of letting it run out
		want      error
		wantText  string // a part of the error, when want is nil
	}{
		{name: "refused", addr: ipB + ":9999", want: syscall.ECONNREFUSED},
		{name: "no such host", addr: "10.9.9.9:7947", want: syscall.EHOSTUNREACH},
		{name: "host name", addr: "b:7947", wantText: "no DNS"},
		{name: "port 0", addr: ipB + ":0", wantText: "not 0"},
		{name: "cut", fault: func(n *memnet.Network) error { return n.Cut(ipA, ipB) }, want: os.ErrDeadlineExceeded},
		{name: "cut matches context deadline", fault: func(n *memnet.Network) error { return n.Cut(ipA, ipB) }, want: context.DeadlineExceeded},
		{name: "one-way cut forward", fault: func(n *memnet.Network) error { return n.CutOneWay(ipA, ipB) }, want: os.ErrDeadlineExceeded},
		{name: "one-way cut backward", fault: func(n *memnet.Network) error { return n.CutOneWay(ipB, ipA) }, want: os.ErrDeadlineExceeded},
		{name: "isolate", fault: func(n *memnet.Network) error { return n.Isolate(ipB) }, want: os.ErrDeadlineExceeded},
		{name: "partition", fault: func(n *memnet.Network) error { return n.Partition([]string{ipB}) }, want: os.ErrDeadlineExceeded},
		{name: "cut hides a refusal", fault: func(n *memnet.Network) error { return n.Cut(ipA, ipB) }, addr: ipB + ":9999", want: os.ErrDeadlineExceeded},
		{name: "cut without deadline", fault: func(n *memnet.Network) error { return n.Cut(ipA, ipB) }, noTimeout: true, want: os.ErrDeadlineExceeded},
		{name: "cut and canceled", fault: func(n *memnet.Network) error { return n.Cut(ipA, ipB) }, cancel: true, want: context.Canceled},
		{name: "cut elsewhere", fault: func(n *memnet.Network) error { return n.Cut(ipA, ipC) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := memnet.DefaultConfig()
			cfg.ConnectTimeout = short
			n, a, b, _ := newNetwork(t, cfg)
			ln, err := b.Listen(":7947")
			if err != nil {
				t.Fatalf("Listen: %v", err)
			}
			defer ln.Close()
			if tt.fault != nil {
				if err := tt.fault(n); err != nil {
					t.Fatalf("fault: %v", err)
				}
			}
			addr := tt.addr
			if addr == "" {
				addr = ipB + ":7947"
			}
			// Before the deadline is set: took must count all the time the
			// deadline allowed, or a preempted test measures less than it.
			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), short)
			defer cancel()
			switch {
			case tt.noTimeout:
				ctx = context.Background()
			case tt.cancel:
				ctx, cancel = context.WithTimeout(context.Background(), long)
				defer cancel()
				defer time.AfterFunc(short, cancel).Stop()
			}
			c, err := a.DialContext(ctx, addr)
			took := time.Since(start)
			if tt.want == nil && tt.wantText == "" {
				if err != nil {
					t.Fatalf("DialContext(%s): %v", addr, err)
				}
				c.Close()
				return
			}
			if err == nil {
				c.Close()
				t.Fatalf("DialContext(%s) connected; want an error", addr)
			}
			if (tt.want != nil && !errors.Is(err, tt.want)) || !strings.Contains(err.Error(), tt.wantText) {
				t.Fatalf("DialContext(%s): %v; want %v %s", addr, err, tt.want, tt.wantText)
			}
			var opErr *net.OpError
			if !errors.As(err, &opErr) || opErr.Op != "dial" {
				t.Fatalf("DialContext(%s): %T; want a *net.OpError", addr, err)
			}
			if (tt.want == os.ErrDeadlineExceeded || tt.want == context.Canceled) && took < short {
				t.Fatalf("DialContext(%s) failed after %v; want it to wait %v", addr, took, short)
			}
			if tt.want == os.ErrDeadlineExceeded && !opErr.Timeout() {
				t.Fatalf("DialContext(%s): %v does not report Timeout", addr, err)
			}
		})
	}
}

// A dial waiting on a cut goes through once the cut heals.
func TestDialThroughHeal(t *testing.T) {
	n, a, b, _ := newNetwork(t, memnet.DefaultConfig())
	ln, err := b.Listen(":7947")
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	defer ln.Close()
	n.CutOneWay(ipB, ipA)
	dialed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), long)
		defer cancel()
		c, err := a.DialContext(ctx, ipB+":7947")
		if err == nil {
			c.Close()
		}
		dialed <- err
	}()
	select {
	case err := <-dialed:
		t.Fatalf("dial across a one-way cut returned %v; want it to wait", err)
	case <-time.After(short):
	}
	n.Heal()
	select {
	case err := <-dialed:
		if err != nil {
			t.Fatalf("dial after heal: %v", err)
		}
	case <-time.After(long):
		t.Fatalf("dial still waiting %v after heal", long)
	}
}

// A dial to a full backlog waits for room, and times out if none comes.
func TestDialFullBacklog(t *testing.T) {
	cfg := memnet.DefaultConfig()
	cfg.AcceptBacklog = 1
	_, a, b, _ := newNetwork(t, cfg)
	ln, err := b.Listen(":7947")
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	defer ln.Close()
	dial(t, a, ipB+":7947")
	ctx, cancel := context.WithTimeout(context.Background(), short)
	defer cancel()
	if _, err := a.DialContext(ctx, ipB+":7947"); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("dial to a full backlog: %v; want a timeout", err)
	}
	dialed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), long)
		defer cancel()
		c, err := a.DialContext(ctx, ipB+":7947")
		if err == nil {
			c.Close()
		}
		dialed <- err
	}()
	c, err := ln.Accept()
	if err != nil {
		t.Fatalf("Accept: %v", err)
	}
	c.Close()
	if err := <-dialed; err != nil {
		t.Fatalf("dial once the backlog had room: %v", err)
	}
}
