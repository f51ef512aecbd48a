package agent_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ringleader/ringleader/agent"
)

func doJSON(t *testing.T, method, url, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber() // tokens are exact integers
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("%s %s: body %q is not JSON: %v", method, url, raw, err)
	}
	return resp.StatusCode, m
}

// TestLockHTTPAPI runs the lock routes against one peer: statuses and
// bodies as documented.
func TestLockHTTPAPI(t *testing.T) {
	c := newCluster(t, 1, nil)
	g := acquireEventually(t, c.agents[0], "warm", agent.LockRequest{}) // past the quiet period
	if err := c.agents[0].ReleaseLock(t.Context(), "warm", g.Lease); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c.agents[0].Handler())
	defer srv.Close()
	u := srv.URL + "/v1/locks/jobs/nightly"

	code, m := doJSON(t, "POST", u, `{"ttl":"1500ms","holder":"cron-1"}`)
	lease, _ := m["lease"].(string)
	token, _ := m["token"].(json.Number).Int64()
	ttl, _ := m["ttl_ms"].(json.Number).Int64()
	if code != 200 || m["key"] != "jobs/nightly" || len(lease) != 32 || token <= 0 || token >= 1<<53 || m["owner"] != "n1" || ttl > 1500 {
		t.Fatalf("acquire: %d %v", code, m)
	}
	for _, tc := range []struct {
		name, method, url, body string
		wantCode                int
		want                    string // a substring of the error, or a field=value
	}{
		{"held", "POST", u, `{"holder":"cron-2"}`, 409, "holder=cron-1"},
		{"held after a short wait", "POST", u, `{"wait":"50ms"}`, 409, "holder=cron-1"},
		{"ttl too long", "POST", srv.URL + "/v1/locks/other", `{"ttl":"1h"}`, 400, "must be from 1s to 1.8s"},
		{"ttl zero", "POST", srv.URL + "/v1/locks/other", `{"ttl":"0s"}`, 400, "ttl 0s must be from 1s to 1.8s"},
		{"ttl zero says how to get the default", "POST", srv.URL + "/v1/locks/other", `{"ttl":"0"}`, 400, "leave ttl out for the default 1s"},
		{"ttl too long says to renew", "POST", srv.URL + "/v1/locks/other", `{"ttl":"2s"}`, 400, "for a longer job, renew the lease"},
		{"holder with control characters", "POST", srv.URL + "/v1/locks/other", `{"holder":"line\nbreak\u001b[31mred"}`, 400, "holder label has control character U+000A"},
		{"repeated field", "POST", srv.URL + "/v1/locks/other", `{"holder":"a","holder":"b"}`, 400, `repeats the field "holder"`},
		{"field in upper case", "POST", srv.URL + "/v1/locks/other", `{"TTL":"1s"}`, 400, "field names are lower case"},
		{"holder with an escape sequence", "POST", srv.URL + "/v1/locks/other", `{"holder":"\u001b[31mred"}`, 400, "holder label has control character U+001B"},
		{"holder with DEL", "POST", srv.URL + "/v1/locks/other", "{\"holder\":\"a\x7f\"}", 400, "control character U+007F"},
		{"holder with a lone surrogate escape", "POST", srv.URL + "/v1/locks/other", `{"holder":"cron\ud83d"}`, 400, "holder label is not valid UTF-8"},
		{"holder with a byte not UTF-8", "POST", srv.URL + "/v1/locks/other", "{\"holder\":\"cron\xff\"}", 400, "holder label is not valid UTF-8"},
		{"holder too long", "POST", srv.URL + "/v1/locks/other", `{"holder":"` + strings.Repeat("h", 257) + `"}`, 400, "at most 256 bytes"},
		{"ttl not a duration", "POST", srv.URL + "/v1/locks/other", `{"ttl":10}`, 400, "not the expected JSON"},
		{"bad duration", "POST", srv.URL + "/v1/locks/other", `{"wait":"soon"}`, 400, "is not a duration"},
		{"unknown field", "POST", srv.URL + "/v1/locks/other", `{"tll":"1s"}`, 400, "unknown field"},
		{"lease on acquire", "POST", srv.URL + "/v1/locks/other", `{"lease":"x"}`, 400, "renew with PUT"},
		{"info", "GET", u, "", 200, "holder=cron-1"},
		{"renew unknown lease", "PUT", u, `{"lease":"0123456789abcdef0123456789abcdef"}`, 404, "no live lease"},
		{"renew bad lease", "PUT", u, `{"lease":"nope"}`, 400, "32 hex digits"},
		{"renew ttl zero", "PUT", u, fmt.Sprintf(`{"lease":%q,"ttl":"0s"}`, lease), 400, "must be from 1s to 1.8s (the lock-delay 2s minus the drift margin 200ms); leave ttl out to keep the lease's TTL"},
		{"renew ttl too long", "PUT", u, fmt.Sprintf(`{"lease":%q,"ttl":"1h"}`, lease), 400, "; renew again before the lease runs out instead of asking for a longer TTL"},
		{"renew", "PUT", u, fmt.Sprintf(`{"lease":%q,"ttl":"1s"}`, lease), 200, "lease=" + lease},
		{"renew without ttl", "PUT", u, fmt.Sprintf(`{"lease":%q}`, lease), 200, "lease=" + lease},
		{"release without lease", "DELETE", u, "", 400, "give the lease to release"},
		{"negative wait", "POST", srv.URL + "/v1/locks/other", `{"wait":"-1s"}`, 400, "is negative"},
		{"release", "DELETE", u + "?lease=" + lease, "", 200, "released=true"},
		{"release again", "DELETE", u + "?lease=" + lease, "", 404, "no live lease"},
		{"info when free", "GET", u, "", 200, "held=false"},
		{"acquire after release", "POST", u, `{}`, 200, "owner=n1"},
		{"holder with printable non-ASCII", "POST", srv.URL + "/v1/locks/other-holder", `{"holder":"crön@wéb1 ✓"}`, 200, "owner=n1"},
		{"holder with a surrogate pair", "POST", srv.URL + "/v1/locks/pair-holder", `{"holder":"cron\ud83d\ude00"}`, 200, "owner=n1"},
		{"holder of 256 bytes", "POST", srv.URL + "/v1/locks/long-holder", `{"holder":"` + strings.Repeat("h", 256) + `"}`, 200, "owner=n1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, m := doJSON(t, tc.method, tc.url, tc.body)
			if code != tc.wantCode {
				t.Fatalf("%s %s: %d %v, want %d", tc.method, tc.url, code, m, tc.wantCode)
			}
			if k, v, ok := strings.Cut(tc.want, "="); ok && !strings.Contains(k, " ") {
				if fmt.Sprint(m[k]) != v {
					t.Fatalf("%s = %v, want %s (body %v)", k, m[k], v, m)
				}
				if n, _ := m["remaining_ms"].(json.Number); tc.wantCode == 409 && (n == "" || n[0] == '-' || n == "0") {
					t.Fatalf("409 without remaining_ms: %v", m)
				}
				return
			}
			if e, _ := m["error"].(string); !strings.Contains(e, tc.want) {
				t.Fatalf("error %q does not say %q", e, tc.want)
			}
		})
	}
	// A wait that outlasts the holder is granted, with a larger token.
	code, m = doJSON(t, "POST", u, `{"wait":"3s"}`)
	if next, _ := m["token"].(json.Number).Int64(); code != 200 || next <= token {
		t.Fatalf("acquire with a wait: %d %v, want a grant with a token above %v", code, m, token)
	}
}
