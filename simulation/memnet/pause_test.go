package memnet_test

import (
	"context"
	"testing"
	"time"

	"github.com/ringleader/ringleader/simulation/memnet"
)

// A paused host's packets are dropped both ways; its stream bytes and
// dials wait and go through on Resume or Heal; other hosts are untouched.
func TestPause(t *testing.T) {
	tests := []struct {
		name   string
		resume func(n *memnet.Network) error
	}{
		{name: "resume", resume: func(n *memnet.Network) error { return n.Resume(ipB) }},
		{name: "heal", resume: func(n *memnet.Network) error { n.Heal(); return nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, a, b, c := newNetwork(t, memnet.DefaultConfig())
			tr := gossipTransports(t, a, b, c)
			client, server := connect(t, a, b)
			ln, err := b.Listen(":7000")
			if err != nil {
				t.Fatalf("Listen: %v", err)
			}
			defer ln.Close()

			if err := n.Pause(ipB); err != nil {
				t.Fatalf("Pause: %v", err)
			}
			if err := n.Pause(ipB); err != nil {
				t.Fatalf("second Pause: %v", err)
			}
			for _, dir := range [][2]string{{ipA, ipB}, {ipB, ipA}, {ipC, ipB}} {
				if got := sendPackets(t, tr[dir[0]], tr[dir[1]], 10); got != 0 {
					t.Errorf("%s to %s while %s is paused: %d of 10 packets arrived; want 0", dir[0], dir[1], ipB, got)
				}
			}
			if got := sendPackets(t, tr[ipA], tr[ipC], 10); got != 10 {
				t.Errorf("a to c while b is paused: %d of 10 packets arrived; want 10", got)
			}
			if got := sendPackets(t, tr[ipB], tr[ipB], 10); got != 10 {
				t.Errorf("b to itself while paused: %d of 10 packets arrived; want 10", got)
			}

			if _, err := client.Write([]byte("held")); err != nil {
				t.Fatalf("Write to a paused host: %v", err)
			}
			read := readAsync(server, 4)
			pending(t, read, "read on a paused host")
			dialed := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), long)
				defer cancel()
				c, err := a.DialContext(ctx, ipB+":7000")
				if err == nil {
					c.Close()
				}
				dialed <- err
			}()
			select {
			case err := <-dialed:
				t.Fatalf("dial to a paused host ended: %v; want it waiting", err)
			case <-time.After(short):
			}

			if err := tt.resume(n); err != nil {
				t.Fatalf("resume: %v", err)
			}
			if r := await(t, read); r.err != nil || r.data != "held" {
				t.Fatalf("read after resume: %q, %v; want the held bytes", r.data, r.err)
			}
			select {
			case err := <-dialed:
				if err != nil {
					t.Fatalf("dial after resume: %v", err)
				}
			case <-time.After(long):
				t.Fatalf("dial still waiting %v after resume", long)
			}
			if got := sendPackets(t, tr[ipA], tr[ipB], 10); got != 10 {
				t.Errorf("a to b after resume: %d of 10 packets arrived; want 10", got)
			}
			if err := n.Resume(ipB); err != nil {
				t.Fatalf("Resume of a running host: %v", err)
			}
		})
	}
}

// A dial to a paused host gives up with its context.
func TestPausedDialTimesOut(t *testing.T) {
	n, a, b, _ := newNetwork(t, memnet.DefaultConfig())
	ln, err := b.Listen(":7000")
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	defer ln.Close()
	if err := n.Pause(ipA); err != nil {
		t.Fatalf("Pause: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), short)
	defer cancel()
	if _, err := a.DialContext(ctx, ipB+":7000"); !isTimeout(err) {
		t.Fatalf("dial from a paused host: %v; want a timeout", err)
	}
}
