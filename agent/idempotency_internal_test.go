package agent

import (
	"context"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// startOneForIdem starts a one-peer agent for calling the idempotency
// handlers directly.
func startOneForIdem(tb testing.TB) *Agent {
	tb.Helper()
	net, as, _ := startInternalCluster(tb, 1, nil)
	tb.Cleanup(func() {
		as[0].Shutdown()
		net.Close()
	})
	return as[0]
}

// A copy of another peer's idempotency records is validated before any
// is kept: a bad one refuses the call and keeps nothing; a good one is
// kept, and a key that has a record keeps its first.
func TestIdemPutValidatesAndKeepsTheFirst(t *testing.T) {
	a := startOneForIdem(t)
	ctx := context.Background()
	good := idemPut{Key: "order-1", Record: idemRecord{Key: "paid", Delta: 5, Value: 5}, TTLMillis: 60_000}
	for _, tc := range []struct {
		name string
		req  idemPutRequest
		want string
	}{
		{"empty idempotency key", idemPutRequest{Records: []idemPut{good, {Key: "", Record: good.Record, TTLMillis: 1}}}, "record 1"},
		{"bad counter key", idemPutRequest{Records: []idemPut{good, {Key: "x", Record: idemRecord{Key: "", Delta: 1}, TTLMillis: 1}}}, "record 1"},
		{"no time left", idemPutRequest{Records: []idemPut{good, {Key: "x", Record: good.Record, TTLMillis: 0}}}, "want more than 0"},
		{"too many", idemPutRequest{Records: make([]idemPut, MaxBatchItems+1)}, "at most"},
	} {
		if _, err := a.handleIdemPut(ctx, &tc.req); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
		if got, _ := a.handleIdemGet(ctx, &idemGetRequest{Key: good.Key}); got.Found {
			t.Fatalf("%s: a record was kept from a refused call", tc.name)
		}
	}
	if n := a.ctr.idemCount.Load(); n != 0 {
		t.Fatalf("%d records counted after refusals", n)
	}
	resp, err := a.handleIdemPut(ctx, &idemPutRequest{Records: []idemPut{good}})
	if err != nil || resp.Stored != 1 {
		t.Fatalf("good copy: %+v, %v", resp, err)
	}
	other := good
	other.Record.Value = 99
	if resp, err := a.handleIdemPut(ctx, &idemPutRequest{Records: []idemPut{other}}); err != nil || resp.Stored != 0 {
		t.Fatalf("second copy of the key: %+v, %v; want kept the first", resp, err)
	}
	got, err := a.handleIdemGet(ctx, &idemGetRequest{Key: good.Key})
	if err != nil || !got.Found || got.Record != good.Record {
		t.Fatalf("record: %+v, %v; want %+v", got, err, good.Record)
	}
	if n := a.ctr.idemCount.Load(); n != 1 {
		t.Fatalf("%d records counted, want 1", n)
	}
}

// FuzzIdemPut feeds arbitrary msgpack to the copy handler as peer RPC
// would decode it: it must not panic, and keeps records only when it
// says so.
func FuzzIdemPut(f *testing.F) {
	seed, _ := msgpack.Marshal(&idemPutRequest{Records: []idemPut{{Key: "k", Record: idemRecord{Key: "c", Delta: 1, Value: 1}, TTLMillis: 1000}}})
	f.Add(seed)
	f.Add([]byte{0x80})
	f.Add([]byte{0x81, 0xa7, 'r', 'e', 'c', 'o', 'r', 'd', 's', 0x91, 0x80})
	a := startOneForIdem(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		var req idemPutRequest
		if msgpack.Unmarshal(b, &req) != nil {
			return
		}
		before := a.ctr.idemCount.Load()
		resp, err := a.handleIdemPut(context.Background(), &req)
		after := a.ctr.idemCount.Load()
		switch {
		case err != nil && after != before:
			t.Fatalf("refused (%v) but the count went from %d to %d", err, before, after)
		case err == nil && after-before != int64(resp.Stored):
			t.Fatalf("stored %d but the count went from %d to %d", resp.Stored, before, after)
		}
	})
}
