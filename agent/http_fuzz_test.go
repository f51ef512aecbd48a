package agent

import (
	"encoding/json"
	"testing"
)

// FuzzParseDelta checks the hand-written parser of single-write bodies
// against the strict JSON path: whatever the fast path accepts, the strict
// decoder accepts with the same delta, and neither panics.
func FuzzParseDelta(f *testing.F) {
	for _, s := range []string{`{"delta":1}`, `{"delta": -5}`, ` { "delta" : 9223372036854775807 } `, `{"delta":0}`,
		`{"delta":01}`, `{"delta":-}`, `{"delta":1.5}`, `{"delta":"5"}`, `{"delta":1}x`, `{}`, ``, `{"delta":-9223372036854775808}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fast, ok := parseDeltaFast(b)
		var body struct {
			Delta json.RawMessage `json:"delta"`
		}
		strictErr := decodeJSON(b, &body)
		var strict int64
		if strictErr == nil {
			strict, strictErr = parseDelta(body.Delta, "body")
		}
		if ok && (strictErr != nil || strict != fast) {
			t.Fatalf("fast path took %q as %d; strict path: %d, %v", b, fast, strict, strictErr)
		}
	})
}

// FuzzParseBatch checks the hand-written batch parser against the strict
// decoder: whatever the fast path accepts, the strict path accepts with
// the same items.
func FuzzParseBatch(f *testing.F) {
	for _, s := range []string{`{"items":[{"key":"a","delta":1}]}`, `{"items": [ {"key": "a/b", "delta": -5, "idempotency_key": "x"}, {"delta":2,"key":"c"} ] }`,
		`{"items":[]}`, `{"items":[{"key":"a","delta":0}]}`, `{"items":[{"key":"a\"b","delta":1}]}`, `{"items":[{"key":"a","delta":1,"key":"b"}]}`,
		`{"items":[{"key":"a","delta":1.0}]}`, `{"items":[{"key":"a"}]}`, `{"items":[{"key":"a","delta":1}]} x`, `{"items":[{"key":"é","delta":1e2}]}`,
		`{"items":[{"key":"a\ud83d","delta":1}]}`, "{\"items\":[{\"key\":\"a\xff\",\"delta\":1}]}", `{"items":[{"key":"a\ud83d\ude00","delta":1}]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fast, ok := parseBatchFast(b)
		if !ok {
			return
		}
		strict, err := parseBatchStrict(b)
		if err != nil {
			t.Fatalf("fast path took %q as %+v; strict path: %v", b, fast, err)
		}
		if len(fast) != len(strict) {
			t.Fatalf("%q: fast %d items, strict %d", b, len(fast), len(strict))
		}
		for i := range fast {
			if fast[i] != strict[i] {
				t.Fatalf("%q: item %d fast %+v, strict %+v", b, i, fast[i], strict[i])
			}
		}
	})
}

// FuzzParseLockBody checks the hand-written lock body parser against the
// strict JSON path: whatever the fast path accepts, the strict decoder
// accepts with the same fields.
func FuzzParseLockBody(f *testing.F) {
	for _, s := range []string{``, ` `, `{}`, `{"ttl":"10s"}`, `{"ttl":"4s","wait":"1s","holder":"cron@h1"}`, `{"lease":"00ff","ttl":"2s"}`,
		`{"ttl":"1s","ttl":"2s"}`, `{"TTL":"1s"}`, `{"ttl":1}`, `{"ttl":"a\"b"}`, `{"x":"y"}`, `{"ttl":"1s"} {}`, `{"holder":"é"}`, `null`, `{"ttl":"1s",}`,
		`{"holder":"\ud83d"}`, "{\"holder\":\"\xff\"}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fast, ok := parseLockBodyFast(b)
		strict, err := parseLockBodyStrict(b)
		if !ok {
			return
		}
		if err != nil {
			t.Fatalf("fast path took %q as %+v; strict path: %v", b, fast, err)
		}
		str := func(p *string) string {
			if p == nil {
				return "<nil>"
			}
			return *p
		}
		if str(fast.TTL) != str(strict.TTL) || str(fast.Wait) != str(strict.Wait) || fast.Holder != strict.Holder || fast.Lease != strict.Lease {
			t.Fatalf("fast path took %q as %+v, strict as %+v", b, fast, strict)
		}
	})
}
