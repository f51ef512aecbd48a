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

func TestHTTPAPI(t *testing.T) {
	c := newCluster(t, 2, nil)
	waitFor(t, 20*time.Second, "cluster", func() error { return agreed(c.agents, allAlive(2)) })
	srv := httptest.NewServer(c.agents[0].Handler())
	defer srv.Close()

	for _, tc := range []struct {
		name     string
		method   string
		path     string
		body     string
		wantCode int
		want     string // a substring of the body
	}{
		{"health", "GET", "/v1/health", "", 200, `"status": "ok"`},
		{"status", "GET", "/v1/status", "", 200, `"ring_members": 2`},
		{"members", "GET", "/v1/members", "", 200, `"in_ring": true`},
		{"ring", "GET", "/v1/ring", "", 200, `"vnodes": 128`},
		{"voters", "GET", "/v1/voters", "", 200, `"members": [`},
		{"voters wrong method", "POST", "/v1/voters", "", 405, ``},
		{"owner", "GET", "/v1/ring/owner/jobs/nightly", "", 200, `"key": "jobs/nightly"`},
		{"owner with n", "GET", "/v1/ring/owner/k?n=1", "", 200, `"preference": [`},
		{"owner bad n", "GET", "/v1/ring/owner/k?n=0", "", 400, `preference list length`},
		{"owner control character", "GET", "/v1/ring/owner/a%01b", "", 400, `control character`},
		{"owner key too long", "GET", "/v1/ring/owner/" + strings.Repeat("k", 513), "", 400, `limit 512`},
		{"owner bad utf-8", "GET", "/v1/ring/owner/%ff", "", 400, `UTF-8`},
		{"owner dot segments", "GET", "/v1/ring/owner/a/../b", "", 200, `"key": "a/../b"`},
		{"owner double slash", "GET", "/v1/ring/owner/x//y", "", 200, `"key": "x//y"`},
		{"owner dot", "GET", "/v1/ring/owner/.", "", 200, `"key": "."`},
		{"owner empty key", "GET", "/v1/ring/owner/", "", 400, `key is empty`},
		{"owner wrong method", "POST", "/v1/ring/owner/k", "", 405, `use GET`},
		{"unknown route", "GET", "/v1/nope", "", 404, `no route`},
		{"wrong method", "DELETE", "/v1/members", "", 405, `not allowed`},
		{"force-leave alive", "POST", "/v1/members/n2/force-leave", "", 409, `only removes failed members`},
		{"force-leave unknown", "POST", "/v1/members/zz/force-leave", "", 404, `unknown member`},
		{"force-leave bad prune", "POST", "/v1/members/n2/force-leave?prune=maybe", "", 400, `true or false`},
		{"body too large", "POST", "/v1/members/n2/force-leave", strings.Repeat("x", agent.MaxRequestBody+1), 413, `limit`},
		{"metrics", "GET", "/metrics", "", 200, `ringleader_members{status="alive"} 2`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.wantCode || !strings.Contains(string(body), tc.want) {
				t.Fatalf("%s %s: got %d %s, want %d with %q", tc.method, tc.path, resp.StatusCode, body, tc.wantCode, tc.want)
			}
			if tc.path != "/metrics" {
				if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
					t.Fatalf("content type %q", ct)
				}
				var v map[string]any
				if err := json.Unmarshal(body, &v); err != nil {
					t.Fatalf("answer is not a JSON object: %v: %s", err, body)
				}
				if tc.wantCode >= 400 && v["error"] == nil {
					t.Fatalf("error answer without an error field: %s", body)
				}
			}
		})
	}

	// The owner agrees with the ring package's own lookup.
	var oi agent.OwnerInfo
	resp, err := http.Get(srv.URL + "/v1/ring/owner/some-key")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&oi); err != nil {
		t.Fatal(err)
	}
	want, err := c.agents[1].View().Ring.Owner("some-key")
	if err != nil || oi.Owner != want {
		t.Fatalf("owner %q, n2's ring says %q (%v)", oi.Owner, want, err)
	}
}

// TestHTTPHead checks that HEAD is served wherever GET is, on the ServeMux
// routes as on the key routes, and that an Allow header lists HEAD with GET.
func TestHTTPHead(t *testing.T) {
	srv := onePeerServer(t)

	for _, tc := range []struct {
		name      string
		method    string
		path      string
		wantCode  int
		wantAllow string // "" for no Allow header
	}{
		{"health", "HEAD", "/v1/health", 200, ""},
		{"status", "HEAD", "/v1/status", 200, ""},
		{"members", "HEAD", "/v1/members", 200, ""},
		{"metrics", "HEAD", "/metrics", 200, ""},
		{"counter list", "HEAD", "/v1/counters", 200, ""},
		{"counter", "HEAD", "/v1/counters/k", 200, ""},
		{"owner", "HEAD", "/v1/ring/owner/k", 200, ""},
		{"post-only route", "HEAD", "/v1/counters:batch", 405, "POST"},
		{"wrong method on a get route", "DELETE", "/v1/health", 405, "GET, HEAD"},
		{"wrong method on a key route", "PUT", "/v1/counters/k", 405, "GET, POST, HEAD"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.wantCode {
				t.Fatalf("%s %s: %d %s, want %d", tc.method, tc.path, resp.StatusCode, body, tc.wantCode)
			}
			if got := resp.Header.Get("Allow"); got != tc.wantAllow {
				t.Fatalf("%s %s: Allow %q, want %q", tc.method, tc.path, got, tc.wantAllow)
			}
			if tc.method == "HEAD" && len(body) != 0 {
				t.Fatalf("HEAD %s answered a body: %s", tc.path, body)
			}
		})
	}
}
