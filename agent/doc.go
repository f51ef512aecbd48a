// Package agent is one Ringleader peer: cluster membership gossiped by serf
// (on hashicorp/memberlist, SWIM with Lifeguard), a consistent-hash ring kept
// in sync with it, cluster-wide counters (CRDTs), peer RPC between peers,
// and the HTTP API. cmd/peer runs
// one; another Go program can embed one the same way.
//
// # Lifecycle
//
// New validates a Config and does no I/O. Start opens the gossip, peer RPC
// and HTTP listeners and joins StartJoin. Leave leaves the cluster
// gracefully (the others see "left"); Shutdown stops everything and waits
// for every goroutine the agent started (without Leave the others see
// "failed"). Both are safe to call more than once.
//
// # Membership and the ring
//
// Every peer tags itself role=peer and rpc=<host:port>, plus its
// cluster-wide settings (protocol version, vnodes). Serf members without
// role=peer, such as a stock serf agent joined to look around, are listed
// but never enter the ring. Each member event rebuilds the ring from the
// alive peers and swaps it in atomically (View), so every peer that sees
// the same members reports the same ring checksum. A peer whose settings
// differ from the cluster's is refused by both sides with
// ErrSettingsMismatch naming the setting.
//
// # Counters
//
// Add applies counter writes: durable in the store (pebble, in DataDir or
// in memory) before it returns, then pushed to every peer every
// SpreadInterval (spread.go) and repaired by digest anti-entropy
// (antientropy.go). Majority writes and reads wait for a strict majority
// of the voters (spread.go). Writes with an idempotency key go to the
// key's ring owner (idempotency.go). At Start the peer settles its replica
// identity with its peers before taking writes (identity.go, and crdt's
// package documentation for the rule). Leave hands unspread writes over.
//
// # Transports
//
// All network I/O goes through Config.GossipTransport (a memberlist
// transport) and Config.RPCTransport (listen and dial), so the simulation
// runs real agents over the in-memory network of simulation/memnet.
//
// # Concurrency
//
// All methods of Agent are safe for concurrent use. View returns an
// immutable snapshot and never blocks.
package agent
