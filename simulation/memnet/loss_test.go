package memnet_test

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/ringleader/ringleader/simulation/memnet"
)

// sendPackets sends count one-byte packets from one transport to another
// and returns how many reached the receiver's queue, draining it.
func sendPackets(t *testing.T, from, to *memnet.Transport, count int) int {
	t.Helper()
	got := 0
	for range count {
		if _, err := from.WriteTo([]byte("x"), to.Addr()); err != nil {
			t.Fatalf("WriteTo: %v", err)
		}
		if received(to) != nil {
			got++
		}
	}
	return got
}

func TestPacketLoss(t *testing.T) {
	const count = 2000
	tests := []struct {
		name  string
		fault func(n *memnet.Network) error
		// Packets of count that arrive, from a to b and from b to a: at
		// least min, at most max.
		abMin, abMax, baMin, baMax int
	}{
		{name: "none", fault: func(*memnet.Network) error { return nil }, abMin: count, abMax: count, baMin: count, baMax: count},
		{name: "all lost", fault: func(n *memnet.Network) error { return n.SetLoss(100) }, abMax: 0, baMax: 0},
		{name: "zero", fault: func(n *memnet.Network) error { return n.SetLoss(0) }, abMin: count, abMax: count, baMin: count, baMax: count},
		{
			// 30% of 2000: mean 1400 arrive, standard deviation about 20.
			name:  "thirty percent",
			fault: func(n *memnet.Network) error { return n.SetLoss(30) },
			abMin: 1300, abMax: 1500, baMin: 1300, baMax: 1500,
		},
		{
			name:  "one link",
			fault: func(n *memnet.Network) error { return n.SetLinkLoss(ipA, ipB, 100) },
			abMax: 0, baMin: count, baMax: count,
		},
		{
			name: "link overrides network",
			fault: func(n *memnet.Network) error {
				if err := n.SetLoss(100); err != nil {
					return err
				}
				return n.SetLinkLoss(ipB, ipA, 0)
			},
			abMax: 0, baMin: count, baMax: count,
		},
		{
			name: "healed",
			fault: func(n *memnet.Network) error {
				if err := n.SetLoss(100); err != nil {
					return err
				}
				if err := n.SetLinkLoss(ipB, ipA, 100); err != nil {
					return err
				}
				n.Heal()
				return nil
			},
			abMin: count, abMax: count, baMin: count, baMax: count,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, a, b, _ := newNetwork(t, memnet.DefaultConfig())
			tr := gossipTransports(t, a, b)
			if err := tt.fault(n); err != nil {
				t.Fatalf("fault: %v", err)
			}
			if got := sendPackets(t, tr[ipA], tr[ipB], count); got < tt.abMin || got > tt.abMax {
				t.Errorf("a to b: %d of %d arrived; want %d to %d", got, count, tt.abMin, tt.abMax)
			}
			if got := sendPackets(t, tr[ipB], tr[ipA], count); got < tt.baMin || got > tt.baMax {
				t.Errorf("b to a: %d of %d arrived; want %d to %d", got, count, tt.baMin, tt.baMax)
			}
			st := n.Stats()[ipA]
			if st.PacketsSent != count || st.PacketsDelivered+st.PacketsDropped != count {
				t.Errorf("stats of a: %+v; want %d sent, each delivered or dropped", st, count)
			}
			// Loopback never loses.
			if got := sendPackets(t, tr[ipA], tr[ipA], 10); got != 10 {
				t.Errorf("a to itself: %d of 10 arrived", got)
			}
		})
	}
}

// The same seed loses the same packets; another seed, others.
func TestPacketLossSeeded(t *testing.T) {
	pattern := func(seed uint64) string {
		cfg := memnet.DefaultConfig()
		cfg.Seed = seed
		n, a, b, _ := newNetwork(t, cfg)
		tr := gossipTransports(t, a, b)
		if err := n.SetLoss(50); err != nil {
			t.Fatalf("SetLoss: %v", err)
		}
		var out []byte
		for range 200 {
			out = append(out, byte('0'+sendPackets(t, tr[ipA], tr[ipB], 1)))
		}
		return string(out)
	}
	first, again, other := pattern(7), pattern(7), pattern(8)
	if first != again {
		t.Errorf("seed 7 lost different packets in two runs:\n%s\n%s", first, again)
	}
	if first == other {
		t.Errorf("seeds 7 and 8 lost the same packets: %s", first)
	}
}

// Loss never touches streams.
func TestStreamsNotLost(t *testing.T) {
	n, a, b, _ := newNetwork(t, memnet.DefaultConfig())
	client, server := connect(t, a, b)
	if err := n.SetLoss(100); err != nil {
		t.Fatalf("SetLoss: %v", err)
	}
	want := bytes.Repeat([]byte("0123456789"), 10000)
	done := writeAsync(client, want)
	got := make([]byte, len(want))
	if err := server.SetReadDeadline(time.Now().Add(long)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(server, got); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes under 100%% loss: %v; want all %d", len(got), err, len(want))
	}
	if r := await(t, done); r.err != nil || r.n != len(want) {
		t.Fatalf("Write: %d, %v", r.n, r.err)
	}
}
