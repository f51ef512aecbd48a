package peerrpc

import (
	"net"
	"runtime"
	"sync"
	"time"
)

// batchWriter writes frames to one connection for many goroutines. The
// frames that arrive while a write is in flight go out together in the
// next write, so under load a connection makes one write system call for
// many frames instead of one each.
type batchWriter struct {
	c net.Conn

	// mu guards everything below; cond signals the end of each write.
	mu   sync.Mutex
	cond *sync.Cond
	// pending holds the frames queued since the last write began, and
	// deadline the earliest write deadline among them.
	pending  []byte
	deadline time.Time
	spare    []byte
	// queued counts the frames ever queued, written those whose write
	// ended (in order); writing says a write is in flight.
	queued, written uint64
	writing         bool
	err             error
}

func newBatchWriter(c net.Conn) *batchWriter {
	w := &batchWriter{c: c}
	w.cond = sync.NewCond(&w.mu)
	return w
}

// write queues frame and returns once the write that carries it ended: nil,
// or that write's error (the connection is then broken for every later
// frame too). A zero deadline means none.
func (w *batchWriter) write(frame []byte, deadline time.Time) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	w.pending = append(w.pending, frame...)
	if !deadline.IsZero() && (w.deadline.IsZero() || deadline.Before(w.deadline)) {
		w.deadline = deadline
	}
	w.queued++
	mine := w.queued
	for w.writing && w.written < mine && w.err == nil {
		w.cond.Wait()
	}
	if w.written >= mine || w.err != nil {
		return w.err
	}
	// This goroutine writes everything queued so far, its own frame
	// included; those queued meanwhile wait for the next writer. It yields
	// once first: under load the goroutines about to queue a frame get to
	// add it to this write (one system call for more frames); idle, the
	// yield returns at once.
	w.writing = true
	w.mu.Unlock()
	runtime.Gosched()
	w.mu.Lock()
	batch, upto, dl := w.pending, w.queued, w.deadline
	w.pending, w.spare, w.deadline = w.spare[:0], nil, time.Time{}
	w.mu.Unlock()
	w.c.SetWriteDeadline(dl)
	_, err := w.c.Write(batch)
	w.mu.Lock()
	if cap(batch) <= 1<<20 {
		w.spare = batch[:0]
	}
	if err != nil && w.err == nil {
		w.err = err
	}
	w.written = upto
	w.writing = false
	w.cond.Broadcast()
	return w.err
}
