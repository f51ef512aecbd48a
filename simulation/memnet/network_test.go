package memnet_test

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/ringleader/ringleader/simulation/memnet"
)

func TestAddHost(t *testing.T) {
	tests := []struct {
		name    string
		ip      string
		wantErr string // a part of the error; "" for none
		wantIP  string
	}{
		{name: "ipv4", ip: "10.0.0.9", wantIP: "10.0.0.9"},
		{name: "ipv6", ip: "fd00::9", wantIP: "fd00::9"},
		{name: "ipv4 mapped in ipv6", ip: "::ffff:10.0.0.8", wantIP: "10.0.0.8"},
		{name: "taken", ip: ipA, wantErr: "already on the network"},
		{name: "taken spelled otherwise", ip: "::ffff:" + ipA, wantErr: "already on the network"},
		{name: "host name", ip: "node1", wantErr: "not an ip literal"},
		{name: "with port", ip: "10.0.0.9:80", wantErr: "not an ip literal"},
		{name: "empty", ip: "", wantErr: "not an ip literal"},
		{name: "unspecified", ip: "0.0.0.0", wantErr: "unicast"},
		{name: "multicast", ip: "224.0.0.1", wantErr: "unicast"},
		{name: "zone", ip: "fe80::1%eth0", wantErr: "unicast"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, _, _, _ := newNetwork(t, memnet.DefaultConfig())
			h, err := n.AddHost(tt.ip)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("AddHost(%q) = %v; want an error containing %q", tt.ip, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("AddHost(%q): %v", tt.ip, err)
			}
			if h.IP() != tt.wantIP || h.Network() != n {
				t.Fatalf("host IP %s on %p; want %s on %p", h.IP(), h.Network(), tt.wantIP, n)
			}
			if _, ok := n.Stats()[tt.wantIP]; !ok {
				t.Fatalf("Stats has no entry for %s", tt.wantIP)
			}
		})
	}
	t.Run("duplicate is ErrHostExists", func(t *testing.T) {
		n, _, _, _ := newNetwork(t, memnet.DefaultConfig())
		if _, err := n.AddHost(ipB); !errors.Is(err, memnet.ErrHostExists) {
			t.Fatalf("AddHost(%s) twice: %v; want ErrHostExists", ipB, err)
		}
	})
}

func TestFaultArguments(t *testing.T) {
	tests := []struct {
		name    string
		apply   func(n *memnet.Network) error
		wantErr error  // matched with errors.Is; nil to match by text only
		wantMsg string // a part of the error; "" for no error
	}{
		{name: "partition", apply: func(n *memnet.Network) error { return n.Partition([]string{ipA}, []string{ipB, ipC}) }},
		{name: "partition none", apply: func(n *memnet.Network) error { return n.Partition() }},
		{name: "partition unknown host", apply: func(n *memnet.Network) error { return n.Partition([]string{ipA, "10.9.9.9"}) }, wantErr: memnet.ErrUnknownHost, wantMsg: "10.9.9.9"},
		{name: "partition host twice", apply: func(n *memnet.Network) error { return n.Partition([]string{ipA}, []string{ipB, ipA}) }, wantMsg: "listed twice"},
		{name: "partition bad ip", apply: func(n *memnet.Network) error { return n.Partition([]string{"a"}) }, wantMsg: "not an ip literal"},
		{name: "cut", apply: func(n *memnet.Network) error { return n.Cut(ipA, ipB) }},
		{name: "cut unknown host", apply: func(n *memnet.Network) error { return n.Cut(ipA, "10.9.9.9") }, wantErr: memnet.ErrUnknownHost},
		{name: "cut from itself", apply: func(n *memnet.Network) error { return n.Cut(ipA, ipA) }, wantMsg: "from itself"},
		{name: "one-way cut", apply: func(n *memnet.Network) error { return n.CutOneWay(ipA, ipB) }},
		{name: "one-way cut unknown host", apply: func(n *memnet.Network) error { return n.CutOneWay("10.9.9.9", ipB) }, wantErr: memnet.ErrUnknownHost},
		{name: "one-way cut from itself", apply: func(n *memnet.Network) error { return n.CutOneWay(ipB, ipB) }, wantMsg: "from itself"},
		{name: "isolate", apply: func(n *memnet.Network) error { return n.Isolate(ipC) }},
		{name: "isolate unknown host", apply: func(n *memnet.Network) error { return n.Isolate("10.9.9.9") }, wantErr: memnet.ErrUnknownHost},
		{name: "pause", apply: func(n *memnet.Network) error { return n.Pause(ipC) }},
		{name: "pause unknown host", apply: func(n *memnet.Network) error { return n.Pause("10.9.9.9") }, wantErr: memnet.ErrUnknownHost},
		{name: "resume unknown host", apply: func(n *memnet.Network) error { return n.Resume("10.9.9.9") }, wantErr: memnet.ErrUnknownHost},
		{name: "clock", apply: func(n *memnet.Network) error { return n.SetClock(ipA, time.Second, 0.001) }},
		{name: "clock drift too large", apply: func(n *memnet.Network) error { return n.SetClock(ipA, 0, 0.5) }, wantMsg: "MaxClockDrift"},
		{name: "clock unknown host", apply: func(n *memnet.Network) error { return n.SetClock("10.9.9.9", 0, 0) }, wantErr: memnet.ErrUnknownHost},
		{name: "loss", apply: func(n *memnet.Network) error { return n.SetLoss(12.5) }},
		{name: "loss negative", apply: func(n *memnet.Network) error { return n.SetLoss(-1) }, wantMsg: "not from 0 to 100"},
		{name: "loss over 100", apply: func(n *memnet.Network) error { return n.SetLoss(101) }, wantMsg: "not from 0 to 100"},
		{name: "loss NaN", apply: func(n *memnet.Network) error { return n.SetLoss(math.NaN()) }, wantMsg: "not from 0 to 100"},
		{name: "link loss", apply: func(n *memnet.Network) error { return n.SetLinkLoss(ipA, ipC, 50) }},
		{name: "link loss unknown host", apply: func(n *memnet.Network) error { return n.SetLinkLoss(ipA, "10.9.9.9", 50) }, wantErr: memnet.ErrUnknownHost},
		{name: "link loss to itself", apply: func(n *memnet.Network) error { return n.SetLinkLoss(ipA, ipA, 50) }, wantMsg: "from itself"},
		{name: "link loss bad percent", apply: func(n *memnet.Network) error { return n.SetLinkLoss(ipA, ipB, 200) }, wantMsg: "not from 0 to 100"},
		{name: "latency negative", apply: func(n *memnet.Network) error { return n.SetLatency(-time.Second, 0) }, wantMsg: "negative"},
		{name: "jitter negative", apply: func(n *memnet.Network) error { return n.SetLatency(0, -1) }, wantMsg: "negative"},
		{name: "link latency unknown host", apply: func(n *memnet.Network) error { return n.SetLinkLatency("10.9.9.9", ipB, time.Second, 0) }, wantErr: memnet.ErrUnknownHost},
		{name: "link latency negative", apply: func(n *memnet.Network) error { return n.SetLinkLatency(ipA, ipB, -1, 0) }, wantMsg: "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, a, b, _ := newNetwork(t, memnet.DefaultConfig())
			err := tt.apply(n)
			if tt.wantErr == nil && tt.wantMsg == "" {
				if err != nil {
					t.Fatalf("got %v; want no error", err)
				}
				return
			}
			if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("got %v; want %v containing %q", err, tt.wantErr, tt.wantMsg)
			}
			// A rejected fault changes nothing: a and b still talk.
			client, server := connect(t, a, b)
			if _, err := client.Write([]byte("x")); err != nil {
				t.Fatalf("Write after a rejected fault: %v", err)
			}
			if r := await(t, readAsync(server, 1)); r.err != nil || r.data != "x" {
				t.Fatalf("Read after a rejected fault: %q, %v", r.data, r.err)
			}
		})
	}
}
