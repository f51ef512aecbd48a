package simulation

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A run writes a summary, a JSON report holding the whole history, and an
// SVG timeline that is well-formed XML.
func TestReportFiles(t *testing.T) {
	sc, err := Parse("short", "start 3\nworkload start\npartition n1 | rest\nsleep 2s\nheal\nworkload stop\nwait converged\n", 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := Run(ctx, testConfig(3), sc)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := rep.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	sum, err := os.ReadFile(filepath.Join(dir, SummaryFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"scenario short: PASS", "partition n1 | rest", "convergence after each heal", "locks: ", "acquire "} {
		if !strings.Contains(string(sum), want) {
			t.Errorf("summary lacks %q:\n%s", want, sum)
		}
	}
	js, err := os.ReadFile(filepath.Join(dir, ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Ops) != len(rep.Ops) || len(back.Ops) == 0 || len(back.Faults) != 1 || len(back.Samples) == 0 {
		t.Errorf("JSON report: %d ops (want %d), %d faults, %d samples", len(back.Ops), len(rep.Ops), len(back.Faults), len(back.Samples))
	}
	if len(back.LockOps) != len(rep.LockOps) || len(back.LockOps) == 0 || len(back.Topology) < 2 || back.Locks == nil {
		t.Errorf("JSON report: %d lock requests (want %d), %d topologies, lock check %v", len(back.LockOps), len(rep.LockOps), len(back.Topology), back.Locks)
	}
	svg, err := os.Open(filepath.Join(dir, TimelineFile))
	if err != nil {
		t.Fatal(err)
	}
	defer svg.Close()
	d := xml.NewDecoder(svg)
	for {
		if _, err := d.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("timeline.svg is not well-formed: %v", err)
		}
	}
}
