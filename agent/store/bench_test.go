package store

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/ringleader/ringleader/crdt"
)

// Figures quoted in the report come from (medians of -count 5, on the real disk under
// t.TempDir; this machine is shared, so expect noise):
//
//	go test ./agent/store -run '^$' -bench . -benchmem -count 5
//
// Syncs are never turned off.

// fsyncStats reads the count and the sum (in nanoseconds) of pebble's fsync histogram.
func fsyncStats(b *testing.B, db *DB) (count uint64, sumNanos float64) {
	var m dto.Metric
	if err := db.FsyncLatency().Write(&m); err != nil {
		b.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
}

// BenchmarkCommitSynced commits one counter record per batch, synced, from g goroutines at
// once. commits/s against g shows group commit: pebble shares one fsync among the commits
// waiting for it (commits/fsync).
func BenchmarkCommitSynced(b *testing.B) {
	for _, g := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("goroutines=%d", g), func(b *testing.B) {
			db, err := Open(b.TempDir(), DefaultConfig())
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			s := benchStore(b, g)
			syncs0, sum0 := fsyncStats(b, db)
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for i := range g {
				key := fmt.Sprintf("counter/%d", i)
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						bt := db.NewBatch()
						if err := bt.MergeCounterFrom(s, key); err != nil {
							b.Error(err)
							return
						}
						if err := bt.Commit(true); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			syncs, sum := fsyncStats(b, db)
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "commits/s")
			if n := syncs - syncs0; n > 0 {
				b.ReportMetric(float64(b.N)/float64(n), "commits/fsync")
				b.ReportMetric((sum-sum0)/float64(n)/1e3, "fsync-µs")
			}
		})
	}
}

// BenchmarkFsync measures the disk alone: write 128 bytes to a file and fdatasync it.
func BenchmarkFsync(b *testing.B) {
	f, err := os.Create(b.TempDir() + "/f")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 128)
	for b.Loop() {
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCommitBatch commits n counter records in one synced batch, as a :batch request
// would, from g goroutines at once.
func BenchmarkCommitBatch(b *testing.B) {
	for _, n := range []int{1, 100} {
		for _, g := range []int{1, 16} {
			b.Run(fmt.Sprintf("records=%d/goroutines=%d", n, g), func(b *testing.B) {
				db, err := Open(b.TempDir(), DefaultConfig())
				if err != nil {
					b.Fatal(err)
				}
				defer db.Close()
				s := benchStore(b, n*g)
				var next atomic.Int64
				var wg sync.WaitGroup
				b.ResetTimer()
				start := time.Now()
				for i := range g {
					keys := make([]string, n)
					for j := range keys {
						keys[j] = fmt.Sprintf("counter/%d", i*n+j)
					}
					wg.Go(func() {
						for next.Add(1) <= int64(b.N) {
							bt := db.NewBatch()
							for _, k := range keys {
								if err := bt.MergeCounterFrom(s, k); err != nil {
									b.Error(err)
									return
								}
							}
							if err := bt.Commit(true); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				elapsed := time.Since(start)
				b.ReportMetric(float64(b.N*n)/elapsed.Seconds(), "records/s")
			})
		}
	}
}

// benchStore returns a crdt.Store holding keys counter/0 .. counter/(n-1), each with five
// replicas.
func benchStore(b *testing.B, n int) *crdt.Store {
	s, err := crdt.New(crdt.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	for i := range n {
		for j := range 5 {
			r := crdt.ReplicaID{Node: fmt.Sprintf("node-%d", j), Incarnation: 1}
			if _, err := s.Apply(fmt.Sprintf("counter/%d", i), r, int64(1000+j)); err != nil {
				b.Fatal(err)
			}
		}
	}
	return s
}

// BenchmarkMerge measures the merge operator on records of a key with five replicas: one
// record (read back as is), a newer and an older record (the newer holds the join, the
// usual case), and records that each hold something the other lacks (encoded anew). Also
// the check MergeCounter makes of every record it is given.
func BenchmarkMerge(b *testing.B) {
	rs := make([]crdt.ReplicaID, 5)
	for i := range rs {
		rs[i] = crdt.ReplicaID{Node: fmt.Sprintf("node-%d", i), Incarnation: 1}
	}
	rec := func(f func(i int) counts) []byte {
		cs := map[crdt.ReplicaID]counts{}
		for i, r := range rs {
			cs[r] = f(i)
		}
		return recordOf(b, "counter/12345", cs)
	}
	older := rec(func(i int) counts { return counts{p: uint64(100 + i), n: 3} })
	newer := rec(func(i int) counts { return counts{p: uint64(100 + i + 1), n: 3} })
	left := rec(func(i int) counts { return counts{p: uint64(100 + i*(i%2)), n: 3} })
	right := rec(func(i int) counts { return counts{p: uint64(100 + i*((i+1)%2)), n: 3} })
	cases := []struct {
		name string
		ops  [][]byte
	}{
		{"one", [][]byte{newer}},
		{"newer+older", [][]byte{newer, older}},
		{"diverged", [][]byte{left, right}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				m, _ := newJoinMerger(nil, c.ops[0])
				for _, op := range c.ops[1:] {
					_ = m.MergeOlder(op)
				}
				if _, _, err := m.Finish(true); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("check", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := checkCounterRecord("counter/12345", newer); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// restartDirs holds the data dirs BenchmarkRestart built, by key count, so -count reruns
// reuse them; TestMain removes them.
var restartDirs = struct {
	sync.Mutex
	byKeys map[int]string
}{byKeys: map[int]string{}}

func removeRestartDirs() {
	restartDirs.Lock()
	defer restartDirs.Unlock()
	for _, d := range restartDirs.byKeys {
		_ = os.RemoveAll(d)
	}
}

// buildRestartDir writes n keys' records (five replicas each) into a new data dir, the way
// a running peer would (batches of 1,000 records, the last commit synced), and closes it.
func buildRestartDir(b *testing.B, n int) string {
	restartDirs.Lock()
	defer restartDirs.Unlock()
	if d, ok := restartDirs.byKeys[n]; ok {
		return d
	}
	dir, err := os.MkdirTemp("", "store-restart-")
	if err != nil {
		b.Fatal(err)
	}
	db, err := Open(dir+"/store", DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	s, _ := crdt.New(crdt.Config{Shards: 1})
	rs := make([]crdt.ReplicaID, 5)
	for i := range rs {
		rs[i] = crdt.ReplicaID{Node: fmt.Sprintf("node-%d", i), Incarnation: 1}
	}
	const per = 1000
	for start := 0; start < n; start += per {
		// A small store per chunk keeps the builder's own memory small.
		_ = s.Restore(crdt.State{})
		bt := db.NewBatch()
		for i := start; i < min(start+per, n); i++ {
			key := "counter/" + strconv.Itoa(i)
			for j, r := range rs {
				if _, err := s.Apply(key, r, int64(1+(i+j)%1000)); err != nil {
					b.Fatal(err)
				}
			}
			if err := bt.MergeCounterFrom(s, key); err != nil {
				b.Fatal(err)
			}
		}
		if err := bt.Commit(start+per >= n); err != nil {
			b.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	restartDirs.byKeys[n] = dir
	return dir
}

// restartResult is what a restart child process reports.
type restartResult struct {
	Keys          int     `json:"keys"`
	OpenSeconds   float64 `json:"open_s"`
	ScanSeconds   float64 `json:"scan_s"`
	LoadSeconds   float64 `json:"load_s"`
	TotalSeconds  float64 `json:"total_s"`
	PeakHeapMB    float64 `json:"peak_heap_mb"`
	LiveHeapMB    float64 `json:"live_heap_mb"`
	RSSMB         float64 `json:"rss_mb"`
	PeakRSSMB     float64 `json:"peak_rss_mb"`
	StoreValueSum int64   `json:"sum"`
}

// BenchmarkRestart measures what the store part of a restart costs with n keys: Open the
// data dir and load the records into a crdt.Store, either as crdt/doc.go describes (every
// record into one State by ScanCounters, then Restore: mode=restore) or by LoadCounters
// (chunks of 10,000 records merged into the store: mode=load). Each run is a fresh child
// process, so its RSS is the restart's own; set GOMEMLIMIT to see what a memory limit does.
func BenchmarkRestart(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		for _, mode := range []string{"restore", "load"} {
			b.Run(fmt.Sprintf("keys=%d/mode=%s", n, mode), func(b *testing.B) {
				dir := buildRestartDir(b, n)
				var last restartResult
				var total float64
				for b.Loop() {
					cmd := exec.Command(os.Args[0], "-test.run=^TestRestartChild$", "-test.count=1")
					cmd.Env = append(os.Environ(), "STORE_RESTART_DIR="+dir+"/store", "STORE_RESTART_MODE="+mode)
					out, err := cmd.CombinedOutput()
					if err != nil {
						b.Fatalf("restart child: %v\n%s", err, out)
					}
					line := ""
					for _, l := range strings.Split(string(out), "\n") {
						if strings.HasPrefix(l, "RESTART ") {
							line = strings.TrimPrefix(l, "RESTART ")
						}
					}
					if err := json.Unmarshal([]byte(line), &last); err != nil {
						b.Fatalf("restart child said %q: %v", out, err)
					}
					if last.Keys != n {
						b.Fatalf("restart loaded %d keys, want %d", last.Keys, n)
					}
					total += last.TotalSeconds
				}
				b.ReportMetric(total/float64(b.N), "restart-s")
				b.ReportMetric(last.OpenSeconds, "open-s")
				b.ReportMetric(last.ScanSeconds, "scan-s")
				if mode == "restore" {
					b.ReportMetric(last.LoadSeconds, "restore-s") // in load mode, scan-s has it
				}
				b.ReportMetric(last.PeakHeapMB, "peak-heap-MB")
				b.ReportMetric(last.LiveHeapMB, "live-heap-MB")
				b.ReportMetric(last.PeakRSSMB, "peak-RSS-MB")
				b.ReportMetric(last.RSSMB, "RSS-MB")
			})
		}
	}
}

// TestRestartChild is BenchmarkRestart's child process; it does nothing in a normal run.
func TestRestartChild(t *testing.T) {
	dir := os.Getenv("STORE_RESTART_DIR")
	if dir == "" {
		t.Skip("only run by BenchmarkRestart")
	}
	mode := os.Getenv("STORE_RESTART_MODE")
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { sampleHeap(&peak, stop) })
	start := time.Now()
	db, err := Open(dir, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	opened := time.Now()
	s, err := crdt.New(crdt.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	var st crdt.State
	var scanned, loadTime time.Duration
	switch mode {
	case "restore":
		err = db.ScanCounters(func(_ string, rec []byte) error { return st.AppendEncoded(rec) })
		scanned = time.Since(opened)
		if err == nil {
			t0 := time.Now()
			err = s.Restore(st)
			loadTime = time.Since(t0)
		}
	case "load":
		_, err = db.LoadCounters(s)
		scanned = time.Since(opened) // scan and load together
	default:
		t.Fatalf("unknown mode %q", mode)
	}
	if err != nil {
		t.Fatal(err)
	}
	total := time.Since(start)
	st = crdt.State{}
	close(stop)
	wg.Wait()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	rss, hwm := procStatus(t)
	var sum int64
	keys, _ := s.Keys("", "", 3)
	for _, k := range keys {
		v, _ := s.Value(k)
		sum += v
	}
	res := restartResult{
		Keys: s.Len(), OpenSeconds: opened.Sub(start).Seconds(), ScanSeconds: scanned.Seconds(),
		LoadSeconds: loadTime.Seconds(), TotalSeconds: total.Seconds(),
		PeakHeapMB: float64(peak.Load()) / (1 << 20), LiveHeapMB: float64(ms.HeapAlloc) / (1 << 20),
		RSSMB: rss, PeakRSSMB: hwm, StoreValueSum: sum,
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(res)
	fmt.Printf("RESTART %s\n", out)
}

// sampleHeap records the largest heap seen until stop closes.
func sampleHeap(peak *atomic.Uint64, stop <-chan struct{}) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		metrics.Read(sample)
		if v := sample[0].Value.Uint64(); v > peak.Load() {
			peak.Store(v)
		}
		select {
		case <-stop:
			return
		case <-tick.C:
		}
	}
}

// procStatus returns this process's resident set size and its peak, in MiB.
func procStatus(t *testing.T) (rss, hwm float64) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(fields[1], 64)
		switch fields[0] {
		case "VmRSS:":
			rss = kb / 1024
		case "VmHWM:":
			hwm = kb / 1024
		}
	}
	return rss, hwm
}
