package agent

import (
	"bytes"
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
		strictErr := decodeJSON(bytes.NewReader(b), &body)
		var strict int64
		if strictErr == nil {
			strict, strictErr = parseDelta(body.Delta, "body")
		}
		if ok && (strictErr != nil || strict != fast) {
			t.Fatalf("fast path took %q as %d; strict path: %d, %v", b, fast, strict, strictErr)
		}
	})
}
