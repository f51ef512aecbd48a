package main

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
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

		// Idle traffic: let joins settle, then count over a 30 s window. A
		// full sync (about 1 KB each way) starts every 2 s at each peer, at
		// a random peer, so a 10 s window caught more or fewer of them and
		// read 1.85-2.05 KB/s from run to run.
		time.Sleep(2 * time.Second)
		before := gossipBytes(b, ps)
		window := 30 * time.Second
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
	return procStatusMB(tb, pid, "VmRSS:")
}

// procStatusMB reads a memory figure (VmRSS:, VmHWM:) from /proc/PID/status.
func procStatusMB(tb testing.TB, pid int, field string) float64 {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field) {
			f := strings.Fields(line)
			kb, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				tb.Fatal(err)
			}
			return kb / 1024
		}
	}
	tb.Fatal("no " + field)
	return 0
}

// BenchmarkCounterConvergence measures how fast counter writes reach every
// peer: 5 real peers (default settings), 8 writers add to 2,000 keys
// through random peers for 2 s, while a poller lists every peer's counters
// in rounds. For every key: the time from its last acknowledged write to
// the start of the first poll round, begun after that write, in which all
// 5 peers report its final value. Reports the p50, p99 and max over keys
// (they include up to one poll round, about 20-50 ms).
//
// Run: go test ./cmd/peer -run '^$' -bench BenchmarkCounterConvergence -benchtime 1x -count 5
func BenchmarkCounterConvergence(b *testing.B) {
	type round struct {
		at   time.Time
		vals []map[string]int64
	}
	for b.Loop() {
		ps := startCluster(b, 5)
		waitUntil(b, 30*time.Second, "5 alive", func() error { return agree(ps, names(ps, "alive")) })
		waitWritable(b, ps...)
		c := &counterClient{cons: "local", keys: 2000}
		var stop, pollStop atomic.Bool
		var rounds []round
		polled := make(chan error, 1)
		go func() {
			for i := 0; i < 100000 && !pollStop.Load(); i++ {
				r := round{at: time.Now()}
				for _, p := range ps {
					got, err := listCounters(p)
					if err != nil {
						polled <- err
						return
					}
					r.vals = append(r.vals, got)
				}
				rounds = append(rounds, r)
			}
			polled <- nil
		}()
		wg := c.run(8, func() []*peerProc { return ps }, &stop)
		time.Sleep(2 * time.Second)
		stop.Store(true)
		wg.Wait()
		want, uncertain, counts := c.expected()
		if counts["acked"] == 0 || len(uncertain) > 0 {
			b.Fatalf("writes: %v", counts)
		}
		time.Sleep(3 * time.Second) // let the poller see the end
		pollStop.Store(true)
		if err := <-polled; err != nil {
			b.Fatal(err)
		}
		lastAck := map[string]time.Time{}
		c.mu.Lock()
		for _, r := range c.records {
			if r.at.After(lastAck[r.key]) {
				lastAck[r.key] = r.at
			}
		}
		c.mu.Unlock()
		var lags []float64
		for k, v := range want {
			found := false
			for _, r := range rounds {
				if r.at.Before(lastAck[k]) {
					continue
				}
				all := true
				for _, vals := range r.vals {
					all = all && vals[k] == v
				}
				if all {
					lags = append(lags, r.at.Sub(lastAck[k]).Seconds())
					found = true
					break
				}
			}
			if !found {
				b.Fatalf("%q never reached %d on every peer within 3 s of the last write", k, v)
			}
		}
		slices.Sort(lags)
		q := func(f float64) float64 { return lags[min(len(lags)-1, int(f*float64(len(lags))))] }
		b.ReportMetric(q(0.5), "p50-s")
		b.ReportMetric(q(0.99), "p99-s")
		b.ReportMetric(lags[len(lags)-1], "max-s")
		b.ReportMetric(float64(counts["acked"])/2, "writes/s")
		b.ReportMetric(float64(len(rounds))/5, "polls/s")
		for _, p := range ps {
			p.kill()
		}
	}
}

// BenchmarkRestartMillionKeys fills one peer with 1,000,000 counter keys
// (through :batch, 100 keys a request), kills it (SIGKILL: the restart
// replays its log too) and restarts it with its data dir. Reports the time
// from exec until the peer answers health and takes counter writes with
// every key loaded (ready-s), its resident memory then and 5 s later
// (rss-MB, rss-settled-MB), and its peak (hwm-MB).
//
// Run: go test ./cmd/peer -run '^$' -bench BenchmarkRestartMillionKeys -benchtime 1x -count 3 -timeout 30m
func BenchmarkRestartMillionKeys(b *testing.B) {
	const keys = 1_000_000
	for b.Loop() {
		p := newPeer(b, "big")
		p.start(b)
		waitWritable(b, p)
		fill(b, p, keys)
		p.kill()
		start := time.Now()
		p.start(b)
		waitUntil(b, 60*time.Second, "ready with every key", func() error {
			var st struct {
				Incarnation uint64 `json:"incarnation"`
				CounterKeys int    `json:"counter_keys"`
			}
			if err := p.getJSON("/v1/status", &st); err != nil {
				return err
			}
			if st.Incarnation == 0 || st.CounterKeys != keys {
				return fmt.Errorf("incarnation %d, %d keys", st.Incarnation, st.CounterKeys)
			}
			return nil
		})
		ready := time.Since(start)
		rss := rssMB(b, p.cmd.Process.Pid)
		time.Sleep(5 * time.Second)
		b.ReportMetric(ready.Seconds(), "ready-s")
		b.ReportMetric(rss, "rss-MB")
		b.ReportMetric(rssMB(b, p.cmd.Process.Pid), "rss-settled-MB")
		b.ReportMetric(procStatusMB(b, p.cmd.Process.Pid, "VmHWM:"), "hwm-MB")
		p.kill()
	}
}

// fill writes keys distinct counters to p, 100 a batch, from 8 writers.
func fill(tb testing.TB, p *peerProc, keys int) {
	tb.Helper()
	var next atomic.Int64
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			for {
				i := int(next.Add(100)) - 100
				if i >= keys {
					errs <- nil
					return
				}
				var body strings.Builder
				body.WriteString(`{"items":[`)
				for j := i; j < min(i+100, keys); j++ {
					if j > i {
						body.WriteByte(',')
					}
					fmt.Fprintf(&body, `{"key":"fill/%07d","delta":%d}`, j, j%97+1)
				}
				body.WriteString(`]}`)
				resp, err := counterHTTP.Post("http://"+p.httpAddr()+"/v1/counters:batch", "application/json", strings.NewReader(body.String()))
				if err != nil {
					errs <- err
					return
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs <- fmt.Errorf("batch at %d: HTTP %d", i, resp.StatusCode)
					return
				}
			}
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			tb.Fatal(err)
		}
	}
}
