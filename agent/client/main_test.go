package client_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every HeldLock's renewal goroutine must be stopped by Unlock or end with
// its lease; goleak checks after the tests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
