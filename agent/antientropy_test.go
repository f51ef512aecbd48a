package agent

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// A peer that holds nothing compares with one that holds many keys: the
// level-2 digest goes in parts (here of about 50 keys), and the empty peer ends with exactly the other's state.
func TestAntiEntropyInPartsFillsAnEmptyPeer(t *testing.T) {
	defer func(n int) { aeMaxDigestBytes = n }(aeMaxDigestBytes)
	aeMaxDigestBytes = 50 * 15 // about 50 keys of 5 bytes
	_, as, _ := startInternalCluster(t, 2, func(i int, cfg *Config) {
		cfg.Counters.SpreadInterval = time.Hour // no pushes: only anti-entropy
		cfg.Counters.AntiEntropyInterval = time.Hour
	})
	defer as[0].Shutdown()
	defer as[1].Shutdown()
	waitBench(t, 20*time.Second, "2 alive", func() bool { return allSeeAlive(as, 2) })
	ctx := context.Background()
	var items []CounterItem
	for i := range 3000 {
		items = append(items, CounterItem{Key: fmt.Sprintf("k%04d", i), Delta: int64(i%7 + 1)})
	}
	if _, err := as[0].Add(ctx, items, Local); err != nil {
		t.Fatal(err)
	}
	// The full peer starts the comparison, so its level-2 digest lists all
	// 3,000 keys and goes in about 60 parts.
	addr := as[0].View().RPC["n2"]
	repaired, err := as[0].antiEntropy(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	if repaired != 3000 {
		t.Fatalf("repaired %d keys, want 3000", repaired)
	}
	if !allEqual(as) {
		t.Fatal("stores differ after anti-entropy")
	}
	for i := range 3000 {
		if v, err := as[1].ctr.value(fmt.Sprintf("k%04d", i)); err != nil || v != int64(i%7+1) {
			t.Fatalf("k%04d = %d, %v", i, v, err)
		}
	}
}

// Long keys, many of them differing: every message of a round stays
// inside the peer RPC frame limit (4 MiB), whichever side starts it.
func TestAntiEntropyWithLongKeys(t *testing.T) {
	for _, fullStarts := range []bool{true, false} {
		t.Run(fmt.Sprintf("full starts %v", fullStarts), func(t *testing.T) {
			_, as, _ := startInternalCluster(t, 2, func(i int, cfg *Config) {
				cfg.Counters.SpreadInterval = time.Hour
				cfg.Counters.AntiEntropyInterval = time.Hour
			})
			defer as[0].Shutdown()
			defer as[1].Shutdown()
			waitBench(t, 20*time.Second, "2 alive", func() bool { return allSeeAlive(as, 2) })
			ctx := context.Background()
			long := strings.Repeat("x", 490)
			for b := range 9 {
				var items []CounterItem
				for i := range 1000 {
					items = append(items, CounterItem{Key: fmt.Sprintf("L/%s%06d", long, b*1000+i), Delta: 1})
				}
				if _, err := as[0].Add(ctx, items, Local); err != nil {
					t.Fatal(err)
				}
			}
			from, to := as[1], "n1"
			if fullStarts {
				from, to = as[0], "n2"
			}
			if _, err := from.antiEntropy(ctx, from.View().RPC[to]); err != nil {
				t.Fatal(err)
			}
			if !allEqual(as) {
				t.Fatalf("stores differ after anti-entropy: n2 holds %d of %d keys", as[1].ctr.store.Len(), as[0].ctr.store.Len())
			}
		})
	}
}
