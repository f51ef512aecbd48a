package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// startCluster starts n peers on 127.0.0.1, all joining through the first.
func startCluster(tb testing.TB, n int, extra ...string) []*peerProc {
	tb.Helper()
	var ps []*peerProc
	for i := range n {
		p := newPeer(tb, fmt.Sprintf("n%d", i+1))
		args := append([]string(nil), extra...)
		if i > 0 {
			args = append(args, "--join", ps[0].gossipAddr())
		}
		p.start(tb, args...)
		if i == 0 {
			waitUntil(tb, 10*time.Second, "the seed's HTTP API", func() error {
				var h map[string]string
				return p.getJSON("/v1/health", &h)
			})
		}
		ps = append(ps, p)
	}
	return ps
}

func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real processes")
	}
	ps := startCluster(t, 5)
	waitUntil(t, 20*time.Second, "5 alive everywhere with one ring", func() error {
		return agree(ps, names(ps, "alive"))
	})

	// SIGKILL n5: the others mark it failed and drop it from the ring.
	ps[4].kill()
	want := names(ps[:4], "alive")
	want["n5"] = "failed"
	waitUntil(t, 30*time.Second, "n5 failed and out of every ring", func() error {
		return agree(ps[:4], want)
	})

	// Restarted with its data dir and no --join, it rejoins from its snapshot.
	ps[4].start(t)
	waitUntil(t, 30*time.Second, "n5 back by itself", func() error {
		return agree(ps, names(ps, "alive"))
	})

	// SIGTERM n4: a graceful leave, exit 0 within 10 s, seen as left.
	code, took := ps[3].stop(t, 10*time.Second)
	if code != 0 {
		t.Fatalf("n4 exited with %d after SIGTERM, want 0", code)
	}
	t.Logf("n4 left and exited in %v", took)
	want = names(append(ps[:3:3], ps[4]), "alive")
	want["n4"] = "left"
	waitUntil(t, 20*time.Second, "n4 left", func() error {
		return agree(append(ps[:3:3], ps[4]), want)
	})

	// The CLI against a live peer.
	var stdout, stderr bytes.Buffer
	if code := run([]string{"members", "--http-addr", ps[0].httpAddr()}, &stdout, &stderr); code != 0 {
		t.Fatalf("peer members: exit %d: %s", code, stderr.String())
	}
	for _, s := range []string{"NAME", "n1", "n4", "left", "alive", "role=peer"} {
		if !strings.Contains(stdout.String(), s) {
			t.Fatalf("peer members output lacks %q:\n%s", s, stdout.String())
		}
	}
	stdout.Reset()
	if code := run([]string{"ring", "owner", "jobs/nightly", "--http-addr", ps[0].httpAddr()}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "owner") {
		t.Fatalf("peer ring owner: exit %d: %s %s", code, stdout.String(), stderr.String())
	}
}

func TestWrongKeyCannotJoin(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real processes")
	}
	key := "8Vh0mJ8QAN1NJvWcY3a3M1bZ7T1yD3cS0E0uKX2eQ2A="
	other := "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	ps := startCluster(t, 2, "--encrypt", key)
	waitUntil(t, 20*time.Second, "the encrypted pair", func() error {
		return agree(ps, names(ps, "alive"))
	})
	for _, k := range []string{other, ""} {
		bad := newPeer(t, "intruder")
		args := []string{"--join", ps[0].gossipAddr()}
		if k != "" {
			args = append(args, "--encrypt", k)
		}
		bad.start(t, args...)
		select {
		case <-bad.done:
		case <-time.After(30 * time.Second):
			t.Fatalf("a peer with key %q is still running after failing to join", k)
		}
		if bad.exitErr == nil {
			t.Fatalf("a peer with key %q exited 0", k)
		}
		if err := agree(ps, names(ps, "alive")); err != nil {
			t.Fatal(err)
		}
		v, err := ps[0].view()
		if err != nil {
			t.Fatal(err)
		}
		if st, ok := v.statuses["intruder"]; ok {
			t.Fatalf("n1 lists the intruder as %q", st)
		}
	}
}

// TestStockSerfInterop joins an unmodified serf agent (v0.11.0, built here
// from the module proxy) to the cluster: serf lists the peers with their
// tags, and the peers keep serf out of the ring.
func TestStockSerfInterop(t *testing.T) {
	if testing.Short() {
		t.Skip("builds serf and runs real processes")
	}
	bin := t.TempDir()
	install := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "install", "github.com/hashicorp/serf/cmd/serf@v0.11.0")
	install.Env = append(os.Environ(), "GOBIN="+bin, "GOFLAGS=-mod=mod")
	install.Dir = bin
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("go install serf: %v\n%s", err, out)
	}
	ps := startCluster(t, 3)
	waitUntil(t, 20*time.Second, "the cluster", func() error { return agree(ps, names(ps, "alive")) })

	bind, rpc := freePort(t), freePort(t)
	serfAgent := exec.Command(filepath.Join(bin, "serf"), "agent", "-node", "stock-serf",
		"-bind", fmt.Sprintf("127.0.0.1:%d", bind), "-rpc-addr", fmt.Sprintf("127.0.0.1:%d", rpc),
		"-join", ps[0].gossipAddr(), "-tag", "role=observer")
	var serfLog bytes.Buffer
	serfAgent.Stdout, serfAgent.Stderr = &serfLog, &serfLog
	if err := serfAgent.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		serfAgent.Process.Kill()
		serfAgent.Wait()
		if t.Failed() {
			t.Logf("serf agent log:\n%s", tail(serfLog.Bytes(), 4000))
		}
	}()

	want := names(ps, "alive")
	want["stock-serf"] = "alive"
	waitUntil(t, 20*time.Second, "stock serf listed by every peer, ring unchanged", func() error {
		return agreeRing(ps, want, 3) // stock serf listed, not in the ring
	})
	waitUntil(t, 20*time.Second, "serf members lists the peers with their tags", func() error {
		out, err := exec.Command(filepath.Join(bin, "serf"), "members", "-rpc-addr", fmt.Sprintf("127.0.0.1:%d", rpc)).CombinedOutput()
		if err != nil {
			return fmt.Errorf("serf members: %v: %s", err, out)
		}
		for _, p := range ps {
			if !bytes.Contains(out, []byte(p.name)) {
				return fmt.Errorf("serf members lacks %s:\n%s", p.name, out)
			}
		}
		if !bytes.Contains(out, []byte("role=peer")) || !bytes.Contains(out, []byte("rpc=127.0.0.1:")) {
			return fmt.Errorf("serf members lacks the peer tags:\n%s", out)
		}
		return nil
	})
}
