package lockmgr

import (
	"testing"

	"go.uber.org/goleak"
)

// The package is pure: nothing in it starts a goroutine. goleak checks that after the tests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
