package agent_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ringleader/ringleader/agent"
)

// onePeerServer starts a one-peer cluster, waits until it takes writes, and
// serves its HTTP API until the test ends.
func onePeerServer(t *testing.T) *httptest.Server {
	t.Helper()
	c := newCluster(t, 1, nil)
	waitWritable(t, c.agents...)
	srv := httptest.NewServer(c.agents[0].Handler())
	t.Cleanup(srv.Close)
	return srv
}

// TestCounterHTTPAPI runs a sequence of requests against one peer's API;
// each step sees the effects of the ones before.
func TestCounterHTTPAPI(t *testing.T) {
	srv := onePeerServer(t)

	for _, tc := range []struct {
		name     string
		method   string
		path     string
		body     string
		header   string // Idempotency-Key
		wantCode int
		want     string // a substring of the body
	}{
		{"never written reads 0", "GET", "/v1/counters/nothing", "", "", 200, `"value": 0`},
		{"increment", "POST", "/v1/counters/hits", `{"delta": 5}`, "", 200, `{"key":"hits","value":5}`},
		{"decrement", "POST", "/v1/counters/hits", `{"delta":-2}`, "", 200, `"value":3`},
		{"read", "GET", "/v1/counters/hits", "", "", 200, `"value":3`},
		{"read majority alone", "GET", "/v1/counters/hits?consistency=majority", "", "", 200, `"value":3`},
		{"write majority alone", "POST", "/v1/counters/hits?consistency=majority", `{"delta":1}`, "", 200, `"value":4`},
		{"bad consistency", "GET", "/v1/counters/hits?consistency=all", "", "", 400, `local or majority`},
		{"repeated query parameter", "POST", "/v1/counters/hits?consistency=local&consistency=majority", `{"delta":1}`, "", 400, `query parameter \"consistency\" is given 2 times`},
		{"bad query escape", "GET", "/v1/counters?prefix=%zz", "", "", 400, `bad query string`},
		{"misspelled query parameter", "POST", "/v1/counters/hits?consistancy=majority", `{"delta":1}`, "", 400, `unknown query parameter \"consistancy\": /v1/counters/{key...} takes consistency`},
		{"query parameter of another route", "GET", "/v1/counters?n=3", "", "", 400, `/v1/counters takes prefix, limit, after, consistency`},
		{"query parameter on a route that takes none", "GET", "/v1/health?verbose=1", "", "", 400, `/v1/health takes none`},
		{"wrong method before a bad query", "PATCH", "/v1/counters/hits?x=%zz", "", "", 405, `use GET or POST`},
		{"unknown path before a bad query", "GET", "/v1/nope?x=%zz", "", "", 404, `no route`},
		{"zero delta", "POST", "/v1/counters/hits", `{"delta":0}`, "", 400, `must not be 0`},
		{"absent delta", "POST", "/v1/counters/hits", `{}`, "", 400, `no \"delta\"`},
		{"fractional delta", "POST", "/v1/counters/hits", `{"delta":1.5}`, "", 400, `not an integer`},
		{"string delta", "POST", "/v1/counters/hits", `{"delta":"5"}`, "", 400, `is a string`},
		{"delta past int64", "POST", "/v1/counters/hits", `{"delta":9223372036854775808}`, "", 400, `int64 range`},
		{"unknown field", "POST", "/v1/counters/hits", `{"delta":1,"dleta":2}`, "", 400, `unknown field`},
		{"repeated field", "POST", "/v1/counters/hits", `{"delta":1,"delta":2}`, "", 400, `repeats the field \"delta\"`},
		{"field in upper case", "POST", "/v1/counters/hits", `{"DELTA":1}`, "", 400, `field names are lower case`},
		{"batch item repeats a field", "POST", "/v1/counters:batch", `{"items":[{"key":"hits","delta":1,"key":"other"}]}`, "", 400, `repeats the field \"key\"`},
		{"batch field in mixed case", "POST", "/v1/counters:batch", `{"items":[{"Key":"hits","delta":1}]}`, "", 400, `field names are lower case`},
		{"empty body", "POST", "/v1/counters/hits", ``, "", 400, `"bad request body: empty body`},
		{"batch item field of the wrong type", "POST", "/v1/counters:batch", `{"items":[{"key":1,"delta":1}]}`, "", 400, `"bad request body: field \"items.key\" must be a string, not a number"`},
		{"two values", "POST", "/v1/counters/hits", `{"delta":1}{"delta":1}`, "", 400, `more than one`},
		{"overflow", "POST", "/v1/counters/hits", `{"delta":9223372036854775807}`, "", 400, `out of the int64 range`},
		{"unchanged after refusals", "GET", "/v1/counters/hits", "", "", 200, `"value":4`},
		{"key with slashes", "POST", "/v1/counters/a/../b", `{"delta":1}`, "", 200, `"key":"a/../b"`},
		{"escaped slash", "POST", "/v1/counters/x%2Fy", `{"delta":2}`, "", 200, `"key":"x/y"`},
		{"escaped slash read", "GET", "/v1/counters/x/y", "", "", 200, `"value":2`},
		{"key needing escapes", "POST", "/v1/counters/say%20%22hi%22", `{"delta":1}`, "", 200, `"key": "say \"hi\""`},
		{"control character", "POST", "/v1/counters/a%0Ab", `{"delta":1}`, "", 400, `control character`},
		{"key too long", "POST", "/v1/counters/" + strings.Repeat("k", 513), `{"delta":1}`, "", 400, `limit 512`},
		{"empty key", "POST", "/v1/counters/", `{"delta":1}`, "", 400, `key is empty`},
		{"wrong method", "PUT", "/v1/counters/hits", `{"delta":1}`, "", 405, `use GET or POST`},
		{"head is get without a body", "HEAD", "/v1/counters/hits", "", "", 200, ""},
		{"body too large", "POST", "/v1/counters/hits", `{"delta":` + strings.Repeat(" ", agent.MaxRequestBody) + `1}`, "", 413, `limit`},
		{"idempotent first", "POST", "/v1/counters/paid", `{"delta":10}`, "order-1", 200, `"value":10`},
		{"idempotent retry", "POST", "/v1/counters/paid", `{"delta":10}`, "order-1", 200, `"value":10`},
		{"idempotent reuse", "POST", "/v1/counters/paid", `{"delta":11}`, "order-1", 422, `different request`},
		{"idempotent other", "POST", "/v1/counters/paid", `{"delta":10}`, "order-2", 200, `"value":20`},
		{"batch", "POST", "/v1/counters:batch", `{"items":[{"key":"b1","delta":1},{"key":"b2","delta":-3},{"key":"b1","delta":4}]}`, "", 200, `"value": 5`},
		{"batch idempotent", "POST", "/v1/counters:batch", `{"items":[{"key":"b1","delta":1,"idempotency_key":"bk"}]}`, "", 200, `"value": 6`},
		{"batch idempotent retry", "POST", "/v1/counters:batch", `{"items":[{"key":"b1","delta":1,"idempotency_key":"bk"}]}`, "", 200, `"replayed": true`},
		{"batch bad item", "POST", "/v1/counters:batch", `{"items":[{"key":"b1","delta":1},{"key":"b2","delta":0}]}`, "", 400, `item 1`},
		{"batch key with a lone surrogate escape", "POST", "/v1/counters:batch", `{"items":[{"key":"bj-ok","delta":1},{"key":"bj\ud83d","delta":1}]}`, "", 400, `item 1: bad key: key is not valid UTF-8`},
		{"batch key with a lone low surrogate", "POST", "/v1/counters:batch", `{"items":[{"key":"bj\ude00x","delta":1}]}`, "", 400, `item 0: bad key: key is not valid UTF-8`},
		{"batch key with a byte not UTF-8", "POST", "/v1/counters:batch", "{\"items\":[{\"key\":\"bj-ok\",\"delta\":1},{\"key\":\"bj\xff\",\"delta\":1}]}", "", 400, `item 1: bad key: key is not valid UTF-8`},
		{"batch idempotency key with a lone surrogate escape", "POST", "/v1/counters:batch", `{"items":[{"key":"bj-ok","delta":1,"idempotency_key":"i\ud83d"}]}`, "", 400, `idempotency_key is not valid UTF-8`},
		{"nothing of a refused batch applied", "GET", "/v1/counters/bj-ok", "", "", 200, `"value":0`},
		{"no key repaired to U+FFFD", "GET", "/v1/counters/bj%EF%BF%BD", "", "", 200, `"value": 0`},
		{"batch key with a surrogate pair", "POST", "/v1/counters:batch", `{"items":[{"key":"bj\ud83d\ude00","delta":1}]}`, "", 200, `"key": "bj😀"`},
		{"batch empty", "POST", "/v1/counters:batch", `{"items":[]}`, "", 400, `no items`},
		{"batch refused whole says nothing was applied", "POST", "/v1/counters:batch", `{"items":[]}`, "", 400, `"applied":[]`},
		{"batch with a header key says nothing was applied", "POST", "/v1/counters:batch", `{"items":[{"key":"b1","delta":1}]}`, "k", 400, `"applied":[]`},
		{"batch with a bad body says nothing was applied", "POST", "/v1/counters:batch", `{"items":[{"key":"b1","delta":"1"}]}`, "", 400, `"applied":[]`},
		{"batch with a repeated parameter says nothing was applied", "POST", "/v1/counters:batch?consistency=local&consistency=local", `{"items":[{"key":"b1","delta":1}]}`, "", 400, `"applied":[]`},
		{"error text keeps its angle brackets", "POST", "/v1/counters/hits", `{}`, "", 400, `send {\"delta\": <non-zero integer>}`},
		{"batch overflow mid-way", "POST", "/v1/counters:batch", `{"items":[{"key":"b2","delta":1},{"key":"hits","delta":9223372036854775807}]}`, "", 400, `"applied":[{"index":0,"key":"b2","value":-2}]`},
		{"list", "GET", "/v1/counters?prefix=b", "", "", 200, `{"key": "b2", "value": -2}`},
		{"list page", "GET", "/v1/counters?limit=2", "", "", 200, `"next": "b1"`},
		{"list after", "GET", "/v1/counters?prefix=b&after=b1", "", "", 200, `"next": ""`},
		{"list bad limit", "GET", "/v1/counters?limit=0", "", "", 400, `from 1 to 10000`},
		{"metrics", "GET", "/metrics", "", "", 200, `ringleader_counter_increments_total`},
		{"metrics reads its own repeated parameters", "GET", "/metrics?name%5B%5D=ringleader_counter_keys&name%5B%5D=ringleader_members", "", "", 200, `ringleader_counter_keys`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.header != "" {
				req.Header.Set("Idempotency-Key", tc.header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			body := string(b)
			if strings.Contains(tc.want, `": `) || strings.HasPrefix(tc.want, `{"key": `) {
				// Compare indented output: normalize compact answers.
				var v any
				if json.Unmarshal(b, &v) == nil {
					nb, _ := json.MarshalIndent(v, "", "  ")
					body += "\n" + string(nb) + "\n" + compactItems(v)
				}
			}
			if resp.StatusCode != tc.wantCode || !strings.Contains(body, tc.want) {
				t.Fatalf("%s %s: %d %s\nwant %d and %q", tc.method, tc.path, resp.StatusCode, body, tc.wantCode, tc.want)
			}
			if tc.name == "idempotent retry" && resp.Header.Get("Idempotent-Replayed") != "true" {
				t.Fatalf("replayed answer without the Idempotent-Replayed header")
			}
			if tc.name == "idempotent first" && resp.Header.Get("Idempotent-Replayed") != "" {
				t.Fatalf("first answer marked replayed")
			}
		})
	}
}

// compactItems renders the counters of a listing one per line as
// {"key": k, "value": v}, for substring checks.
func compactItems(v any) string {
	m, _ := v.(map[string]any)
	list, _ := m["counters"].([]any)
	var out strings.Builder
	for _, it := range list {
		e, _ := it.(map[string]any)
		kb, _ := json.Marshal(e["key"])
		vb, _ := json.Marshal(e["value"])
		out.WriteString(`{"key": ` + string(kb) + `, "value": ` + string(vb) + "}\n")
	}
	return out.String()
}

func TestCounterWritesRefusedUntilReady(t *testing.T) {
	net := newNetwork(t)
	cfg := newAgentConfig(t, net, 1)
	cfg.RetryJoin = []string{ip(0)} // a seed that never answers
	cfg.Counters.IdentityTimeout = time.Hour
	a := startAgent(t, cfg)
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/v1/counters/k", "application/json", strings.NewReader(`{"delta":1}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(b), "replica identity") {
		t.Fatalf("write before the identity check: %d %s", resp.StatusCode, b)
	}
}

// TestCounterIdempotencyKeyRefused checks that an Idempotency-Key that is
// present but empty, repeated or malformed is refused, not taken for no
// key, and that the error names the Idempotency-Key, not the counter key.
func TestCounterIdempotencyKeyRefused(t *testing.T) {
	srv := onePeerServer(t)

	for _, tc := range []struct {
		name     string
		path     string
		body     string
		header   []string // Idempotency-Key values; nil: no header
		wantCode int
		want     string // a substring of the body
	}{
		{"empty header", "/v1/counters/ik", `{"delta":1}`, []string{""}, 400, `bad Idempotency-Key: it is empty`},
		{"two headers", "/v1/counters/ik", `{"delta":1}`, []string{"a", "b"}, 400, `bad Idempotency-Key: the request has 2 Idempotency-Key headers; send one`},
		{"two headers, one empty", "/v1/counters/ik", `{"delta":1}`, []string{"a", ""}, 400, `2 Idempotency-Key headers`},
		{"header too long", "/v1/counters/ik", `{"delta":1}`, []string{strings.Repeat("i", 256)}, 400, `bad Idempotency-Key: it is 256 bytes, limit 255`},
		{"header not ASCII", "/v1/counters/ik", `{"delta":1}`, []string{"ik-é"}, 400, `bad Idempotency-Key: byte 3 (0xc3) is not printable ASCII`},
		{"batch item empty", "/v1/counters:batch", `{"items":[{"key":"ik","delta":1},{"key":"ik","delta":1,"idempotency_key":""}]}`, nil, 400, `item 1 (\"ik\"): bad Idempotency-Key: it is empty`},
		{"batch item too long", "/v1/counters:batch", `{"items":[{"key":"ik","delta":1,"idempotency_key":"` + strings.Repeat("i", 256) + `"}]}`, nil, 400, `item 0 (\"ik\"): bad Idempotency-Key: it is 256 bytes`},
		{"batch item repeated", "/v1/counters:batch", `{"items":[{"key":"ik","delta":1,"idempotency_key":"r"},{"key":"ik","delta":1,"idempotency_key":"r"}]}`, nil, 400, `bad Idempotency-Key: item 1 repeats`},
		{"batch empty header", "/v1/counters:batch", `{"items":[{"key":"ik","delta":1}]}`, []string{""}, 400, `a batch takes no Idempotency-Key header`},
		{"nothing applied", "/v1/counters/ik", "", nil, 200, `"value":0`},
		{"a good header", "/v1/counters/ik", `{"delta":1}`, []string{"ik-1"}, 200, `"value":1`},
		{"batch item null is no key", "/v1/counters:batch", `{"items":[{"key":"ik","delta":1,"idempotency_key":null}]}`, nil, 200, `"value":2`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method := "POST"
			if tc.body == "" {
				method = "GET"
			}
			req, err := http.NewRequest(method, srv.URL+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.header != nil {
				req.Header["Idempotency-Key"] = tc.header
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.wantCode || !strings.Contains(string(b), tc.want) {
				t.Fatalf("%s %s with Idempotency-Key %q: %d %s\nwant %d and %q", method, tc.path, tc.header, resp.StatusCode, b, tc.wantCode, tc.want)
			}
			if strings.Contains(string(b), "bad key") {
				t.Fatalf("the error calls a bad Idempotency-Key a bad key: %s", b)
			}
		})
	}
}

// A body in an encoding the API does not decode is refused as such, not
// misread as bad JSON, and nothing is applied.
func TestCompressedBodyRefused(t *testing.T) {
	srv := onePeerServer(t)
	for _, enc := range []string{"gzip", "br, gzip"} {
		req, err := http.NewRequest("POST", srv.URL+"/v1/counters/enc", strings.NewReader(`{"delta":1}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Encoding", enc)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnsupportedMediaType || !strings.Contains(string(b), "send the body uncompressed") {
			t.Fatalf("Content-Encoding %q: %d %s; want 415 saying to send it uncompressed", enc, resp.StatusCode, b)
		}
	}
	// Two headers: each counts.
	req, _ := http.NewRequest("POST", srv.URL+"/v1/counters/enc", strings.NewReader(`{"delta":1}`))
	req.Header.Add("Content-Encoding", "identity")
	req.Header.Add("Content-Encoding", "gzip")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Fatalf("Content-Encoding identity then gzip: %d, want 415", resp.StatusCode)
	}
	// No body, nothing to decode: the header does not matter.
	req, _ = http.NewRequest("GET", srv.URL+"/v1/health", nil)
	req.Header.Set("Content-Encoding", "gzip")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/health with Content-Encoding gzip and no body: %d, want 200", resp.StatusCode)
	}
	req, _ = http.NewRequest("POST", srv.URL+"/v1/counters/enc", strings.NewReader(`{"delta":1}`))
	req.Header.Set("Content-Encoding", "identity")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"value":1`) {
		t.Fatalf("Content-Encoding identity: %d %s; want 200 with value 1 (nothing applied before)", resp.StatusCode, b)
	}
}
