package crdt

import (
	"testing"

	"go.uber.org/goleak"
)

// The package is pure: nothing in it starts a goroutine, and the tests' own goroutines are
// all waited for. goleak checks both after the tests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
