package memnet_test

import (
	"bytes"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/ringleader/ringleader/simulation/memnet"
)

// Faults applied and removed while packets and a stream flow: under the race
// detector nothing races, no sender blocks past its deadline, and after Heal
// the stream has carried every byte, in order.
func TestFaultChurn(t *testing.T) {
	const seed = 11
	n, a, b, c := newNetwork(t, memnet.DefaultConfig())
	defer n.Close()
	tr := gossipTransports(t, a, b, c)
	client, server := connect(t, a, b)

	want := bytes.Repeat([]byte("abcdefghij"), 20000)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() { // packets, all ways
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			from, to := tr[[]string{ipA, ipB, ipC}[i%3]], tr[[]string{ipB, ipC, ipA}[i%3]]
			if _, err := from.WriteTo([]byte("x"), to.Addr()); err != nil {
				t.Errorf("WriteTo: %v", err)
				return
			}
			received(to)
		}
	})
	wrote := make(chan error, 1)
	wg.Go(func() {
		if err := client.SetWriteDeadline(time.Now().Add(long)); err != nil {
			wrote <- err
			return
		}
		for off := 0; off < len(want); off += 1000 {
			if _, err := client.Write(want[off : off+1000]); err != nil {
				wrote <- err
				return
			}
		}
		wrote <- nil
	})

	rng := rand.New(rand.NewPCG(seed, seed))
	faults := []func() error{
		func() error { return n.Pause(ipB) },
		func() error { return n.Resume(ipB) },
		func() error { return n.Pause(ipA) },
		func() error { return n.SetLoss(float64(rng.IntN(101))) },
		func() error { return n.SetLinkLoss(ipA, ipB, 50) },
		func() error { return n.SetLatency(time.Duration(rng.IntN(2000))*time.Microsecond, time.Millisecond) },
		func() error { return n.SetLinkLatency(ipB, ipA, time.Millisecond, 0) },
		func() error { return n.Partition([]string{ipA}, []string{ipB, ipC}) },
		func() error { return n.CutOneWay(ipA, ipB) },
		func() error { return n.SetClock(ipC, time.Duration(rng.IntN(1000))*time.Millisecond, 0.005) },
		func() error { n.Heal(); return nil },
	}
	for range 300 {
		if err := faults[rng.IntN(len(faults))](); err != nil {
			t.Fatalf("seed %d: fault: %v", seed, err)
		}
	}
	n.Heal()

	got := make([]byte, len(want))
	if err := server.SetReadDeadline(time.Now().Add(long)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(server, got); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("seed %d: stream after heal: %v, bytes equal: %v", seed, err, bytes.Equal(got, want))
	}
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatalf("seed %d: Write: %v", seed, err)
		}
	case <-time.After(long):
		t.Fatalf("seed %d: writer still blocked %v after heal", seed, long)
	}
	close(stop)
	wg.Wait()
}
