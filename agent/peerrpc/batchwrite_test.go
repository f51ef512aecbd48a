package peerrpc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// Concurrent writers' frames all arrive whole, none interleaved with
// another, each writer's in its own order.
func TestBatchWriterKeepsFramesWhole(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	w := newBatchWriter(a)
	const writers, each = 16, 200
	got := make(chan map[[2]uint32]int, 1)
	go func() {
		seen := map[[2]uint32]int{}
		next := map[uint32]uint32{}
		for range writers * each {
			var hdr [12]byte
			if _, err := io.ReadFull(b, hdr[:]); err != nil {
				t.Error(err)
				break
			}
			n := binary.BigEndian.Uint32(hdr[:4])
			who, seq := binary.BigEndian.Uint32(hdr[4:8]), binary.BigEndian.Uint32(hdr[8:12])
			body := make([]byte, n)
			if _, err := io.ReadFull(b, body); err != nil {
				t.Error(err)
				break
			}
			if !bytes.Equal(body, bytes.Repeat([]byte{byte(who)}, int(n))) {
				t.Errorf("frame %d/%d: body torn", who, seq)
			}
			if seq != next[who] {
				t.Errorf("writer %d: frame %d after %d", who, seq, next[who])
			}
			next[who] = seq + 1
			seen[[2]uint32{who, seq}]++
		}
		got <- seen
	}()
	var wg sync.WaitGroup
	for who := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := range each {
				n := 1 + (who*7+seq*13)%300
				frame := binary.BigEndian.AppendUint32(nil, uint32(n))
				frame = binary.BigEndian.AppendUint32(frame, uint32(who))
				frame = binary.BigEndian.AppendUint32(frame, uint32(seq))
				frame = append(frame, bytes.Repeat([]byte{byte(who)}, n)...)
				if err := w.write(frame, time.Now().Add(5*time.Second)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	seen := <-got
	if len(seen) != writers*each {
		t.Fatalf("%d distinct frames arrived, want %d", len(seen), writers*each)
	}
}

// A failed write fails that frame and every later one.
func TestBatchWriterReportsTheBrokenConnection(t *testing.T) {
	a, b := net.Pipe()
	b.Close()
	w := newBatchWriter(a)
	if err := w.write([]byte("x"), time.Time{}); err == nil {
		t.Fatal("write to a closed pipe succeeded")
	}
	if err := w.write([]byte("y"), time.Time{}); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("later write: %v, want the first error", err)
	}
}
