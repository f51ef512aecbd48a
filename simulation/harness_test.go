package simulation

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestHarnessCatchesBrokenAgent proves the harness can fail: it builds this
// package's tests with -tags ringleader_broken_quorum, which gives the
// agent an owner that counts its own promise as a majority, and runs
// halves there (TestHalvesCatchesBrokenAgent, broken_test.go). That run
// must find lock violations.
func TestHarnessCatchesBrokenAgent(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a broken agent")
	}
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	cmd := exec.Command(gobin, "test", "-tags", "ringleader_broken_quorum", "-count", "1",
		"-run", "^TestHalvesCatchesBrokenAgent$", "-v", ".")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the halves run against the broken agent failed (it must pass by finding violations): %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "caught the broken agent") {
		t.Fatalf("the broken-agent run did not report what it caught:\n%s", out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "caught the broken agent") {
			t.Log(line)
		}
	}
}
