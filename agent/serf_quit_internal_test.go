package agent

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestSerfQuittingIsFatal: serf shuts itself down when it loses a name
// conflict (another member already has this peer's name). The agent must
// report that on Fatal, answer as no member, and refuse to leave, whose
// voter change would take the other member's place (found by a black-box
// review: a peer started with a taken --name went on serving, and its
// SIGTERM removed the real peer from the voters). The test stops serf
// directly: a real name conflict races serf's own conflict resolution with
// the agent's tag updates inside serf and memberlist (a data race there,
// not in the agent).
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
		if !errors.Is(err, ErrShutdown) || !strings.Contains(err.Error(), "--name") {
			t.Fatalf("fatal error %v, want ErrShutdown that names --name", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no fatal error 10 s after serf stopped")
	}
	if _, err := a.Members(); !errors.Is(err, ErrShutdown) {
		t.Errorf("members after serf stopped: %v, want ErrShutdown", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Leave(ctx); !errors.Is(err, ErrShutdown) {
		t.Fatalf("leave after serf stopped: %v, want ErrShutdown", err)
	}
}
