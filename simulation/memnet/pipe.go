package memnet

import (
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"
)

// pipe is one direction of a stream: the bytes one conn writes and its peer
// reads, held in a buffer of at most limit bytes. Whether held bytes may be
// read is decided when they are read, by the network's route for the link,
// so bytes written while the link is cut wait in the buffer and flow when it
// heals, as TCP retransmits into a partition. Latency is decided when bytes
// are written: each write's bytes carry the time they become readable.
type pipe struct {
	net                *Network
	from, to           netip.Addr
	fromStats, toStats *hostStats
	limit              int

	// mu guards chunks, size, fin, reset and changed.
	mu sync.Mutex
	// chunks are the written, unread bytes, oldest first, one per write.
	chunks []chunk
	// size is the number of bytes in chunks.
	size int
	// fin: the writer closed; after the chunks the reader gets io.EOF.
	fin bool
	// reset: the reader closed; the chunks were discarded and writes fail
	// once the link lets the reset reach the writer.
	reset bool
	// changed is closed and replaced on every change of the fields above.
	changed chan struct{}
}

// chunk is the bytes of one write, readable from ready on (the zero time:
// at once). Ready times never decrease along a pipe's chunks.
type chunk struct {
	data  []byte
	ready time.Time
}

func newPipe(n *Network, from, to *Host) *pipe {
	return &pipe{
		net:       n,
		from:      from.ip,
		to:        to.ip,
		fromStats: from.stats,
		toStats:   to.stats,
		limit:     n.cfg.StreamBuffer,
		changed:   make(chan struct{}),
	}
}

// notify wakes everything waiting on the pipe. The caller holds p.mu.
func (p *pipe) notify() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// read moves up to len(b) readable bytes into b, or reports eof once the
// writer has closed and every byte before its close was read. When there is
// nothing to read yet it returns n = 0 and what to wait for: one channel
// closes when the pipe changes, the other when the faults do, and wait, if
// positive, is how long until latency lets the next bytes be read.
func (p *pipe) read(b []byte) (n int, eof bool, pipeChanged, faultsChanged <-chan struct{}, wait time.Duration) {
	f := p.net.faults.Load()
	p.mu.Lock()
	defer p.mu.Unlock()
	if (p.size == 0 && !p.fin) || f.route(p.from, p.to).blocked {
		return 0, false, p.changed, f.changed, 0
	}
	if p.size == 0 {
		return 0, true, nil, nil, 0
	}
	if ready := p.chunks[0].ready; !ready.IsZero() {
		if wait := time.Until(ready); wait > 0 {
			return 0, false, p.changed, f.changed, wait
		}
	}
	now := time.Now()
	for n < len(b) && len(p.chunks) > 0 && !p.chunks[0].ready.After(now) {
		k := copy(b[n:], p.chunks[0].data)
		n += k
		if k < len(p.chunks[0].data) {
			p.chunks[0].data = p.chunks[0].data[k:]
			break
		}
		p.chunks[0] = chunk{}
		p.chunks = p.chunks[1:]
	}
	p.size -= n
	if p.size == 0 {
		p.chunks = nil
	}
	p.fromStats.streamBytesDelivered.Add(uint64(n))
	p.toStats.streamBytesReceived.Add(uint64(n))
	p.notify()
	return n, false, nil, nil, 0
}

// write puts as much of b as fits into the buffer and returns how much. If
// nothing fits it returns n = 0 and a channel that closes when the pipe
// changes. It fails with syscall.ECONNRESET once the reader has closed and
// the link lets the reset through; until then bytes written to a closed
// reader vanish, as they would into a partition.
func (p *pipe) write(b []byte) (n int, err error, changed <-chan struct{}) {
	f := p.net.faults.Load()
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.fin:
		return 0, net.ErrClosed, nil
	case p.reset && !f.route(p.to, p.from).blocked:
		return 0, syscall.ECONNRESET, nil
	case p.reset:
		p.fromStats.streamBytesSent.Add(uint64(len(b)))
		p.fromStats.streamBytesDropped.Add(uint64(len(b)))
		return len(b), nil, nil
	}
	n = min(p.limit-p.size, len(b))
	if n == 0 {
		return 0, nil, p.changed
	}
	c := chunk{data: append([]byte(nil), b[:n]...)}
	if d := p.net.delay(f.route(p.from, p.to)); d > 0 {
		c.ready = time.Now().Add(d)
	}
	if last := len(p.chunks) - 1; last >= 0 && c.ready.Before(p.chunks[last].ready) {
		c.ready = p.chunks[last].ready // TCP keeps order
	}
	p.chunks = append(p.chunks, c)
	p.size += n
	p.fromStats.streamBytesSent.Add(uint64(n))
	p.notify()
	return n, nil, nil
}

// closeWrite records that the writer closed.
func (p *pipe) closeWrite() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fin = true
	p.notify()
}

// closeRead records that the reader closed, discarding the unread bytes.
func (p *pipe) closeRead() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fromStats.streamBytesDropped.Add(uint64(p.size))
	p.chunks, p.size, p.reset = nil, 0, true
	p.notify()
}
