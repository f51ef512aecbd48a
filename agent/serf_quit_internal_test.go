package agent

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/serf/serf"
)

// TestSerfQuittingIsFatal: if serf shuts itself down (it did on losing a
// name conflict, before the agent turned serf's resolution off), the agent
// must report that on Fatal, answer as no member, and refuse to leave,
// whose voter change could take another member's place (found by a
// black-box review: a peer started with a taken --name went on serving,
// and its SIGTERM removed the real peer from the voters).
func TestSerfQuittingIsFatal(t *testing.T) {
	net, as, _ := startInternalCluster(t, 1, nil)
	defer net.Close()
	a := as[0]
	defer a.Shutdown()
	s, err := a.serfOrErr()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-a.Fatal():
		if !errors.Is(err, ErrShutdown) || !strings.Contains(err.Error(), "stopped by itself") {
			t.Fatalf("fatal error %v, want ErrShutdown that says serf stopped by itself", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no fatal error 10 s after serf stopped")
	}
	requireNoMember(t, a, "after serf stopped")
}

// requireNoMember checks that a answers as no member and refuses to leave.
func requireNoMember(t *testing.T, a *Agent, when string) {
	t.Helper()
	if _, err := a.Members(); !errors.Is(err, ErrShutdown) {
		t.Errorf("members %s: %v, want ErrShutdown", when, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Leave(ctx); !errors.Is(err, ErrShutdown) {
		t.Fatalf("leave %s: %v, want ErrShutdown", when, err)
	}
}

// TestNameConflictNewcomerGivesWay: a peer that joins a one-peer cluster
// under the running peer's name must give way (Fatal, no member, no leave)
// and the running peer must stay. Serf's own resolution is a vote of the
// other members: with none, the running peer lost too and stopped (found
// by a black-box review).
func TestNameConflictNewcomerGivesWay(t *testing.T) {
	var logs syncBuffer
	net, as, ips := startInternalCluster(t, 2, func(i int, cfg *Config) {
		if i == 0 {
			cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		} else {
			cfg.NodeName = "n1"
		}
	})
	defer net.Close()
	old, newcomer := as[0], as[1]
	defer old.Shutdown()
	defer newcomer.Shutdown()
	select {
	case err := <-newcomer.Fatal():
		if !errors.Is(err, ErrShutdown) || !strings.Contains(err.Error(), ips[0]) || !strings.Contains(err.Error(), "--name") {
			t.Fatalf("newcomer's fatal error %v, want ErrShutdown naming the other's address and --name", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the newcomer reported no fatal error 20 s after it joined")
	}
	requireNoMember(t, newcomer, "of the newcomer")
	// The running peer decides when it meets the newcomer's claim: wait for
	// its log line, then it must still be a member, with no fatal error.
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(logs.String(), "gives way") {
		if time.Now().After(deadline) {
			t.Fatalf("the running peer never logged the conflict; its log:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	s, err := old.serfOrErr()
	if err != nil {
		t.Fatal(err)
	}
	// Serf's own resolution, were it on, would have the running peer stop
	// once its conflict query timed out with no votes: wait that out.
	select {
	case err := <-old.Fatal():
		t.Fatalf("the running peer reported %v", err)
	case <-time.After(s.DefaultQueryTimeout() + time.Second):
	}
	if st := s.State(); st != serf.SerfAlive {
		t.Fatalf("the running peer's serf is %v, want alive", st)
	}
	if ms, err := old.Members(); err != nil || len(ms) != 1 {
		t.Fatalf("the running peer's members: %v %v, want itself alone", ms, err)
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
