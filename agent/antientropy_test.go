package agent

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// A peer that holds nothing compares with one that holds many keys: the
// level-2 digest goes in parts (here of 50 keys) and the replies in
// several rounds, and the empty peer ends with exactly the other's state.
func TestAntiEntropyInPartsFillsAnEmptyPeer(t *testing.T) {
	defer func(n int) { aeMaxDigestKeys = n }(aeMaxDigestKeys)
	aeMaxDigestKeys = 50
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
	// 3,000 keys and goes in 60 parts.
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
