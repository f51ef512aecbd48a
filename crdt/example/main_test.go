package main

import "testing"

// TestExampleRuns runs the example; it exits non-zero if the replicas do not converge.
func TestExampleRuns(t *testing.T) {
	main()
}
