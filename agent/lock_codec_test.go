package agent

import (
	"bytes"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/ringleader/ringleader/agent/peerrpc"
	"github.com/vmihailenco/msgpack/v5"
)

// plainLockOpRequest and plainLockOpResponse have the fields and tags of the
// lock messages but not their coders, so msgpack/v5 encodes them by
// reflection: the reference the hand-written coders must match.
type (
	plainLockOpRequest  lockOpRequest
	plainLockOpResponse lockOpResponse
)

func randString(r *rand.Rand) string {
	if r.IntN(3) == 0 {
		return ""
	}
	b := make([]byte, r.IntN(40))
	for i := range b {
		b[i] = byte(r.IntN(256))
	}
	return string(b)
}

func randInt(r *rand.Rand) int64 {
	switch r.IntN(4) {
	case 0:
		return 0
	case 1:
		return int64(r.IntN(300)) - 150
	case 2:
		return []int64{math.MinInt64, math.MaxInt64, -1, 1 << 40}[r.IntN(4)]
	}
	return int64(r.Uint64())
}

func randRequest(r *rand.Rand) lockOpRequest {
	return lockOpRequest{Op: randString(r), Key: randString(r), Holder: randString(r),
		TTL: time.Duration(randInt(r)), Wait: time.Duration(randInt(r)), Lease: randString(r),
		Fallback: r.IntN(2) == 0, Skip: randString(r)}
}

func randResponse(r *rand.Rand) lockOpResponse {
	return lockOpResponse{Code: randString(r), Error: randString(r), Redirect: randString(r),
		Owner: randString(r), Token: randInt(r), Lease: randString(r), TTL: time.Duration(randInt(r)),
		Held: r.IntN(2) == 0, Holder: randString(r), Remaining: time.Duration(randInt(r)),
		Waiters: int(randInt(r)), Fallback: r.IntN(2) == 0, Leaving: r.IntN(2) == 0}
}

// TestLockOpCodecMatchesReflection checks that the hand-written coders write
// exactly the bytes reflection writes, and read them back.
func TestLockOpCodecMatchesReflection(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 5000 {
		req := randRequest(r)
		checkSameEncoding(t, i, &req, (*plainLockOpRequest)(&req), new(lockOpRequest))
		resp := randResponse(r)
		checkSameEncoding(t, i, &resp, (*plainLockOpResponse)(&resp), new(lockOpResponse))
	}
}

func checkSameEncoding(t *testing.T, i int, v, plain, back any) {
	t.Helper()
	got, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	want, err := msgpack.Marshal(plain)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("case %d: %+v\nhand-written %x\nreflection   %x", i, v, got, want)
	}
	if err := peerrpc.Unmarshal(got, back); err != nil {
		t.Fatalf("case %d: %v", i, err)
	}
	if !reflect.DeepEqual(back, v) {
		t.Fatalf("case %d: decoded %+v, want %+v", i, back, v)
	}
}

// FuzzLockOpCodec decodes arbitrary bytes with the hand-written decoders and
// with reflection: where reflection reads a map, both must read the same
// fields; the hand-written decoder must never accept what reflection refuses.
func FuzzLockOpCodec(f *testing.F) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 8 {
		req := randRequest(r)
		b, _ := msgpack.Marshal(&req)
		f.Add(b)
		resp := randResponse(r)
		b, _ = msgpack.Marshal(&resp)
		f.Add(b)
	}
	f.Add([]byte{0xc0})
	f.Add([]byte{0x81, 0xa1, 'k', 0x93, 1, 2, 3})
	f.Add([]byte{0x82, 0xa1, 't', 0xcb, 0, 0, 0, 0, 0, 0, 0, 0, 0xa1, 'k', 0xc4, 1, 'x'})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 || b[0]&0xf0 == 0x90 || b[0] == 0xdc || b[0] == 0xdd {
			return // arrays: reflection reads a struct from one; these types never send one
		}
		var req lockOpRequest
		var preq plainLockOpRequest
		compareDecoders(t, b, &req, &preq, func() bool { return reflect.DeepEqual(lockOpRequest(preq), req) })
		var resp lockOpResponse
		var presp plainLockOpResponse
		compareDecoders(t, b, &resp, &presp, func() bool { return reflect.DeepEqual(lockOpResponse(presp), resp) })
	})
}

func compareDecoders(t *testing.T, b []byte, v, plain any, same func() bool) {
	t.Helper()
	err := peerrpc.Unmarshal(b, v)
	perr := peerrpc.Unmarshal(b, plain)
	if (err == nil) != (perr == nil) {
		t.Fatalf("%x: hand-written decoder says %v, reflection %v", b, err, perr)
	}
	if err == nil && !same() {
		t.Fatalf("%x: hand-written decoder read %+v, reflection %+v", b, v, plain)
	}
}
