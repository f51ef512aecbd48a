//go:build ringleader_broken_quorum

package agent

// This file exists only in a test build with -tags ringleader_broken_quorum:
// an owner then counts its own promise as a majority. The simulation's
// TestHarnessCatchesBrokenAgent builds it to prove its checkers catch a
// lock service that skips the promise majority. Never build a peer with it.
func init() { brokenQuorum = true }
