package memnet_test

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/ringleader/ringleader/simulation/memnet"
)

func TestStreamRoundTrip(t *testing.T) {
	_, a, b, _ := newNetwork(t, memnet.DefaultConfig())
	client, server := connect(t, a, b)

	for _, c := range []struct {
		name          string
		conn          net.Conn
		local, remote string
	}{
		{"client", client, ipA, ipB},
		{"server", server, ipB, ipA},
	} {
		local, ok1 := c.conn.LocalAddr().(*net.TCPAddr)
		remote, ok2 := c.conn.RemoteAddr().(*net.TCPAddr)
		if !ok1 || !ok2 || local.IP.String() != c.local || remote.IP.String() != c.remote {
			t.Errorf("%s addresses %v -> %v; want *net.TCPAddr %s -> %s", c.name, c.conn.LocalAddr(), c.conn.RemoteAddr(), c.local, c.remote)
		}
	}
	if client.LocalAddr().String() != server.RemoteAddr().String() || client.RemoteAddr().String() != server.LocalAddr().String() {
		t.Errorf("ends disagree: client %v -> %v, server %v -> %v", client.LocalAddr(), client.RemoteAddr(), server.LocalAddr(), server.RemoteAddr())
	}

	if _, err := client.Write([]byte("ping")); err != nil {
		t.Fatalf("client Write: %v", err)
	}
	if r := await(t, readAsync(server, 16)); r.err != nil || r.data != "ping" {
		t.Fatalf("server Read = %q, %v; want ping", r.data, r.err)
	}
	if _, err := server.Write([]byte("pong")); err != nil {
		t.Fatalf("server Write: %v", err)
	}
	if r := await(t, readAsync(client, 16)); r.err != nil || r.data != "pong" {
		t.Fatalf("client Read = %q, %v; want pong", r.data, r.err)
	}

	// Reads take what is there, across writes, without waiting for more.
	client.Write([]byte("ab"))
	client.Write([]byte("cd"))
	if r := await(t, readAsync(server, 3)); r.data != "abc" {
		t.Fatalf("Read(3) = %q, %v; want abc", r.data, r.err)
	}
	if r := await(t, readAsync(server, 3)); r.data != "d" {
		t.Fatalf("Read(3) = %q, %v; want d", r.data, r.err)
	}
}

// A large transfer through a small buffer arrives whole and in order.
func TestStreamLargeTransfer(t *testing.T) {
	cfg := memnet.DefaultConfig()
	cfg.StreamBuffer = 1000
	n, a, b, _ := newNetwork(t, cfg)
	client, server := connect(t, a, b)
	seed := rand.Uint64()
	data := make([]byte, 1<<20)
	random := rand.New(rand.NewPCG(seed, 0))
	for i := range data {
		data[i] = byte(random.Uint32())
	}
	wrote := make(chan error, 1)
	go func() {
		_, err := client.Write(data)
		client.Close()
		wrote <- err
	}()
	got, err := io.ReadAll(server)
	if err != nil || <-wrote != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("seed %d: got %d bytes differing from the %d written", seed, len(got), len(data))
	}
	if s := n.Stats()[ipA]; s.StreamBytesSent != 1<<20 || s.StreamBytesDelivered != 1<<20 {
		t.Fatalf("stats of %s: sent %d, delivered %d; want %d", ipA, s.StreamBytesSent, s.StreamBytesDelivered, 1<<20)
	}
	if s := n.Stats()[ipB]; s.StreamBytesReceived != 1<<20 {
		t.Fatalf("stats of %s: received %d; want %d", ipB, s.StreamBytesReceived, 1<<20)
	}
}

func isTimeout(err error) bool {
	var netErr net.Error
	return errors.As(err, &netErr) && netErr.Timeout() && errors.Is(err, os.ErrDeadlineExceeded)
}

func TestStreamDeadlines(t *testing.T) {
	cfg := memnet.DefaultConfig()
	cfg.StreamBuffer = 4
	tests := []struct {
		name string
		// run sets deadlines on the client and does I/O; it returns the
		// result that should be a timeout.
		run func(t *testing.T, client, server net.Conn) result
	}{
		{"read deadline in the past", func(t *testing.T, client, _ net.Conn) result {
			client.SetReadDeadline(time.Now().Add(-time.Second))
			return await(t, readAsync(client, 1))
		}},
		{"read deadline passes while blocked", func(t *testing.T, client, _ net.Conn) result {
			client.SetReadDeadline(time.Now().Add(short))
			return await(t, readAsync(client, 1))
		}},
		{"read deadline set while blocked", func(t *testing.T, client, _ net.Conn) result {
			r := readAsync(client, 1)
			pending(t, r, "read without deadline")
			client.SetReadDeadline(time.Now())
			return await(t, r)
		}},
		{"deadline passes with data buffered", func(t *testing.T, client, server net.Conn) result {
			server.Write([]byte("x"))
			client.SetDeadline(time.Now().Add(-time.Second))
			return await(t, readAsync(client, 1))
		}},
		{"write deadline on a full buffer", func(t *testing.T, client, _ net.Conn) result {
			client.SetWriteDeadline(time.Now().Add(short))
			return await(t, writeAsync(client, []byte("123456")))
		}},
		{"write deadline in the past", func(t *testing.T, client, _ net.Conn) result {
			client.SetDeadline(time.Now().Add(-time.Second))
			return await(t, writeAsync(client, []byte("1")))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, a, b, _ := newNetwork(t, cfg)
			client, server := connect(t, a, b)
			r := tt.run(t, client, server)
			if !isTimeout(r.err) {
				t.Fatalf("got n=%d err=%v; want a net.Error timeout wrapping os.ErrDeadlineExceeded", r.n, r.err)
			}
			// Clearing the deadline makes the conn usable again.
			client.SetDeadline(time.Time{})
			server.SetDeadline(time.Time{})
			if _, err := server.Write([]byte("y")); err != nil {
				t.Fatalf("server Write after clearing: %v", err)
			}
			if r := await(t, readAsync(client, 8)); r.err != nil || r.n == 0 {
				t.Fatalf("client Read after clearing: %q, %v", r.data, r.err)
			}
		})
	}
	t.Run("short write reports what went in", func(t *testing.T) {
		_, a, b, _ := newNetwork(t, cfg)
		client, _ := connect(t, a, b)
		client.SetWriteDeadline(time.Now().Add(short))
		if n, err := client.Write([]byte("123456")); n != 4 || !isTimeout(err) {
			t.Fatalf("Write of 6 into a buffer of 4 = %d, %v; want 4 and a timeout", n, err)
		}
	})
	t.Run("moving the deadline later keeps a read waiting", func(t *testing.T) {
		_, a, b, _ := newNetwork(t, cfg)
		client, server := connect(t, a, b)
		first := time.Now().Add(250 * time.Millisecond)
		client.SetReadDeadline(first)
		r := readAsync(client, 1)
		client.SetReadDeadline(time.Now().Add(long))
		select {
		case got := <-r:
			t.Fatalf("Read = %q, %v; want it still waiting past the first deadline", got.data, got.err)
		case <-time.After(time.Until(first) + short):
		}
		server.Write([]byte("z"))
		if got := await(t, r); got.err != nil || got.data != "z" {
			t.Fatalf("Read = %q, %v; want z", got.data, got.err)
		}
	})
}

func TestStreamClose(t *testing.T) {
	t.Run("peer reads the rest then EOF", func(t *testing.T) {
		_, a, b, _ := newNetwork(t, memnet.DefaultConfig())
		client, server := connect(t, a, b)
		client.Write([]byte("last words"))
		if err := client.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		got, err := io.ReadAll(server)
		if err != nil || string(got) != "last words" {
			t.Fatalf("ReadAll = %q, %v; want the bytes then EOF", got, err)
		}
		if r := await(t, readAsync(server, 1)); r.err != io.EOF {
			t.Fatalf("Read after EOF: %v; want io.EOF again", r.err)
		}
	})
	t.Run("I/O after Close fails", func(t *testing.T) {
		_, a, b, _ := newNetwork(t, memnet.DefaultConfig())
		client, _ := connect(t, a, b)
		client.Close()
		if _, err := client.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Read after Close: %v; want net.ErrClosed", err)
		}
		if _, err := client.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Write after Close: %v; want net.ErrClosed", err)
		}
		if err := client.SetDeadline(time.Now()); !errors.Is(err, net.ErrClosed) {
			t.Errorf("SetDeadline after Close: %v; want net.ErrClosed", err)
		}
		if err := client.Close(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("second Close: %v; want net.ErrClosed", err)
		}
	})
	t.Run("Close wakes blocked reads and writes", func(t *testing.T) {
		cfg := memnet.DefaultConfig()
		cfg.StreamBuffer = 1
		_, a, b, _ := newNetwork(t, cfg)
		client, _ := connect(t, a, b)
		read := readAsync(client, 1)
		write := writeAsync(client, []byte("ab"))
		pending(t, read, "read")
		pending(t, write, "write")
		client.Close()
		if r := await(t, read); !errors.Is(r.err, net.ErrClosed) {
			t.Errorf("blocked Read: %v; want net.ErrClosed", r.err)
		}
		if r := await(t, write); !errors.Is(r.err, net.ErrClosed) || r.n != 1 {
			t.Errorf("blocked Write = %d, %v; want 1 and net.ErrClosed", r.n, r.err)
		}
	})
	t.Run("writing to a closed peer resets", func(t *testing.T) {
		n, a, b, _ := newNetwork(t, memnet.DefaultConfig())
		client, server := connect(t, a, b)
		client.Write([]byte("unread"))
		server.Close()
		if _, err := client.Write([]byte("x")); !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("Write to a closed peer: %v; want ECONNRESET", err)
		}
		if s := n.Stats()[ipA]; s.StreamBytesDropped != 6 {
			t.Fatalf("stats of %s: dropped %d; want the 6 unread bytes", ipA, s.StreamBytesDropped)
		}
	})
	t.Run("the peer's close wakes a blocked writer", func(t *testing.T) {
		cfg := memnet.DefaultConfig()
		cfg.StreamBuffer = 1
		_, a, b, _ := newNetwork(t, cfg)
		client, server := connect(t, a, b)
		write := writeAsync(client, []byte("ab"))
		pending(t, write, "write into a full buffer")
		server.Close()
		if r := await(t, write); !errors.Is(r.err, syscall.ECONNRESET) {
			t.Fatalf("blocked Write after the peer closed: %v; want ECONNRESET", r.err)
		}
	})
	t.Run("the peer's close waits out a cut", func(t *testing.T) {
		n, a, b, _ := newNetwork(t, memnet.DefaultConfig())
		client, server := connect(t, a, b)
		n.Cut(ipA, ipB)
		server.Close()
		if _, err := client.Write([]byte("into the void")); err != nil {
			t.Fatalf("Write while the reset cannot arrive: %v", err)
		}
		read := readAsync(client, 1)
		pending(t, read, "read while the FIN cannot arrive")
		n.Heal()
		if r := await(t, read); r.err != io.EOF {
			t.Fatalf("Read after heal: %v; want io.EOF", r.err)
		}
		if _, err := client.Write([]byte("x")); !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("Write after heal: %v; want ECONNRESET", err)
		}
	})
}

// A writer blocks once the buffer is full and goes on as the reader makes
// room.
func TestStreamBackpressure(t *testing.T) {
	cfg := memnet.DefaultConfig()
	cfg.StreamBuffer = 8
	n, a, b, _ := newNetwork(t, cfg)
	client, server := connect(t, a, b)
	write := writeAsync(client, []byte("0123456789abcdef"))
	eventually(t, long, func() bool { return n.Stats()[ipA].StreamBytesSent == 8 }, "the first 8 bytes never went in")
	pending(t, write, "write of 16 bytes into a buffer of 8")
	if r := await(t, readAsync(server, 5)); r.data != "01234" {
		t.Fatalf("Read = %q, %v", r.data, r.err)
	}
	pending(t, write, "write with 3 bytes still to go in")
	if r := await(t, readAsync(server, 8)); r.data != "56789abc" {
		t.Fatalf("Read = %q, %v", r.data, r.err)
	}
	if r := await(t, write); r.err != nil || r.n != 16 {
		t.Fatalf("Write = %d, %v; want 16", r.n, r.err)
	}
	if r := await(t, readAsync(server, 8)); r.data != "def" {
		t.Fatalf("Read = %q, %v", r.data, r.err)
	}
}

func TestStreamHeldDuringFault(t *testing.T) {
	tests := []struct {
		name  string
		fault func(n *memnet.Network) error
		// aToB, bToA: whether each direction is held while the fault lasts.
		aToB, bToA bool
	}{
		{"cut", func(n *memnet.Network) error { return n.Cut(ipA, ipB) }, true, true},
		{"one-way cut a to b", func(n *memnet.Network) error { return n.CutOneWay(ipA, ipB) }, true, false},
		{"one-way cut b to a", func(n *memnet.Network) error { return n.CutOneWay(ipB, ipA) }, false, true},
		{"isolate a", func(n *memnet.Network) error { return n.Isolate(ipA) }, true, true},
		{"partition", func(n *memnet.Network) error { return n.Partition([]string{ipA}, []string{ipB}) }, true, true},
		{"partition elsewhere", func(n *memnet.Network) error { return n.Partition([]string{ipA, ipB}, []string{ipC}) }, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, a, b, _ := newNetwork(t, memnet.DefaultConfig())
			client, server := connect(t, a, b)
			client.Write([]byte("before "))
			if err := tt.fault(n); err != nil {
				t.Fatalf("fault: %v", err)
			}
			// Writes go into the buffer whatever the fault.
			if _, err := client.Write([]byte("during")); err != nil {
				t.Fatalf("client Write during the fault: %v", err)
			}
			if _, err := server.Write([]byte("reply")); err != nil {
				t.Fatalf("server Write during the fault: %v", err)
			}
			check := func(name string, c net.Conn, held bool, want string) {
				t.Helper()
				r := readAsync(c, 64)
				if held {
					pending(t, r, name+" read of held bytes")
					c.SetReadDeadline(time.Now())
					if got := await(t, r); !isTimeout(got.err) {
						t.Fatalf("%s read of held bytes = %q, %v; want a timeout", name, got.data, got.err)
					}
					c.SetReadDeadline(time.Time{})
					return
				}
				if got := await(t, r); got.data != want {
					t.Fatalf("%s read %q, %v during the fault; want %q", name, got.data, got.err, want)
				}
			}
			check("server", server, tt.aToB, "before during")
			check("client", client, tt.bToA, "reply")

			// After heal, the held bytes flow, in order.
			serverRead, clientRead := readAsync(server, 64), readAsync(client, 64)
			n.Heal()
			if tt.aToB {
				if got := await(t, serverRead); got.data != "before during" {
					t.Fatalf("server read %q, %v after heal", got.data, got.err)
				}
			} else {
				server.SetReadDeadline(time.Now())
				await(t, serverRead)
			}
			if tt.bToA {
				if got := await(t, clientRead); got.data != "reply" {
					t.Fatalf("client read %q, %v after heal", got.data, got.err)
				}
			} else {
				client.SetReadDeadline(time.Now())
				await(t, clientRead)
			}
		})
	}
}
