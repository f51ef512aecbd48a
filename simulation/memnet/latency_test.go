package memnet_test

import (
	"bytes"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/ringleader/ringleader/simulation/memnet"
)

func TestPacketLatency(t *testing.T) {
	const delay = 40 * time.Millisecond
	tests := []struct {
		name    string
		latency func(n *memnet.Network) error
		ab, ba  time.Duration // the least delay from a to b and from b to a
	}{
		{name: "network", latency: func(n *memnet.Network) error { return n.SetLatency(delay, 0) }, ab: delay, ba: delay},
		{name: "with jitter", latency: func(n *memnet.Network) error { return n.SetLatency(delay, delay) }, ab: delay, ba: delay},
		{name: "one link", latency: func(n *memnet.Network) error { return n.SetLinkLatency(ipA, ipB, delay, 0) }, ab: delay},
		{
			name: "healed",
			latency: func(n *memnet.Network) error {
				if err := n.SetLatency(time.Hour, 0); err != nil {
					return err
				}
				n.Heal()
				return nil
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, a, b, _ := newNetwork(t, memnet.DefaultConfig())
			defer n.Close()
			tr := gossipTransports(t, a, b)
			if err := tt.latency(n); err != nil {
				t.Fatalf("latency: %v", err)
			}
			for _, dir := range []struct {
				from, to *memnet.Transport
				least    time.Duration
			}{{tr[ipA], tr[ipB], tt.ab}, {tr[ipB], tr[ipA], tt.ba}} {
				sent, err := dir.from.WriteTo([]byte("x"), dir.to.Addr())
				if err != nil {
					t.Fatalf("WriteTo: %v", err)
				}
				if dir.least > 0 && received(dir.to) != nil {
					t.Fatalf("%s to %s: the packet arrived at once; want it after %v", dir.from.Addr(), dir.to.Addr(), dir.least)
				}
				select {
				case p := <-dir.to.PacketCh():
					if took := time.Since(sent); took < dir.least {
						t.Errorf("%s to %s: arrived after %v; want at least %v", dir.from.Addr(), dir.to.Addr(), took, dir.least)
					}
					if p.Timestamp.Sub(sent) < dir.least {
						t.Errorf("packet stamped %v after sending; want at least %v", p.Timestamp.Sub(sent), dir.least)
					}
				case <-time.After(long):
					t.Fatalf("%s to %s: no packet after %v", dir.from.Addr(), dir.to.Addr(), long)
				}
			}
		})
	}
}

// Close drops the packets latency still holds and stops their timers (the
// package's goleak check would see a timer func still running).
func TestCloseDropsDelayedPackets(t *testing.T) {
	n, a, b, _ := newNetwork(t, memnet.DefaultConfig())
	tr := gossipTransports(t, a, b)
	if err := n.SetLatency(time.Hour, 0); err != nil {
		t.Fatalf("SetLatency: %v", err)
	}
	for range 3 {
		if _, err := tr[ipA].WriteTo([]byte("x"), tr[ipB].Addr()); err != nil {
			t.Fatalf("WriteTo: %v", err)
		}
	}
	if st := a.Stats(); st.PacketsSent != 3 || st.PacketsDelivered+st.PacketsDropped != 0 {
		t.Fatalf("before Close: %+v; want 3 sent, all in flight", st)
	}
	n.Close()
	n.Close()
	if st := a.Stats(); st.PacketsDropped != 3 {
		t.Fatalf("after Close: %+v; want the 3 in flight dropped", st)
	}
	// A packet latency would delay is dropped after Close.
	if _, err := tr[ipA].WriteTo([]byte("x"), tr[ipB].Addr()); err != nil {
		t.Fatalf("WriteTo after Close: %v", err)
	}
	if st := a.Stats(); st.PacketsDropped != 4 || received(tr[ipB]) != nil {
		t.Fatalf("after a send past Close: %+v; want 4 dropped", st)
	}
}

// Stream bytes become readable after their latency, in the order written
// even when jitter would reorder them, and the writer never waits for it.
func TestStreamLatency(t *testing.T) {
	const delay = 40 * time.Millisecond
	n, a, b, _ := newNetwork(t, memnet.DefaultConfig())
	defer n.Close()
	client, server := connect(t, a, b)
	if err := n.SetLinkLatency(ipA, ipB, delay, delay); err != nil {
		t.Fatalf("SetLinkLatency: %v", err)
	}
	var want bytes.Buffer
	start := time.Now()
	for i := range 100 {
		msg := fmt.Sprintf("%03d,", i)
		want.WriteString(msg)
		if _, err := client.Write([]byte(msg)); err != nil {
			t.Fatalf("Write: %v", err)
		}
	}
	if took := time.Since(start); took >= delay {
		t.Errorf("100 writes took %v; want them not to wait for the latency of %v", took, delay)
	}
	got := make([]byte, want.Len())
	if err := server.SetReadDeadline(time.Now().Add(long)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(server, got); err != nil {
		t.Fatalf("ReadFull: %v", err)
	}
	if took := time.Since(start); took < delay {
		t.Errorf("bytes readable after %v; want at least %v", took, delay)
	}
	if string(got) != want.String() {
		t.Fatalf("read %q; want %q", got, want.String())
	}
	// The other direction has no latency.
	if _, err := server.Write([]byte("y")); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if r := await(t, readAsync(client, 1)); r.err != nil || r.data != "y" {
		t.Fatalf("Read b to a: %q, %v", r.data, r.err)
	}
}

// A read deadline ends a read waiting for latency.
func TestStreamLatencyDeadline(t *testing.T) {
	n, a, b, _ := newNetwork(t, memnet.DefaultConfig())
	defer n.Close()
	client, server := connect(t, a, b)
	if err := n.SetLatency(time.Hour, 0); err != nil {
		t.Fatalf("SetLatency: %v", err)
	}
	if _, err := client.Write([]byte("x")); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := server.SetReadDeadline(time.Now().Add(short)); err != nil {
		t.Fatal(err)
	}
	if r := await(t, readAsync(server, 1)); !isTimeout(r.err) {
		t.Fatalf("Read: %q, %v; want a timeout", r.data, r.err)
	}
}
