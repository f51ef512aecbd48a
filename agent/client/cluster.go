package client

import (
	"context"
	"fmt"
	"net/url"
)

// Health is what GET /v1/health answers.
type Health struct {
	Status string `json:"status"` // "ok"
	Node   string `json:"node"`
}

// Health asks whether the peer runs (an *APIError with ErrUnavailable
// while it starts or stops).
func (c *Client) Health(ctx context.Context) (Health, error) {
	var h Health
	err := c.do(ctx, request{method: "GET", path: "/v1/health"}, &h)
	return h, err
}

// Status is what GET /v1/status answers.
type Status struct {
	Node          string         `json:"node"`
	Version       string         `json:"version"`
	Protocol      int            `json:"protocol"`
	GossipAddr    string         `json:"gossip_addr"`
	RPCAddr       string         `json:"rpc_addr"`
	RingChecksum  string         `json:"ring_checksum"`
	RingMembers   int            `json:"ring_members"`
	VNodes        int            `json:"vnodes"`
	Members       map[string]int `json:"members"` // count by status
	UptimeSeconds float64        `json:"uptime_seconds"`
	Encrypted     bool           `json:"encrypted"`
	// Incarnation is the peer's replica incarnation; 0 while it checks its
	// identity at start-up or leaves (counter writes are refused then).
	Incarnation uint64 `json:"incarnation"`
	CounterKeys int    `json:"counter_keys"`
}

// Status returns the peer's state.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	err := c.do(ctx, request{method: "GET", path: "/v1/status"}, &s)
	return s, err
}

// Member is one cluster member as the peer sees it.
type Member struct {
	Name    string            `json:"name"`
	Addr    string            `json:"addr"`               // gossip address, host:port
	RPCAddr string            `json:"rpc_addr,omitempty"` // peer RPC address; empty for non-peers
	Status  string            `json:"status"`             // alive, leaving, left or failed
	Tags    map[string]string `json:"tags"`
	Peer    bool              `json:"peer"`    // a Ringleader peer (role=peer)
	InRing  bool              `json:"in_ring"` // in the peer's current ring
}

// Members lists every member the peer knows, sorted by name.
func (c *Client) Members(ctx context.Context) ([]Member, error) {
	var r struct {
		Members []Member `json:"members"`
	}
	err := c.do(ctx, request{method: "GET", path: "/v1/members"}, &r)
	return r.Members, err
}

// ForceLeave removes the failed member name for good: it is marked left,
// or forgotten entirely with prune. An alive member is refused
// (ErrConflict), an unknown one too (ErrNotFound).
func (c *Client) ForceLeave(ctx context.Context, name string, prune bool) error {
	path := fmt.Sprintf("/v1/members/%s/force-leave?prune=%t", url.PathEscape(name), prune)
	return c.do(ctx, request{method: "POST", path: path}, nil)
}

// Ring is what GET /v1/ring answers.
type Ring struct {
	Checksum string   `json:"checksum"`
	VNodes   int      `json:"vnodes"`
	Members  []string `json:"members"`
}

// Ring returns the peer's current ring.
func (c *Client) Ring(ctx context.Context) (Ring, error) {
	var r Ring
	err := c.do(ctx, request{method: "GET", path: "/v1/ring"}, &r)
	return r, err
}

// Voters is what GET /v1/voters answers: the lock voter set as the peer
// has committed it (Version 0: none has formed yet).
type Voters struct {
	Cluster  string   `json:"cluster"`
	Version  uint64   `json:"version"`
	Members  []string `json:"members"`
	Majority int      `json:"majority"`
}

// Voters returns the peer's lock voter set.
func (c *Client) Voters(ctx context.Context) (Voters, error) {
	var v Voters
	err := c.do(ctx, request{method: "GET", path: "/v1/voters"}, &v)
	return v, err
}

// Owner is what GET /v1/ring/owner/{key} answers.
type Owner struct {
	Key        string   `json:"key"`
	Owner      string   `json:"owner"`
	Preference []string `json:"preference"`
	Checksum   string   `json:"checksum"`
}

// RingOwner returns the owner of key and its preference list of n peers
// (1-64; 0: the peer's default, 3), as the peer's ring places it.
func (c *Client) RingOwner(ctx context.Context, key string, n int) (Owner, error) {
	path := keyPath("/v1/ring/owner/", key)
	if n != 0 {
		path += fmt.Sprintf("?n=%d", n)
	}
	var o Owner
	err := c.do(ctx, request{method: "GET", path: path}, &o)
	return o, err
}
