package memnet_test

import (
	"bytes"
	"errors"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/ringleader/ringleader/simulation/memnet"
)

// gossipTransports binds a gossip transport at port 7946 on each host; the
// test's cleanup shuts them down.
func gossipTransports(t *testing.T, hosts ...*memnet.Host) map[string]*memnet.Transport {
	t.Helper()
	out := make(map[string]*memnet.Transport)
	for _, h := range hosts {
		tr, err := h.GossipTransport(7946)
		if err != nil {
			t.Fatalf("GossipTransport on %s: %v", h.IP(), err)
		}
		t.Cleanup(func() { tr.Shutdown() })
		out[h.IP()] = tr
	}
	return out
}

// received takes the packet waiting in tr's queue, if any. Delivery happens
// within WriteTo, so no waiting is needed.
func received(tr *memnet.Transport) *memberlist.Packet {
	select {
	case p := <-tr.PacketCh():
		return p
	default:
		return nil
	}
}

func TestPacketFaults(t *testing.T) {
	type send struct{ from, to string }
	tests := []struct {
		name      string
		fault     func(n *memnet.Network) error
		delivered []send
		dropped   []send
	}{
		{
			name:      "no fault",
			fault:     func(*memnet.Network) error { return nil },
			delivered: []send{{ipA, ipB}, {ipB, ipA}, {ipA, ipC}, {ipA, ipA}},
		},
		{
			name:      "cut",
			fault:     func(n *memnet.Network) error { return n.Cut(ipA, ipB) },
			delivered: []send{{ipA, ipC}, {ipC, ipB}, {ipA, ipA}},
			dropped:   []send{{ipA, ipB}, {ipB, ipA}},
		},
		{
			name:      "one-way cut",
			fault:     func(n *memnet.Network) error { return n.CutOneWay(ipA, ipB) },
			delivered: []send{{ipB, ipA}, {ipA, ipC}},
			dropped:   []send{{ipA, ipB}},
		},
		{
			name:      "isolate",
			fault:     func(n *memnet.Network) error { return n.Isolate(ipA) },
			delivered: []send{{ipB, ipC}, {ipA, ipA}},
			dropped:   []send{{ipA, ipB}, {ipB, ipA}, {ipC, ipA}},
		},
		{
			name:      "partition of all hosts",
			fault:     func(n *memnet.Network) error { return n.Partition([]string{ipA, ipB}, []string{ipC}) },
			delivered: []send{{ipA, ipB}, {ipB, ipA}},
			dropped:   []send{{ipA, ipC}, {ipC, ipB}},
		},
		{
			name:      "partition leaves unlisted hosts together",
			fault:     func(n *memnet.Network) error { return n.Partition([]string{ipA}) },
			delivered: []send{{ipB, ipC}, {ipC, ipB}},
			dropped:   []send{{ipA, ipB}, {ipC, ipA}},
		},
		{
			name: "partition replaces the earlier one",
			fault: func(n *memnet.Network) error {
				if err := n.Partition([]string{ipA}); err != nil {
					return err
				}
				return n.Partition([]string{ipC})
			},
			delivered: []send{{ipA, ipB}},
			dropped:   []send{{ipA, ipC}, {ipB, ipC}},
		},
		{
			name: "partition and cut add up",
			fault: func(n *memnet.Network) error {
				if err := n.Partition([]string{ipA}); err != nil {
					return err
				}
				return n.Cut(ipB, ipC)
			},
			dropped: []send{{ipA, ipB}, {ipB, ipC}},
		},
		{
			name: "heal removes every fault",
			fault: func(n *memnet.Network) error {
				errs := errors.Join(n.Partition([]string{ipA}), n.Cut(ipB, ipC), n.CutOneWay(ipC, ipA), n.Isolate(ipB))
				n.Heal()
				return errs
			},
			delivered: []send{{ipA, ipB}, {ipB, ipC}, {ipC, ipA}, {ipB, ipA}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, a, b, c := newNetwork(t, memnet.DefaultConfig())
			tr := gossipTransports(t, a, b, c)
			if err := tt.fault(n); err != nil {
				t.Fatalf("fault: %v", err)
			}
			check := func(s send, want bool) {
				t.Helper()
				payload := []byte(s.from + ">" + s.to)
				if _, err := tr[s.from].WriteTo(payload, s.to+":7946"); err != nil {
					t.Fatalf("WriteTo %s from %s: %v", s.to, s.from, err)
				}
				p := received(tr[s.to])
				switch {
				case want && p == nil:
					t.Errorf("packet %s -> %s dropped; want it delivered", s.from, s.to)
				case want && (!bytes.Equal(p.Buf, payload) || p.From.String() != s.from+":7946"):
					t.Errorf("packet %s -> %s arrived as %q from %s", s.from, s.to, p.Buf, p.From)
				case !want && p != nil:
					t.Errorf("packet %s -> %s delivered; want it dropped", s.from, s.to)
				}
			}
			for _, s := range tt.delivered {
				check(s, true)
			}
			for _, s := range tt.dropped {
				check(s, false)
			}
		})
	}
}

func TestPacketDrops(t *testing.T) {
	cfg := memnet.DefaultConfig()
	cfg.PacketQueue = 2
	n, a, b, _ := newNetwork(t, cfg)
	tr := gossipTransports(t, a, b)
	send := func(from *memnet.Transport, addr string, payload []byte) {
		t.Helper()
		if _, err := from.WriteTo(payload, addr); err != nil {
			t.Fatalf("WriteTo(%s): %v", addr, err)
		}
	}

	// A full queue drops; the sender's buffer may be reused.
	buf := []byte("one")
	send(tr[ipA], ipB+":7946", buf)
	copy(buf, "two")
	send(tr[ipA], ipB+":7946", buf)
	send(tr[ipA], ipB+":7946", []byte("three"))
	for _, want := range []string{"one", "two"} {
		if p := received(tr[ipB]); p == nil || string(p.Buf) != want {
			t.Fatalf("received %v; want %q", p, want)
		}
	}
	if p := received(tr[ipB]); p != nil {
		t.Fatalf("received %q; want the third packet dropped at the full queue", p.Buf)
	}

	// Nobody bound at the port, or no such host: dropped without an error.
	send(tr[ipA], ipB+":9999", []byte("x"))
	send(tr[ipA], "10.9.9.9:7946", []byte("x"))

	// A shut-down receiver drops; a shut-down sender fails.
	if err := tr[ipB].Shutdown(); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := tr[ipB].Shutdown(); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	send(tr[ipA], ipB+":7946", []byte("x"))
	if p := received(tr[ipB]); p != nil {
		t.Fatalf("a shut-down transport received %q", p.Buf)
	}
	if _, err := tr[ipB].WriteTo([]byte("x"), ipA+":7946"); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("WriteTo after Shutdown: %v; want net.ErrClosed", err)
	}

	// Bad addresses and oversized packets fail.
	for _, addr := range []string{"10.0.0.2", "node2:7946", "10.0.0.2:0", ":7946"} {
		if _, err := tr[ipA].WriteTo([]byte("x"), addr); err == nil {
			t.Errorf("WriteTo(%q) succeeded; want an error", addr)
		}
	}
	if _, err := tr[ipA].WriteTo(make([]byte, 65508), ipB+":7946"); !errors.Is(err, syscall.EMSGSIZE) {
		t.Errorf("WriteTo of 65508 bytes: %v; want EMSGSIZE", err)
	}

	got := n.Stats()[ipA]
	want := memnet.HostStats{
		PacketsSent: 6, PacketsDelivered: 2, PacketsDropped: 4,
		PacketBytesSent: 3 + 3 + 5 + 1 + 1 + 1, PacketBytesDelivered: 6, PacketBytesDropped: 5 + 3,
	}
	if got != want {
		t.Errorf("stats of %s:\n got %+v\nwant %+v", ipA, got, want)
	}
	if got := n.Stats()[ipB]; got.PacketsReceived != 2 || got.PacketBytesReceived != 6 {
		t.Errorf("stats of %s: received %d packets, %d bytes; want 2, 6", ipB, got.PacketsReceived, got.PacketBytesReceived)
	}
}

func TestPacketTimestamp(t *testing.T) {
	_, a, b, _ := newNetwork(t, memnet.DefaultConfig())
	tr := gossipTransports(t, a, b)
	sent, err := tr[ipA].WriteToAddress([]byte("x"), memberlist.Address{Addr: ipB + ":7946", Name: "b"})
	if err != nil {
		t.Fatalf("WriteToAddress: %v", err)
	}
	p := received(tr[ipB])
	if p == nil || !p.Timestamp.Equal(sent) || time.Since(sent) > long {
		t.Fatalf("packet %+v; want one stamped %v", p, sent)
	}
}

func TestGossipTransportBinding(t *testing.T) {
	tests := []struct {
		name      string
		port      int
		listen    string // bound with Listen first; "" for nothing
		gossip    int    // bound with GossipTransport first; 0 for nothing
		wantErr   string // a part of the error; "" for none
		wantInUse bool
	}{
		{name: "free", port: 7946},
		{name: "ephemeral", port: 0},
		{name: "listener on the port", port: 7946, listen: ":7946", wantInUse: true},
		{name: "gossip on the port", port: 7946, gossip: 7946, wantInUse: true},
		{name: "listener on another port", port: 7946, listen: ":7947"},
		{name: "negative", port: -1, wantErr: "not from 0 to 65535"},
		{name: "too large", port: 65536, wantErr: "not from 0 to 65535"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, a, _, _ := newNetwork(t, memnet.DefaultConfig())
			if tt.listen != "" {
				ln, err := a.Listen(tt.listen)
				if err != nil {
					t.Fatalf("Listen: %v", err)
				}
				defer ln.Close()
			}
			if tt.gossip != 0 {
				gossipTransports(t, a)
			}
			tr, err := a.GossipTransport(tt.port)
			switch {
			case tt.wantInUse:
				if !errors.Is(err, syscall.EADDRINUSE) {
					t.Fatalf("GossipTransport(%d): %v; want EADDRINUSE", tt.port, err)
				}
				return
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("GossipTransport(%d): %v; want an error containing %q", tt.port, err, tt.wantErr)
				}
				return
			case err != nil:
				t.Fatalf("GossipTransport(%d): %v", tt.port, err)
			}
			defer tr.Shutdown()
			ip, port, err := tr.FinalAdvertiseAddr("", 7946)
			if err != nil || ip.String() != ipA || (tt.port != 0 && port != tt.port) || port == 0 {
				t.Fatalf("FinalAdvertiseAddr = %v, %d, %v; want %s and the bound port", ip, port, err, ipA)
			}
			if tr.Addr() != net.JoinHostPort(ipA, strconv.Itoa(port)) {
				t.Fatalf("Addr = %s; want port %d", tr.Addr(), port)
			}
			// Shutdown frees the port for packets and streams.
			tr.Shutdown()
			again, err := a.GossipTransport(port)
			if err != nil {
				t.Fatalf("GossipTransport(%d) after Shutdown: %v", port, err)
			}
			again.Shutdown()
		})
	}
}

func TestFinalAdvertiseAddrOverride(t *testing.T) {
	_, a, _, _ := newNetwork(t, memnet.DefaultConfig())
	tr := gossipTransports(t, a)[ipA]
	ip, port, err := tr.FinalAdvertiseAddr("192.0.2.7", 8000)
	if err != nil || ip.String() != "192.0.2.7" || port != 8000 {
		t.Fatalf("FinalAdvertiseAddr(192.0.2.7, 8000) = %v, %d, %v", ip, port, err)
	}
	if _, _, err := tr.FinalAdvertiseAddr("node1", 8000); err == nil {
		t.Fatalf("FinalAdvertiseAddr(node1) succeeded; want an error")
	}
}

func TestTransportStreams(t *testing.T) {
	_, a, b, _ := newNetwork(t, memnet.DefaultConfig())
	tr := gossipTransports(t, a, b)
	c, err := tr[ipA].DialAddressTimeout(memberlist.Address{Addr: ipB + ":7946", Name: "b"}, long)
	if err != nil {
		t.Fatalf("DialAddressTimeout: %v", err)
	}
	defer c.Close()
	var server net.Conn
	select {
	case server = <-tr[ipB].StreamCh():
	default:
		t.Fatalf("no stream in StreamCh after the dial returned")
	}
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if r := await(t, readAsync(server, 4)); r.data != "ping" {
		t.Fatalf("server read %q, %v", r.data, r.err)
	}

	// Shutdown closes the streams it accepted and refuses new dials; a
	// reader blocked on such a stream wakes up.
	blocked := readAsync(server, 1)
	pending(t, blocked, "read with nothing sent")
	tr[ipB].Shutdown()
	if r := await(t, blocked); !errors.Is(r.err, net.ErrClosed) {
		t.Fatalf("blocked read after Shutdown: %v; want net.ErrClosed", r.err)
	}
	if r := await(t, readAsync(c, 1)); r.err == nil {
		t.Fatalf("dialer read %q after the peer's Shutdown; want io.EOF", r.data)
	}
	if _, err := tr[ipA].DialTimeout(ipB+":7946", long); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial after Shutdown: %v; want ECONNREFUSED", err)
	}
	if _, err := tr[ipB].DialTimeout(ipA+":7946", long); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("dial from a shut-down transport: %v; want net.ErrClosed", err)
	}
}
