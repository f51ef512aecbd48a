package agent

import (
	"net"
	"testing"
	"time"

	"github.com/hashicorp/serf/serf"
)

func member(name string, status serf.MemberStatus, role string) serf.Member {
	return serf.Member{Name: name, Addr: net.IPv4(10, 0, 0, 1), Port: 7946, Status: status,
		Tags: map[string]string{TagRole: role}}
}

func TestPickFailedPeer(t *testing.T) {
	first := func(int) int { return 0 }
	oneFailed := []serf.Member{
		member("self", serf.StatusAlive, RolePeer),
		member("a", serf.StatusAlive, RolePeer),
		member("b", serf.StatusAlive, RolePeer),
		member("c", serf.StatusAlive, RolePeer),
		member("d", serf.StatusAlive, RolePeer),
		member("x", serf.StatusFailed, RolePeer),
	}
	for _, tt := range []struct {
		name    string
		members []serf.Member
		roll    float64
		want    bool
	}{
		// 1 failed of 4 alive: serf tries with probability 1/4, this with 3/4.
		{"roll above serf's share", oneFailed, 0.5, true},
		{"roll within serf's share", oneFailed, 0.1, false},
		{"none failed", oneFailed[:5], 0.9, false},
		{"left is not failed", []serf.Member{member("a", serf.StatusAlive, RolePeer), member("x", serf.StatusLeft, RolePeer)}, 0.9, false},
		{"failed non-peer", []serf.Member{member("a", serf.StatusAlive, RolePeer), member("x", serf.StatusFailed, "")}, 0.9, false},
		{"no one else alive", []serf.Member{member("self", serf.StatusAlive, RolePeer), member("x", serf.StatusFailed, RolePeer)}, 0.9, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addr, ok := pickFailedPeer(tt.members, "self", tt.roll, first)
			if ok != tt.want {
				t.Fatalf("picked %q, %v; want a pick: %v", addr, ok, tt.want)
			}
			if ok && addr != "10.0.0.1:7946" {
				t.Fatalf("picked %q, want 10.0.0.1:7946", addr)
			}
		})
	}
}

func TestNoteReturns(t *testing.T) {
	a := &Agent{clock: SystemClock{}}
	failed := []serf.Member{member("a", serf.StatusAlive, RolePeer), member("x", serf.StatusFailed, RolePeer)}
	back := []serf.Member{member("a", serf.StatusAlive, RolePeer), member("x", serf.StatusAlive, RolePeer)}
	a.noteReturns(nil, failed)
	a.noteReturns(failed, failed)
	if a.lastReturn.Load() != 0 {
		t.Fatal("a return noted while nothing came back")
	}
	before := time.Now()
	a.noteReturns(failed, back)
	if got := time.Unix(0, a.lastReturn.Load()); got.Before(before) {
		t.Fatalf("return noted at %v, want at or after %v", got, before)
	}
}
