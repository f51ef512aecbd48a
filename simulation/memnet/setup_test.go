package memnet_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/ringleader/ringleader/simulation/memnet"
)

// Hosts of the test networks.
const (
	ipA = "10.0.0.1"
	ipB = "10.0.0.2"
	ipC = "10.0.0.3"
)

// Waits: long is how long a test waits for something that should happen
// (it returns as soon as it does); short is how long it waits to see that
// something does not.
const (
	long  = 5 * time.Second
	short = 30 * time.Millisecond
)

// newNetwork returns a network with hosts ipA, ipB and ipC.
func newNetwork(t *testing.T, cfg memnet.Config) (*memnet.Network, *memnet.Host, *memnet.Host, *memnet.Host) {
	t.Helper()
	n, err := memnet.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	var hosts []*memnet.Host
	for _, ip := range []string{ipA, ipB, ipC} {
		h, err := n.AddHost(ip)
		if err != nil {
			t.Fatalf("AddHost(%s): %v", ip, err)
		}
		hosts = append(hosts, h)
	}
	return n, hosts[0], hosts[1], hosts[2]
}

// connect opens a stream from one host to another and returns both ends;
// the test's cleanup closes them.
func connect(t *testing.T, from, to *memnet.Host) (client, server net.Conn) {
	t.Helper()
	ln, err := to.Listen(":0")
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	defer ln.Close()
	client = dial(t, from, ln.Addr().String())
	server, err = ln.Accept()
	if err != nil {
		t.Fatalf("Accept: %v", err)
	}
	t.Cleanup(func() { server.Close() })
	return client, server
}

// dial dials addr, failing the test if that does not work within long; the
// test's cleanup closes the conn.
func dial(t *testing.T, from *memnet.Host, addr string) net.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), long)
	defer cancel()
	c, err := from.DialContext(ctx, addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, from.IP(), err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// eventually checks cond every few milliseconds until it holds, and fails
// the test if it still does not after timeout.
func eventually(t *testing.T, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, fmt.Sprintf(format, args...))
		}
		<-tick.C
	}
}

// result is what one Read or Write returned, for calls made in a goroutine.
type result struct {
	n    int
	data string
	err  error
}

// readAsync reads once from c into a buffer of size bytes, in a goroutine.
func readAsync(c net.Conn, size int) <-chan result {
	out := make(chan result, 1)
	go func() {
		buf := make([]byte, size)
		n, err := c.Read(buf)
		out <- result{n: n, data: string(buf[:n]), err: err}
	}()
	return out
}

// writeAsync writes data to c, in a goroutine.
func writeAsync(c net.Conn, data []byte) <-chan result {
	out := make(chan result, 1)
	go func() {
		n, err := c.Write(data)
		out <- result{n: n, err: err}
	}()
	return out
}

// await returns the result, failing the test if none comes within long.
func await(t *testing.T, ch <-chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(long):
		t.Fatalf("no result after %v", long)
		return result{}
	}
}

// pending fails the test if a result comes within short.
func pending(t *testing.T, ch <-chan result, what string) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("%s: got n=%d data=%q err=%v, want it still blocked", what, r.n, r.data, r.err)
	case <-time.After(short):
	}
}
