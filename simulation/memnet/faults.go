package memnet

import (
	"fmt"
	"maps"
	"net/netip"
	"time"
)

// faults is one immutable picture of everything wrong with the network.
// The fault methods build a new picture and swap it in whole, so each fault
// is applied atomically: no packet or stream byte ever sees half of one.
// Anything waiting for a link to open (a blocked reader, a dial) watches
// changed, which is closed when the picture is replaced.
type faults struct {
	// group is the partition group of each listed host; hosts not listed
	// are in group 0. nil means no partition.
	group map[netip.Addr]int
	// isolated hosts can reach no other host and no other host them.
	isolated map[netip.Addr]bool
	// cut holds the directed links that carry nothing.
	cut map[link]bool
	// paused hosts neither send nor receive (see Pause).
	paused map[netip.Addr]bool

	// loss is the percentage of packets lost on every link between two
	// hosts; linkLoss overrides it for one directed link.
	loss     float64
	linkLoss map[link]float64
	// latency delays traffic on every link between two hosts; linkLatency
	// overrides it for one directed link.
	latency     latency
	linkLatency map[link]latency

	changed chan struct{}
}

// latency is the delay of one link: base plus a uniformly random extra of
// up to jitter, drawn per packet and per stream write.
type latency struct{ base, jitter time.Duration }

// link is one direction between two hosts.
type link struct{ from, to netip.Addr }

func newFaults() *faults {
	return &faults{
		isolated:    make(map[netip.Addr]bool),
		cut:         make(map[link]bool),
		paused:      make(map[netip.Addr]bool),
		linkLoss:    make(map[link]float64),
		linkLatency: make(map[link]latency),
		changed:     make(chan struct{}),
	}
}

// verdict is what the network does, right now, with traffic on one link.
type verdict struct {
	// blocked: packets are dropped, stream bytes wait in their buffer
	// (as TCP retransmits into a partition), dials wait for a handshake.
	// A paused host blocks every link to and from it.
	blocked bool
	// loss is the percentage of packets dropped (streams lose nothing).
	loss float64
	// latency delays packets and stream bytes.
	latency latency
}

// route is the one place where the network decides the fate of traffic
// from one host to another: every packet, every stream read and write and
// every dial asks it. A host's traffic to itself meets no fault. Links cut
// by a partition, a cut, an isolation or a paused host at either end are
// blocked; loss and latency come from the link's own setting, else the
// network-wide one.
func (f *faults) route(from, to netip.Addr) verdict {
	if from == to {
		return verdict{}
	}
	blocked := f.isolated[from] || f.isolated[to] || f.cut[link{from, to}]
	if f.group != nil && f.group[from] != f.group[to] {
		blocked = true
	}
	if f.paused[from] || f.paused[to] {
		blocked = true
	}
	v := verdict{blocked: blocked, loss: f.loss, latency: f.latency}
	if p, ok := f.linkLoss[link{from, to}]; ok {
		v.loss = p
	}
	if l, ok := f.linkLatency[link{from, to}]; ok {
		v.latency = l
	}
	return v
}

// change applies edit to a copy of the current picture and swaps the copy
// in, waking everything that waits on a link; if edit fails nothing
// changes.
func (n *Network) change(edit func(next *faults) error) error {
	n.faultMu.Lock()
	defer n.faultMu.Unlock()
	cur := n.faults.Load()
	next := &faults{
		group:       maps.Clone(cur.group),
		isolated:    maps.Clone(cur.isolated),
		cut:         maps.Clone(cur.cut),
		paused:      maps.Clone(cur.paused),
		loss:        cur.loss,
		linkLoss:    maps.Clone(cur.linkLoss),
		latency:     cur.latency,
		linkLatency: maps.Clone(cur.linkLatency),
		changed:     make(chan struct{}),
	}
	if err := edit(next); err != nil {
		return err
	}
	n.faults.Store(next)
	close(cur.changed)
	return nil
}

// hostIPs parses ips and checks that each names a host.
func (n *Network) hostIPs(ips ...string) ([]netip.Addr, error) {
	out := make([]netip.Addr, len(ips))
	for i, s := range ips {
		ip, err := parseHostIP(s)
		if err != nil {
			return nil, err
		}
		if n.host(ip) == nil {
			return nil, fmt.Errorf("memnet: %s: %w", ip, ErrUnknownHost)
		}
		out[i] = ip
	}
	return out, nil
}

// Partition splits the network: hosts (by IP) in different groups cannot
// reach each other in either direction. Hosts not listed in any group,
// including hosts added later, form one more group together, so
// Partition([]string{a, b}) cuts a and b off from the rest of the network.
// It replaces any earlier partition; cuts and isolations stay until Heal.
// Partition() with no groups removes the partition.
//
// It fails, changing nothing, if an IP names no host (ErrUnknownHost) or
// appears twice.
func (n *Network) Partition(groups ...[]string) error {
	group := make(map[netip.Addr]int)
	for i, g := range groups {
		ips, err := n.hostIPs(g...)
		if err != nil {
			return err
		}
		for _, ip := range ips {
			if _, dup := group[ip]; dup {
				return fmt.Errorf("memnet: partition: host %s is listed twice; each host goes in one group", ip)
			}
			group[ip] = i + 1
		}
	}
	if len(groups) == 0 {
		group = nil
	}
	return n.change(func(next *faults) error {
		next.group = group
		return nil
	})
}

// Cut stops all traffic between hosts a and b, both ways. Other faults
// stay. It fails, changing nothing, if an IP names no host
// (ErrUnknownHost) or a and b are the same host.
func (n *Network) Cut(a, b string) error {
	ips, err := n.linkIPs(a, b)
	if err != nil {
		return err
	}
	return n.change(func(next *faults) error {
		next.cut[link{ips[0], ips[1]}] = true
		next.cut[link{ips[1], ips[0]}] = true
		return nil
	})
}

// CutOneWay stops traffic from one host to another; the other direction
// still flows. Packets from→to are dropped, stream bytes from→to wait in
// their buffer, and a dial either way waits, because a TCP handshake needs
// both directions. Other faults stay. It fails, changing nothing, if an IP
// names no host (ErrUnknownHost) or from and to are the same host.
func (n *Network) CutOneWay(from, to string) error {
	ips, err := n.linkIPs(from, to)
	if err != nil {
		return err
	}
	return n.change(func(next *faults) error {
		next.cut[link{ips[0], ips[1]}] = true
		return nil
	})
}

func (n *Network) linkIPs(a, b string) ([]netip.Addr, error) {
	ips, err := n.hostIPs(a, b)
	if err != nil {
		return nil, err
	}
	if ips[0] == ips[1] {
		return nil, fmt.Errorf("memnet: cannot cut host %s from itself; name two hosts", ips[0])
	}
	return ips, nil
}

// Isolate cuts a host off from every other host, both ways, including
// hosts added later; it can still talk to itself. Other faults stay. It
// fails, changing nothing, if the IP names no host (ErrUnknownHost).
func (n *Network) Isolate(ip string) error {
	ips, err := n.hostIPs(ip)
	if err != nil {
		return err
	}
	return n.change(func(next *faults) error {
		next.isolated[ips[0]] = true
		return nil
	})
}

// Heal removes every fault at once: the partition, cuts, isolations, packet
// loss and latency, and it resumes every paused host (see Resume). Stream
// bytes held by a fault flow again, and waiting dials go through. Bytes and
// packets already delayed by latency keep their delivery time. Clock skew
// and drift (SetClock) are not network faults and stay.
func (n *Network) Heal() {
	_ = n.change(func(next *faults) error {
		next.group = nil
		clear(next.isolated)
		clear(next.cut)
		next.loss = 0
		clear(next.linkLoss)
		next.latency = latency{}
		clear(next.linkLatency)
		for ip := range next.paused {
			if h := n.host(ip); h != nil {
				h.clock.resume()
			}
		}
		clear(next.paused)
		return nil
	})
}
