package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkCluster measures a 5-peer cluster of real processes on
// 127.0.0.1 with the default LAN timings. Each iteration starts a fresh
// cluster and reports:
//
//	health-s   from exec of the last peer until its /v1/health answers
//	converge-s from the start of the last peer until all 5 report one ring
//	gossip-B/s idle gossip bytes (sent + received) per peer per second, over 10 s
//	rss-MB     resident memory of an idle peer (the largest of the 5)
//	detect-s   from SIGKILL of one peer until all others dropped it from the ring
//
// Run: go test ./cmd/peer -run '^$' -bench BenchmarkCluster -benchtime 1x -count 5
func BenchmarkCluster(b *testing.B) {
	for b.Loop() {
		var ps []*peerProc
		for i := range 5 {
			p := newPeer(b, fmt.Sprintf("n%d", i+1))
			ps = append(ps, p)
		}
		ps[0].start(b)
		waitUntil(b, 10*time.Second, "seed health", func() error {
			var h map[string]string
			return ps[0].getJSON("/v1/health", &h)
		})
		for _, p := range ps[1:4] {
			p.start(b, "--join", ps[0].gossipAddr())
		}
		last := ps[4]
		start := time.Now()
		last.start(b, "--join", ps[0].gossipAddr())
		waitUntil(b, 10*time.Second, "last peer health", func() error {
			var h map[string]string
			return last.getJSON("/v1/health", &h)
		})
		health := time.Since(start)
		waitUntil(b, 30*time.Second, "one ring", func() error {
			return agree(ps, names(ps, "alive"))
		})
		converge := time.Since(start)

		// Idle traffic: let joins settle, then count over a 10 s window.
		time.Sleep(2 * time.Second)
		before := gossipBytes(b, ps)
		window := 10 * time.Second
		time.Sleep(window)
		after := gossipBytes(b, ps)
		perPeer := (after - before) / float64(len(ps)) / window.Seconds()
		var rss float64
		for _, p := range ps {
			rss = max(rss, rssMB(b, p.cmd.Process.Pid))
		}

		ps[4].kill()
		killed := time.Now()
		want := names(ps[:4], "alive")
		want["n5"] = "failed"
		waitUntil(b, 60*time.Second, "n5 dropped", func() error { return agree(ps[:4], want) })
		detect := time.Since(killed)

		b.ReportMetric(health.Seconds(), "health-s")
		b.ReportMetric(converge.Seconds(), "converge-s")
		b.ReportMetric(perPeer, "gossip-B/s")
		b.ReportMetric(rss, "rss-MB")
		b.ReportMetric(detect.Seconds(), "detect-s")
		for _, p := range ps {
			p.kill()
		}
	}
}

// gossipBytes sums ringleader_gossip_bytes_total over the peers.
func gossipBytes(tb testing.TB, ps []*peerProc) float64 {
	tb.Helper()
	var total float64
	for _, p := range ps {
		resp, err := e2eClient.Get("http://" + p.httpAddr() + "/metrics")
		if err != nil {
			tb.Fatal(err)
		}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			line := sc.Text()
			if !strings.HasPrefix(line, "ringleader_gossip_bytes_total{") {
				continue
			}
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err != nil {
				tb.Fatal(err)
			}
			total += v
		}
		resp.Body.Close()
	}
	return total
}

// rssMB reads a process's resident set size from /proc.
func rssMB(tb testing.TB, pid int) float64 {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			kb, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				tb.Fatal(err)
			}
			return kb / 1024
		}
	}
	tb.Fatal("no VmRSS")
	return 0
}
