package memnet

// Pause stops a host as SIGSTOP or a long GC pause would: its network and
// its clock stand still until Resume or Heal. Meanwhile
//
//   - packets to and from it are dropped (a stopped process neither sends
//     nor drains its socket, whose small buffer soon overflows);
//   - stream bytes to and from it wait in their buffers, not lost, and
//     flow on resume, as TCP retransmits to a stopped peer; writers block
//     only once a buffer is full, and never past their deadline;
//   - dials to and from it wait, as for any blocked link;
//   - its Clock reads the moment of the pause and its timers do not fire;
//     on resume the clock jumps to where it would have been and timers
//     that came due fire at once.
//
// The host's goroutines (those of the code running on it) are not stopped:
// memnet cannot, so they see a silent network and a frozen clock instead.
// Traffic of a host to itself is not held. Pausing a paused host does
// nothing. It fails, changing nothing, if the IP names no host
// (ErrUnknownHost).
func (n *Network) Pause(ip string) error {
	ips, err := n.hostIPs(ip)
	if err != nil {
		return err
	}
	h := n.host(ips[0])
	return n.change(func(next *faults) error {
		next.paused[ips[0]] = true
		h.clock.pause()
		return nil
	})
}

// Resume undoes Pause: held stream bytes and waiting dials go through, and
// the host's clock jumps forward by the length of the pause. Resuming a
// host that is not paused does nothing. It fails, changing nothing, if the
// IP names no host (ErrUnknownHost).
func (n *Network) Resume(ip string) error {
	ips, err := n.hostIPs(ip)
	if err != nil {
		return err
	}
	h := n.host(ips[0])
	return n.change(func(next *faults) error {
		delete(next.paused, ips[0])
		h.clock.resume()
		return nil
	})
}
