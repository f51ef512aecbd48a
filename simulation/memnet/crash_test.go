package memnet_test

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/ringleader/ringleader/simulation/memnet"
)

// A crashed host's sockets all close at once; its peers read what it sent,
// then io.EOF; its ports are free for a restart at once.
func TestCrash(t *testing.T) {
	n, a, b, c := newNetwork(t, memnet.DefaultConfig())
	tr := gossipTransports(t, a, b)
	ln, err := b.Listen(":7000")
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	defer ln.Close()
	fromA := dial(t, a, ipB+":7000") // accepted on b
	onB, err := ln.Accept()
	if err != nil {
		t.Fatalf("Accept: %v", err)
	}
	defer onB.Close()
	toC, onC := connect(t, b, c) // dialed by b
	unrelated, unrelatedServer := connect(t, a, c)

	if _, err := onB.Write([]byte("last words")); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := n.Crash(ipB); err != nil {
		t.Fatalf("Crash: %v", err)
	}

	// The peers read what b sent, then io.EOF.
	if err := fromA.SetReadDeadline(time.Now().Add(long)); err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(fromA); string(got) != "last words" || err != nil {
		t.Errorf("a read %q, %v from the crashed b; want its last words, then EOF", got, err)
	}
	if _, err := fromA.Write([]byte("x")); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("a's write to the crashed b: %v; want ECONNRESET", err)
	}
	if r := await(t, readAsync(onC, 1)); r.err != io.EOF {
		t.Errorf("c read %q, %v from the crashed b; want io.EOF", r.data, r.err)
	}
	// b's own sockets fail with net.ErrClosed.
	for name, conn := range map[string]net.Conn{"accepted": onB, "dialed": toC} {
		if _, err := conn.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
			t.Errorf("write on b's %s stream after the crash: %v; want net.ErrClosed", name, err)
		}
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept on b after the crash: %v; want net.ErrClosed", err)
	}
	if _, err := tr[ipB].WriteTo([]byte("x"), tr[ipA].Addr()); !errors.Is(err, net.ErrClosed) {
		t.Errorf("b's gossip after the crash: %v; want net.ErrClosed", err)
	}
	// Dials to it are refused, packets to it dropped.
	ctx, cancel := context.WithTimeout(context.Background(), long)
	defer cancel()
	if _, err := a.DialContext(ctx, ipB+":7000"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial to the crashed b: %v; want ECONNREFUSED", err)
	}
	before := a.Stats().PacketsDropped
	if _, err := tr[ipA].WriteTo([]byte("x"), ipB+":7946"); err != nil {
		t.Fatalf("WriteTo: %v", err)
	}
	if got := a.Stats().PacketsDropped; got != before+1 {
		t.Errorf("packets a dropped: %d; want %d", got, before+1)
	}
	// Streams between other hosts carry on.
	if _, err := unrelated.Write([]byte("y")); err != nil {
		t.Fatalf("Write a to c: %v", err)
	}
	if r := await(t, readAsync(unrelatedServer, 1)); r.err != nil || r.data != "y" {
		t.Errorf("a to c after b crashed: %q, %v", r.data, r.err)
	}

	// A restart binds the same ports and takes dials again.
	tr2, err := b.GossipTransport(7946)
	if err != nil {
		t.Fatalf("GossipTransport after the crash: %v", err)
	}
	defer tr2.Shutdown()
	ln2, err := b.Listen(":7000")
	if err != nil {
		t.Fatalf("Listen after the crash: %v", err)
	}
	defer ln2.Close()
	dial(t, a, ipB+":7000")
	if err := n.Crash("10.9.9.9"); !errors.Is(err, memnet.ErrUnknownHost) {
		t.Errorf("Crash of an unknown host: %v; want ErrUnknownHost", err)
	}
}
