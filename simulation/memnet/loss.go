package memnet

import (
	"fmt"
	"time"
)

// SetLoss makes every link between two hosts drop percent (0 to 100) of its
// packets, chosen by the network's seeded random source; links given their
// own rate by SetLinkLoss keep it. Streams lose nothing, as TCP retransmits
// (give them latency to make them slow). SetLoss(0) removes the
// network-wide loss; Heal removes all. It fails, changing nothing, for a
// percent outside 0 to 100.
func (n *Network) SetLoss(percent float64) error {
	if err := checkPercent(percent); err != nil {
		return err
	}
	return n.change(func(next *faults) error {
		next.loss = percent
		return nil
	})
}

// SetLinkLoss makes the link from one host to another drop percent (0 to
// 100) of its packets, in place of the network-wide rate of SetLoss; the
// other direction is not changed. SetLinkLoss(from, to, 0) makes the link
// lossless even under a network-wide loss; Heal removes the setting. It
// fails, changing nothing, if an IP names no host (ErrUnknownHost), from and
// to are the same host, or percent is outside 0 to 100.
func (n *Network) SetLinkLoss(from, to string, percent float64) error {
	if err := checkPercent(percent); err != nil {
		return err
	}
	ips, err := n.linkIPs(from, to)
	if err != nil {
		return err
	}
	return n.change(func(next *faults) error {
		next.linkLoss[link{ips[0], ips[1]}] = percent
		return nil
	})
}

// SetLatency delays traffic on every link between two hosts by delay plus
// a random extra of up to jitter, drawn from the network's seeded random
// source; links given their own by SetLinkLatency keep it. A packet arrives
// after its delay (so packets may overtake each other, as datagrams do); a
// stream write's bytes become readable after theirs, never before the
// bytes written earlier, as TCP keeps order. A sender never waits for the
// delay: packets are handed to a network timer, stream bytes wait in the
// stream's buffer. Dials are not delayed. SetLatency(0, 0) removes the
// network-wide latency; Heal removes all. A network with latency should be
// closed (Network.Close) when done with, to stop the timers of packets
// still in flight. It fails, changing nothing, for a negative duration.
func (n *Network) SetLatency(delay, jitter time.Duration) error {
	if err := checkLatency(delay, jitter); err != nil {
		return err
	}
	return n.change(func(next *faults) error {
		next.latency = latency{delay, jitter}
		return nil
	})
}

// SetLinkLatency sets the latency of the link from one host to another, in
// place of the network-wide one of SetLatency; the other direction is not
// changed. It fails, changing nothing, if an IP names no host
// (ErrUnknownHost), from and to are the same host, or a duration is
// negative.
func (n *Network) SetLinkLatency(from, to string, delay, jitter time.Duration) error {
	if err := checkLatency(delay, jitter); err != nil {
		return err
	}
	ips, err := n.linkIPs(from, to)
	if err != nil {
		return err
	}
	return n.change(func(next *faults) error {
		next.linkLatency[link{ips[0], ips[1]}] = latency{delay, jitter}
		return nil
	})
}

func checkPercent(p float64) error {
	if !(p >= 0 && p <= 100) { // also catches NaN
		return fmt.Errorf("memnet: loss %v%% is not from 0 to 100", p)
	}
	return nil
}

func checkLatency(delay, jitter time.Duration) error {
	if delay < 0 || jitter < 0 {
		return fmt.Errorf("memnet: latency %v with jitter %v: neither may be negative", delay, jitter)
	}
	return nil
}

// lose draws whether a packet with verdict v is lost.
func (n *Network) lose(v verdict) bool {
	switch {
	case v.loss <= 0:
		return false
	case v.loss >= 100:
		return true
	}
	n.randMu.Lock()
	defer n.randMu.Unlock()
	return n.rand.Float64()*100 < v.loss
}

// delay draws the delay of one packet or stream write with verdict v.
func (n *Network) delay(v verdict) time.Duration {
	d := v.latency.base
	if v.latency.jitter > 0 {
		n.randMu.Lock()
		d += time.Duration(n.rand.Int64N(int64(v.latency.jitter) + 1))
		n.randMu.Unlock()
	}
	return d
}
