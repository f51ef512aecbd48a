package client_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ringleader/ringleader/agent/client"
)

// scripted answers one request with status and body, after recording it.
type scripted struct {
	status int
	body   string
	header map[string]string

	got struct {
		method, uri, body, contentType, idemKey string
	}
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.got.method, s.got.uri, s.got.body = r.Method, r.RequestURI, string(b)
	s.got.contentType, s.got.idemKey = r.Header.Get("Content-Type"), r.Header.Get("Idempotency-Key")
	for k, v := range s.header {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(s.status)
	io.WriteString(w, s.body)
}

func int64p(v int64) *int64 { return &v }

// TestRequests checks the exact request each call sends and what it makes
// of the answer.
func TestRequests(t *testing.T) {
	for _, tc := range []struct {
		name   string
		call   func(context.Context, *client.Client) (any, error)
		answer string
		header map[string]string
		method string
		uri    string
		body   string // exact; "" for none
		idem   string
		want   any
	}{
		{
			name:   "health",
			call:   func(ctx context.Context, c *client.Client) (any, error) { return c.Health(ctx) },
			answer: `{"status":"ok","node":"n1"}`, method: "GET", uri: "/v1/health",
			want: client.Health{Status: "ok", Node: "n1"},
		},
		{
			name:   "status",
			call:   func(ctx context.Context, c *client.Client) (any, error) { return c.Status(ctx) },
			answer: `{"node":"n1","version":"0.1","protocol":1,"ring_members":3,"members":{"alive":3},"incarnation":2}`, method: "GET", uri: "/v1/status",
			want: client.Status{Node: "n1", Version: "0.1", Protocol: 1, RingMembers: 3, Members: map[string]int{"alive": 3}, Incarnation: 2},
		},
		{
			name:   "members",
			call:   func(ctx context.Context, c *client.Client) (any, error) { return c.Members(ctx) },
			answer: `{"members":[{"name":"n1","addr":"1.2.3.4:7946","rpc_addr":"1.2.3.4:7947","status":"alive","tags":{"role":"peer"},"peer":true,"in_ring":true}]}`,
			method: "GET", uri: "/v1/members",
			want: []client.Member{{Name: "n1", Addr: "1.2.3.4:7946", RPCAddr: "1.2.3.4:7947", Status: "alive", Tags: map[string]string{"role": "peer"}, Peer: true, InRing: true}},
		},
		{
			name: "force-leave",
			call: func(ctx context.Context, c *client.Client) (any, error) {
				return nil, c.ForceLeave(ctx, "n 2/x", true)
			},
			answer: `{"member":"n 2/x","pruned":true}`, method: "POST", uri: "/v1/members/n%202%2Fx/force-leave?prune=true",
		},
		{
			name:   "ring",
			call:   func(ctx context.Context, c *client.Client) (any, error) { return c.Ring(ctx) },
			answer: `{"checksum":"ab","vnodes":64,"members":["n1","n2"]}`, method: "GET", uri: "/v1/ring",
			want: client.Ring{Checksum: "ab", VNodes: 64, Members: []string{"n1", "n2"}},
		},
		{
			name:   "voters",
			call:   func(ctx context.Context, c *client.Client) (any, error) { return c.Voters(ctx) },
			answer: `{"cluster":"00000000000000ab","version":3,"members":["n1","n2","n3"],"majority":2}`, method: "GET", uri: "/v1/voters",
			want: client.Voters{Cluster: "00000000000000ab", Version: 3, Members: []string{"n1", "n2", "n3"}, Majority: 2},
		},
		{
			name:   "ring owner",
			call:   func(ctx context.Context, c *client.Client) (any, error) { return c.RingOwner(ctx, "..", 2) },
			answer: `{"key":"..","owner":"n1","preference":["n1","n2"],"checksum":"ab"}`, method: "GET", uri: "/v1/ring/owner/%2E%2E?n=2",
			want: client.Owner{Key: "..", Owner: "n1", Preference: []string{"n1", "n2"}, Checksum: "ab"},
		},
		{
			name: "add",
			call: func(ctx context.Context, c *client.Client) (any, error) {
				return c.Add(ctx, "a/b c?d", -3, client.AddOptions{Consistency: client.Majority, IdempotencyKey: "req 1"})
			},
			answer: `{"key":"a/b c?d","value":-3}`, header: map[string]string{"Idempotent-Replayed": "true"},
			method: "POST", uri: "/v1/counters/a%2Fb%20c%3Fd?consistency=majority", body: `{"delta":-3}`, idem: "req 1",
			want: client.CounterResult{Key: "a/b c?d", Value: -3, Replayed: true},
		},
		{
			name: "add default consistency",
			call: func(ctx context.Context, c *client.Client) (any, error) {
				return c.Add(ctx, ".", 1, client.AddOptions{})
			},
			answer: `{"key":".","value":1}`, method: "POST", uri: "/v1/counters/%2E", body: `{"delta":1}`,
			want: client.CounterResult{Key: ".", Value: 1},
		},
		{
			name: "counter",
			call: func(ctx context.Context, c *client.Client) (any, error) {
				return c.Counter(ctx, "zähler", client.Local)
			},
			answer: `{"key":"zähler","value":9223372036854775807}`, method: "GET", uri: "/v1/counters/z%C3%A4hler?consistency=local",
			want: int64(9223372036854775807),
		},
		{
			name: "list",
			call: func(ctx context.Context, c *client.Client) (any, error) {
				return c.ListCounters(ctx, client.ListOptions{Prefix: "user:1/ x", After: "b", Limit: 3})
			},
			answer: `{"counters":[{"key":"c","value":1},{"key":"d","error":"overflow"}],"next":"d"}`,
			method: "GET", uri: "/v1/counters?after=b&limit=3&prefix=user%3A1%2F+x",
			want: client.CounterPage{Counters: []client.CounterEntry{{Key: "c", Value: int64p(1)}, {Key: "d", Error: "overflow"}}, Next: "d"},
		},
		{
			name: "list everything",
			call: func(ctx context.Context, c *client.Client) (any, error) {
				return c.ListCounters(ctx, client.ListOptions{})
			},
			answer: `{"counters":[],"next":""}`, method: "GET", uri: "/v1/counters",
			want: client.CounterPage{Counters: []client.CounterEntry{}},
		},
		{
			name: "batch",
			call: func(ctx context.Context, c *client.Client) (any, error) {
				return c.AddBatch(ctx, []client.CounterItem{{Key: "a", Delta: 1}, {Key: "b", Delta: -2, IdempotencyKey: "i"}}, client.Local)
			},
			answer: `{"items":[{"key":"a","value":1},{"key":"b","value":-2,"replayed":true}]}`,
			method: "POST", uri: "/v1/counters:batch?consistency=local", body: `{"items":[{"key":"a","delta":1},{"key":"b","delta":-2,"idempotency_key":"i"}]}`,
			want: []client.CounterResult{{Key: "a", Value: 1}, {Key: "b", Value: -2, Replayed: true}},
		},
		{
			name: "acquire",
			call: func(ctx context.Context, c *client.Client) (any, error) {
				return c.Acquire(ctx, "jobs/nightly", client.LockOptions{TTL: 1500 * time.Millisecond, Wait: 2 * time.Minute, Holder: "host-1"})
			},
			answer: `{"key":"jobs/nightly","token":4294967297,"lease":"0123456789abcdef0123456789abcdef","ttl_ms":1500,"owner":"n2"}`,
			method: "POST", uri: "/v1/locks/jobs%2Fnightly", body: `{"ttl":"1.5s","wait":"2m0s","holder":"host-1"}`,
			want: client.Lease{Key: "jobs/nightly", Token: 4294967297, Lease: "0123456789abcdef0123456789abcdef", TTLMS: 1500, Owner: "n2"},
		},
		{
			name: "acquire with defaults",
			call: func(ctx context.Context, c *client.Client) (any, error) {
				return c.Acquire(ctx, "k", client.LockOptions{})
			},
			answer: `{"key":"k","token":1,"lease":"00000000000000000000000000000001","ttl_ms":10000,"owner":"n1"}`,
			method: "POST", uri: "/v1/locks/k", body: `{}`,
			want: client.Lease{Key: "k", Token: 1, Lease: "00000000000000000000000000000001", TTLMS: 10000, Owner: "n1"},
		},
		{
			name: "renew",
			call: func(ctx context.Context, c *client.Client) (any, error) {
				return c.Renew(ctx, "k", "00000000000000000000000000000001", 10*time.Second)
			},
			answer: `{"key":"k","token":1,"lease":"00000000000000000000000000000001","ttl_ms":10000,"owner":"n1"}`,
			method: "PUT", uri: "/v1/locks/k", body: `{"lease":"00000000000000000000000000000001","ttl":"10s"}`,
			want: client.Lease{Key: "k", Token: 1, Lease: "00000000000000000000000000000001", TTLMS: 10000, Owner: "n1"},
		},
		{
			name: "release",
			call: func(ctx context.Context, c *client.Client) (any, error) {
				return nil, c.Release(ctx, "a b", "00000000000000000000000000000001")
			},
			answer: `{"key":"a b","released":true}`, method: "DELETE", uri: "/v1/locks/a%20b?lease=00000000000000000000000000000001",
		},
		{
			name:   "lock info",
			call:   func(ctx context.Context, c *client.Client) (any, error) { return c.LockInfo(ctx, "k") },
			answer: `{"key":"k","held":true,"holder":"h","token":7,"remaining_ms":1234,"waiters":2,"owner":"n3"}`,
			method: "GET", uri: "/v1/locks/k",
			want: client.LockState{Key: "k", Held: true, Holder: "h", Token: 7, RemainingMS: 1234, Waiters: 2, Owner: "n3"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &scripted{status: 200, body: tc.answer, header: tc.header}
			srv := httptest.NewServer(s)
			defer srv.Close()
			c, err := client.New("http://" + srv.Listener.Addr().String() + "/")
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			got, err := tc.call(context.Background(), c)
			if err != nil {
				t.Fatal(err)
			}
			if s.got.method != tc.method || s.got.uri != tc.uri || s.got.body != tc.body {
				t.Errorf("sent %s %s %q, want %s %s %q", s.got.method, s.got.uri, s.got.body, tc.method, tc.uri, tc.body)
			}
			if tc.body != "" && s.got.contentType != "application/json" {
				t.Errorf("Content-Type %q", s.got.contentType)
			}
			if s.got.idemKey != tc.idem {
				t.Errorf("Idempotency-Key %q, want %q", s.got.idemKey, tc.idem)
			}
			if tc.want != nil && !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %#v\nwant %#v", got, tc.want)
			}
		})
	}
}

// TestErrors checks that each error answer maps to its sentinel, with the
// peer's message and, for a held lock, the holder and its remaining time.
func TestErrors(t *testing.T) {
	acquire := func(ctx context.Context, c *client.Client) error {
		_, err := c.Acquire(ctx, "k", client.LockOptions{})
		return err
	}
	renew := func(ctx context.Context, c *client.Client) error {
		_, err := c.Renew(ctx, "k", "l", 0)
		return err
	}
	release := func(ctx context.Context, c *client.Client) error { return c.Release(ctx, "k", "l") }
	forceLeave := func(ctx context.Context, c *client.Client) error { return c.ForceLeave(ctx, "n", false) }
	get := func(ctx context.Context, c *client.Client) error {
		_, err := c.Counter(ctx, "k", client.Default)
		return err
	}
	for _, tc := range []struct {
		name      string
		call      func(context.Context, *client.Client) error
		status    int
		body      string
		want      error
		notWant   error
		message   string
		holder    string
		remaining time.Duration
	}{
		{name: "held", call: acquire, status: 409, body: `{"error":"\"k\" is held","holder":"cron-1","remaining_ms":1234}`,
			want: client.ErrHeld, notWant: client.ErrConflict, message: `"k" is held`, holder: "cron-1", remaining: 1234 * time.Millisecond},
		{name: "no quorum", call: acquire, status: 503, body: `{"error":"no quorum: 2 of 5 voters promised"}`,
			want: client.ErrUnavailable, message: "no quorum: 2 of 5 voters promised"},
		{name: "bad ttl", call: acquire, status: 400, body: `{"error":"ttl 1h is above lock-delay"}`, want: client.ErrBadRequest, message: "ttl 1h is above lock-delay"},
		{name: "unknown lease on renew", call: renew, status: 404, body: `{"error":"unknown lease"}`, want: client.ErrUnknownLease, notWant: client.ErrNotFound},
		{name: "unknown lease on release", call: release, status: 404, body: `{"error":"unknown lease"}`, want: client.ErrUnknownLease},
		{name: "acquire on a peer without locks", call: acquire, status: 404, body: `{"error":"no route POST /v1/locks/k"}`, want: client.ErrNotFound, notWant: client.ErrUnknownLease},
		{name: "owner unreachable on release", call: release, status: 503, body: `{"error":"owner n2 unreachable"}`, want: client.ErrUnavailable},
		{name: "unknown member", call: forceLeave, status: 404, body: `{"error":"no member n"}`, want: client.ErrNotFound},
		{name: "alive member", call: forceLeave, status: 409, body: `{"error":"n is alive"}`, want: client.ErrConflict, notWant: client.ErrHeld},
		{name: "overflow", call: get, status: 409, body: `{"error":"overflowed"}`, want: client.ErrConflict},
		{name: "idempotency", call: func(ctx context.Context, c *client.Client) error {
			_, err := c.Add(ctx, "k", 1, client.AddOptions{IdempotencyKey: "x"})
			return err
		}, status: 422, body: `{"error":"reused"}`, want: client.ErrIdempotencyConflict},
		{name: "no JSON", call: get, status: 502, body: "bad gateway", message: "GET /v1/counters/k: HTTP 502 Bad Gateway"},
		{name: "answer without a value", call: get, status: 200, body: `{"key":"k"}`, message: "has no value"},
		{name: "answer not JSON", call: acquire, status: 200, body: `<html>`, message: "unexpected answer"},
		{name: "release not confirmed", call: release, status: 200, body: `{"key":"k"}`, message: "without released=true"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(&scripted{status: tc.status, body: tc.body})
			defer srv.Close()
			c, err := client.New(srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			err = tc.call(context.Background(), c)
			if err == nil {
				t.Fatal("no error")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("%v does not match %v", err, tc.want)
			}
			if tc.notWant != nil && errors.Is(err, tc.notWant) {
				t.Errorf("%v matches %v", err, tc.notWant)
			}
			if !strings.Contains(err.Error(), tc.message) {
				t.Errorf("message %q lacks %q", err.Error(), tc.message)
			}
			var apiErr *client.APIError
			if tc.status >= 300 {
				if !errors.As(err, &apiErr) || apiErr.Status != tc.status || apiErr.Holder != tc.holder || apiErr.Remaining != tc.remaining {
					t.Errorf("APIError %#v", apiErr)
				}
			}
		})
	}
}

func TestMajorityMissKeepsTheValue(t *testing.T) {
	srv := httptest.NewServer(&scripted{status: 503, body: `{"error":"majority not reached","key":"k","value":5}`})
	defer srv.Close()
	c, _ := client.New(srv.Listener.Addr().String())
	defer c.Close()
	r, err := c.Add(context.Background(), "k", 1, client.AddOptions{Consistency: client.Majority})
	if !errors.Is(err, client.ErrUnavailable) || r.Value != 5 {
		t.Fatalf("%+v, %v", r, err)
	}
}

func TestBatchErrorKeepsTheApplied(t *testing.T) {
	srv := httptest.NewServer(&scripted{status: 400, body: `{"error":"item 1 overflows","applied":[{"key":"a","value":1}]}`})
	defer srv.Close()
	c, _ := client.New(srv.Listener.Addr().String())
	defer c.Close()
	res, err := c.AddBatch(context.Background(), []client.CounterItem{{Key: "a", Delta: 1}, {Key: "b", Delta: 1}}, client.Default)
	if !errors.Is(err, client.ErrBadRequest) || len(res) != 1 || res[0] != (client.CounterResult{Key: "a", Value: 1}) {
		t.Fatalf("%+v, %v", res, err)
	}
}

func TestUnreachable(t *testing.T) {
	c, err := client.New("127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Health(context.Background())
	if !errors.Is(err, client.ErrUnreachable) || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("%v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Health(ctx); !errors.Is(err, context.Canceled) || errors.Is(err, client.ErrUnreachable) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:7948", true},
		{"localhost:7948", true},
		{"http://10.0.0.1:7948", true},
		{"https://peer.example:443/base/", true},
		{"[::1]:7948", true},
		{"ftp://x:1", false},
		{"http://", false},
		{"http://x:1/?q=1", false},
		{"%zz", false},
	} {
		_, err := client.New(tc.addr)
		if (err == nil) != tc.ok {
			t.Errorf("New(%q): %v", tc.addr, err)
		}
	}
	if _, err := client.New("x:1", client.WithTimeout(-time.Second)); err == nil {
		t.Error("negative timeout accepted")
	}
}
