package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"unicode"
)

// exchange is one request the CLI must make and the answer it gets.
type exchange struct {
	method string
	uri    string            // exact request target: escaped path and query
	body   string            // exact request body; "" for none
	header map[string]string // headers the request must carry ("" value: must lack it)

	status   int // 0: 200
	respBody string
	respHdr  map[string]string
}

// fakeAPI serves a script of exchanges in order and fails the test on any
// request that differs from the next one expected.
// runScripted runs `peer cmd --http-addr <fake API> args...` against a fake
// API that expects exactly script, and checks the exit code, the whole of
// stdout, that stderr holds wantStderr (and is empty when that is), and
// that every scripted request was made.
func runScripted(t *testing.T, cmd string, script []exchange, args []string, wantCode int, wantStdout, wantStderr string) {
	t.Helper()
	api := &fakeAPI{t: t, next: script}
	srv := httptest.NewServer(api)
	defer srv.Close()
	var stdout, stderr bytes.Buffer
	code := run(append([]string{cmd, "--http-addr", srv.Listener.Addr().String()}, args...), &stdout, &stderr)
	if code != wantCode {
		t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, wantCode, stdout.String(), stderr.String())
	}
	if stdout.String() != wantStdout {
		t.Errorf("stdout:\n%q\nwant:\n%q", stdout.String(), wantStdout)
	}
	if !strings.Contains(stderr.String(), wantStderr) || (wantStderr == "" && stderr.Len() > 0) {
		t.Errorf("stderr lacks %q:\n%s", wantStderr, stderr.String())
	}
	if n := api.left(); n > 0 {
		t.Errorf("%d expected requests not made", n)
	}
}

type fakeAPI struct {
	t *testing.T
	// mu guards next.
	mu   sync.Mutex
	next []exchange
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	if len(f.next) == 0 {
		f.mu.Unlock()
		f.t.Errorf("unexpected request %s %s %q", r.Method, r.RequestURI, body)
		http.Error(w, `{"error":"unexpected request"}`, 500)
		return
	}
	ex := f.next[0]
	f.next = f.next[1:]
	f.mu.Unlock()
	if r.Method != ex.method || r.RequestURI != ex.uri || string(body) != ex.body {
		f.t.Errorf("request %s %s %q, want %s %s %q", r.Method, r.RequestURI, body, ex.method, ex.uri, ex.body)
	}
	if ex.body != "" && r.Header.Get("Content-Type") != "application/json" {
		f.t.Errorf("Content-Type %q, want application/json", r.Header.Get("Content-Type"))
	}
	for k, v := range ex.header {
		if got := r.Header.Get(k); got != v {
			f.t.Errorf("header %s: %q, want %q", k, got, v)
		}
	}
	for k, v := range ex.respHdr {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Type", "application/json")
	if ex.status != 0 {
		w.WriteHeader(ex.status)
	}
	io.WriteString(w, ex.respBody)
}

func (f *fakeAPI) left() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.next)
}

func TestCounterRequests(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string // after "counter"; --http-addr is added
		script   []exchange
		wantCode int
		stdout   string // exact
		stderr   string // contained
	}{
		{
			name: "incr default 1",
			args: []string{"incr", "hits"},
			script: []exchange{{method: "POST", uri: "/v1/counters/hits?consistency=local", body: `{"delta":1}`,
				header: map[string]string{"Idempotency-Key": ""}, respBody: `{"key":"hits","value":7}`}},
			stdout: "7\n",
		},
		{
			name: "incr N majority with idempotency key",
			args: []string{"incr", "hits", "5", "--consistency", "majority", "--idempotency-key", "req-42 a"},
			script: []exchange{{method: "POST", uri: "/v1/counters/hits?consistency=majority", body: `{"delta":5}`,
				header: map[string]string{"Idempotency-Key": "req-42 a"}, respBody: `{"key":"hits","value":12}`}},
			stdout: "12\n",
		},
		{
			name: "replayed answer prints the first result",
			args: []string{"incr", "hits", "--idempotency-key", "k1"},
			script: []exchange{{method: "POST", uri: "/v1/counters/hits?consistency=local", body: `{"delta":1}`,
				header: map[string]string{"Idempotency-Key": "k1"}, respBody: `{"key":"hits","value":3}`,
				respHdr: map[string]string{"Idempotent-Replayed": "true"}}},
			stdout: "3\n",
		},
		{
			name: "decr sends minus N",
			args: []string{"decr", "stock", "3"},
			script: []exchange{{method: "POST", uri: "/v1/counters/stock?consistency=local", body: `{"delta":-3}`,
				respBody: `{"key":"stock","value":-3}`}},
			stdout: "-3\n",
		},
		{
			name: "decr largest N",
			args: []string{"decr", "stock", "9223372036854775807"},
			script: []exchange{{method: "POST", uri: "/v1/counters/stock?consistency=local", body: `{"delta":-9223372036854775807}`,
				respBody: `{"key":"stock","value":-9223372036854775807}`}},
			stdout: "-9223372036854775807\n",
		},
		{
			name: "key escaped as one segment",
			args: []string{"incr", "a/b c?d%e#f;g+h"},
			script: []exchange{{method: "POST", uri: "/v1/counters/a%2Fb%20c%3Fd%25e%23f%3Bg+h?consistency=local", body: `{"delta":1}`,
				respBody: `{"key":"a/b c?d%e#f;g+h","value":1}`}},
			stdout: "1\n",
		},
		{
			name: "utf-8 key",
			args: []string{"get", "zähler/π"},
			script: []exchange{{method: "GET", uri: "/v1/counters/z%C3%A4hler%2F%CF%80?consistency=local",
				respBody: `{"key":"zähler/π","value":2}`}},
			stdout: "2\n",
		},
		{
			name:   "dot-dot key not cleaned away",
			args:   []string{"get", ".."},
			script: []exchange{{method: "GET", uri: "/v1/counters/%2E%2E?consistency=local", respBody: `{"key":"..","value":0}`}},
			stdout: "0\n",
		},
		{
			name:   "dot key",
			args:   []string{"get", "."},
			script: []exchange{{method: "GET", uri: "/v1/counters/%2E?consistency=local", respBody: `{"key":".","value":4}`}},
			stdout: "4\n",
		},
		{
			name: "get majority",
			args: []string{"get", "hits", "--consistency=majority"},
			script: []exchange{{method: "GET", uri: "/v1/counters/hits?consistency=majority", body: "",
				respBody: `{"key":"hits","value":9223372036854775807}`}},
			stdout: "9223372036854775807\n",
		},
		{
			name:   "get --json prints the answer",
			args:   []string{"get", "hits", "--json"},
			script: []exchange{{method: "GET", uri: "/v1/counters/hits?consistency=local", respBody: `{"key":"hits","value":0}`}},
			stdout: `{"key":"hits","value":0}` + "\n",
		},
		{
			name: "majority not reached",
			args: []string{"incr", "hits", "--consistency", "majority"},
			script: []exchange{{method: "POST", uri: "/v1/counters/hits?consistency=majority", body: `{"delta":1}`,
				status: 503, respBody: `{"error":"majority not reached within 2s: 2 of 5 voters hold the write; the increment still happened locally"}`}},
			wantCode: 1, stderr: "peer counter: majority not reached within 2s: 2 of 5 voters hold the write; the increment still happened locally\n",
		},
		{
			name: "idempotency key reused",
			args: []string{"incr", "hits", "2", "--idempotency-key", "k1"},
			script: []exchange{{method: "POST", uri: "/v1/counters/hits?consistency=local", body: `{"delta":2}`,
				status: 422, respBody: `{"error":"Idempotency-Key \"k1\" was used for a different request"}`}},
			wantCode: 1, stderr: `Idempotency-Key "k1" was used for a different request`,
		},
		{
			name: "bad key from the server",
			args: []string{"incr", "bad\x01key"},
			script: []exchange{{method: "POST", uri: "/v1/counters/bad%01key?consistency=local", body: `{"delta":1}`,
				status: 400, respBody: `{"error":"key: control character at byte 3"}`}},
			wantCode: 1, stderr: "key: control character at byte 3",
		},
		{
			name: "overflowed on read",
			args: []string{"get", "big"},
			script: []exchange{{method: "GET", uri: "/v1/counters/big?consistency=local",
				status: 409, respBody: `{"error":"the value of \"big\" overflowed int64"}`}},
			wantCode: 1, stderr: "overflowed int64",
		},
		{
			name:     "error without a JSON body",
			args:     []string{"get", "x"},
			script:   []exchange{{method: "GET", uri: "/v1/counters/x?consistency=local", status: 502, respBody: "bad gateway"}},
			wantCode: 1, stderr: "HTTP 502",
		},
		{
			name:     "answer without a value",
			args:     []string{"get", "x"},
			script:   []exchange{{method: "GET", uri: "/v1/counters/x?consistency=local", respBody: `{"key":"x"}`}},
			wantCode: 1, stderr: "has no value",
		},
		{
			name: "list follows next through every page",
			args: []string{"list"},
			script: []exchange{
				{method: "GET", uri: "/v1/counters?limit=1000", respBody: `{"counters":[{"key":"a","value":1},{"key":"bb","value":-20}],"next":"bb"}`},
				{method: "GET", uri: "/v1/counters?after=bb&limit=1000", respBody: `{"counters":[{"key":"c/d","value":0}],"next":"c/d"}`},
				{method: "GET", uri: "/v1/counters?after=c%2Fd&limit=1000", respBody: `{"counters":[],"next":""}`},
			},
			stdout: "KEY  VALUE\na    1\nbb   -20\nc/d  0\n",
		},
		{
			name: "list prefix and limit",
			args: []string{"list", "user:1/ x", "--limit", "3"},
			script: []exchange{
				{method: "GET", uri: "/v1/counters?limit=3&prefix=user%3A1%2F+x", respBody: `{"counters":[{"key":"user:1/ xa","value":1},{"key":"user:1/ xb","value":2}],"next":"user:1/ xb"}`},
				{method: "GET", uri: "/v1/counters?after=user%3A1%2F+xb&limit=1&prefix=user%3A1%2F+x", respBody: `{"counters":[{"key":"user:1/ xc","value":3}],"next":"user:1/ xc"}`},
			},
			stdout: "KEY           VALUE\n\"user:1/ xa\"  1\n\"user:1/ xb\"  2\n\"user:1/ xc\"  3\n",
			stderr: "stopped at --limit 3; go on with --after 'user:1/ xc'\n",
		},
		{
			name: "list quotes keys that would blur the columns",
			args: []string{"list"},
			script: []exchange{
				{method: "GET", uri: "/v1/counters?limit=1000", respBody: `{"counters":[{"key":"a b","value":1},{"key":"say \"hi\"","value":2},{"key":"zero\u200bwidth","value":3},{"key":"plain/é","value":4}],"next":""}`},
			},
			stdout: "KEY                VALUE\n\"a b\"              1\n\"say \\\"hi\\\"\"       2\n\"zero\\u200bwidth\"  3\nplain/é            4\n",
		},
		{
			name: "list limit cuts a longer page",
			args: []string{"list", "--limit=1"},
			script: []exchange{
				{method: "GET", uri: "/v1/counters?limit=1", respBody: `{"counters":[{"key":"a","value":1},{"key":"b","value":2}],"next":"b"}`},
			},
			stdout: "KEY  VALUE\na    1\n",
			stderr: "stopped at --limit 1; go on with --after a\n",
		},
		{
			name: "list --json --limit gives the cursor",
			args: []string{"list", "--json", "--limit=1"},
			script: []exchange{
				{method: "GET", uri: "/v1/counters?limit=1", respBody: `{"counters":[{"key":"a","value":1},{"key":"b","value":2}],"next":"b"}`},
			},
			stdout: `{"counters":[{"key":"a","value":1}],"next":"a"}` + "\n",
		},
		{
			name: "list --after goes on",
			args: []string{"list", "--after", "a", "--limit=1"},
			script: []exchange{
				{method: "GET", uri: "/v1/counters?after=a&limit=1", respBody: `{"counters":[{"key":"b","value":2}],"next":""}`},
			},
			stdout: "KEY  VALUE\nb    2\n",
		},
		{
			name: "list --json joins the pages",
			args: []string{"list", "--json"},
			script: []exchange{
				{method: "GET", uri: "/v1/counters?limit=1000", respBody: `{"counters":[{"key":"a","value":0}],"next":"a"}`},
				{method: "GET", uri: "/v1/counters?after=a&limit=1000", respBody: `{"counters":[{"key":"b","value":-1}],"next":""}`},
			},
			stdout: `{"counters":[{"key":"a","value":0},{"key":"b","value":-1}]}` + "\n",
		},
		{
			name:   "list empty",
			args:   []string{"list", "--json"},
			script: []exchange{{method: "GET", uri: "/v1/counters?limit=1000", respBody: `{"counters":[],"next":""}`}},
			stdout: `{"counters":[]}` + "\n",
		},
		{
			name: "list --consistency local is accepted",
			args: []string{"list", "--consistency", "local"},
			script: []exchange{{method: "GET", uri: "/v1/counters?limit=1000",
				respBody: `{"counters":[{"key":"a","value":1}],"next":""}`}},
			stdout: "KEY  VALUE\na    1\n",
		},
		{
			name: "list item that overflowed",
			args: []string{"list"},
			script: []exchange{{method: "GET", uri: "/v1/counters?limit=1000",
				respBody: `{"counters":[{"key":"a","value":1},{"key":"big","error":"value overflowed int64"},{"key":"c","value":2}],"next":""}`}},
			stdout:   "KEY  VALUE\na    1\nbig  error: value overflowed int64\nc    2\n",
			wantCode: 1, stderr: "1 of the listed counters have no value (first: big: value overflowed int64)",
		},
		{
			name: "list item that overflowed, JSON",
			args: []string{"list", "--json"},
			script: []exchange{{method: "GET", uri: "/v1/counters?limit=1000",
				respBody: `{"counters":[{"key":"big","error":"value overflowed int64"}],"next":""}`}},
			stdout:   `{"counters":[{"key":"big","error":"value overflowed int64"}]}` + "\n",
			wantCode: 1, stderr: "1 of the listed counters have no value",
		},
		{
			name: "list cursor that does not advance",
			args: []string{"list"},
			script: []exchange{
				{method: "GET", uri: "/v1/counters?limit=1000", respBody: `{"counters":[{"key":"b","value":1}],"next":"b"}`},
				{method: "GET", uri: "/v1/counters?after=b&limit=1000", respBody: `{"counters":[{"key":"b","value":1}],"next":"b"}`},
			},
			stdout:   "KEY  VALUE\nb    1\nb    1\n",
			wantCode: 1, stderr: `cursor went from "b" back to "b"`,
		},
		{
			name: "list error on the first page prints nothing",
			args: []string{"list", "--json"},
			script: []exchange{{method: "GET", uri: "/v1/counters?limit=1000",
				status: 503, respBody: `{"error":"peer not ready: loading counters"}`}},
			wantCode: 1, stderr: "peer not ready: loading counters",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runScripted(t, "counter", tc.script, tc.args, tc.wantCode, tc.stdout, tc.stderr)
		})
	}
}

// TestCounterCLI checks the mistakes caught before any request: each exits
// 2 with a message, and the address given takes no request (nothing listens
// at 127.0.0.1:1).
func TestCounterCLI(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string // after "counter"
		env      map[string]string
		wantCode int
		stdout   string
		stderr   string
	}{
		{name: "help", args: []string{"--help"}, stdout: "Subcommands:"},
		{name: "help lists every subcommand", args: []string{"-h"}, stdout: "list [PREFIX]"},
		{name: "peer help counter", args: nil, stdout: "Run 'peer counter SUBCOMMAND --help'"},
		{name: "incr help", args: []string{"incr", "--help"}, stdout: "Usage: peer counter incr [flags] KEY [N]"},
		{name: "incr help shows its flags", args: []string{"incr", "--help"}, stdout: "--idempotency-key"},
		{name: "decr help", args: []string{"--help", "decr"}, stdout: "Usage: peer counter decr [flags] KEY [N]"},
		{name: "get help", args: []string{"get", "-h"}, stdout: "a key never written reads 0"},
		{name: "list help", args: []string{"list", "--help"}, stdout: "--limit"},
		{name: "help for unknown subcommand", args: []string{"frob", "--help"}, wantCode: 2, stderr: `unknown subcommand "frob"`},
		{name: "no subcommand", args: []string{}, wantCode: 2, stderr: "give a subcommand: incr, decr, get or list"},
		{name: "unknown subcommand", args: []string{"add", "k"}, wantCode: 2, stderr: `unknown subcommand "add"`},
		{name: "incr without key", args: []string{"incr"}, wantCode: 2, stderr: "incr: want KEY [N]"},
		{name: "incr too many", args: []string{"incr", "k", "1", "2"}, wantCode: 2, stderr: "incr: want KEY [N]"},
		{name: "incr zero", args: []string{"incr", "k", "0"}, wantCode: 2, stderr: `N "0": want a positive integer`},
		{name: "incr negative", args: []string{"incr", "k", "--", "-4"}, wantCode: 2, stderr: `N "-4": want a positive integer`},
		{name: "incr negative as a flag", args: []string{"incr", "k", "-4"}, wantCode: 2, stderr: "-4 is read as flags; N is positive: to subtract, use 'peer counter decr KEY N'"},
		{name: "incr not a number", args: []string{"incr", "k", "lots"}, wantCode: 2, stderr: `N "lots"`},
		{name: "incr too big", args: []string{"incr", "k", "9223372036854775808"}, wantCode: 2, stderr: "want a positive integer up to 9223372036854775807"},
		{name: "decr zero", args: []string{"decr", "k", "0"}, wantCode: 2, stderr: "decr: N"},
		{name: "empty key", args: []string{"incr", ""}, wantCode: 2, stderr: "KEY is empty"},
		{name: "get empty key", args: []string{"get", ""}, wantCode: 2, stderr: "KEY is empty"},
		{name: "get without key", args: []string{"get"}, wantCode: 2, stderr: "get: want exactly one KEY"},
		{name: "get two keys", args: []string{"get", "a", "b"}, wantCode: 2, stderr: "get: want exactly one KEY"},
		{name: "list two prefixes", args: []string{"list", "a", "b"}, wantCode: 2, stderr: "list: want at most one PREFIX"},
		{name: "bad consistency", args: []string{"get", "k", "--consistency", "quorum"}, wantCode: 2, stderr: `--consistency "quorum": use local or majority`},
		{name: "consistency is case-sensitive", args: []string{"incr", "k", "--consistency", "Majority"}, wantCode: 2, stderr: "use local or majority"},
		{name: "bad consistency from env", args: []string{"get", "k"}, env: map[string]string{"PEER_CONSISTENCY": "all"}, wantCode: 2, stderr: `--consistency "all"`},
		{name: "list majority", args: []string{"list", "--consistency", "majority"}, wantCode: 2, stderr: "list reads the local peer's state only"},
		{name: "majority from env is let be by list", args: []string{"list"}, env: map[string]string{"PEER_CONSISTENCY": "majority"}, wantCode: 1, stderr: "cannot reach the peer"},
		{name: "limit from env is let be by incr", args: []string{"incr", "k"}, env: map[string]string{"PEER_LIMIT": "3"}, wantCode: 1, stderr: "cannot reach the peer"},
		{name: "decr by 2^63", args: []string{"decr", "k", "9223372036854775808"}, wantCode: 1, stderr: "cannot reach the peer"},
		{name: "flags after --", args: []string{"decr", "k", "--", "-5", "--json"}, wantCode: 2, stderr: `got 3 arguments ["k" "-5" "--json"] (after --, flags are arguments too)`},
		{name: "decr past 2^63", args: []string{"decr", "k", "9223372036854775809"}, wantCode: 2, stderr: "want a positive integer up to 9223372036854775808"},
		{name: "idempotency key on get", args: []string{"get", "k", "--idempotency-key", "x"}, wantCode: 2, stderr: "--idempotency-key does not apply to get"},
		{name: "idempotency key on list", args: []string{"list", "--idempotency-key", "x"}, wantCode: 2, stderr: "--idempotency-key does not apply to list"},
		{name: "empty idempotency key", args: []string{"incr", "k", "--idempotency-key", ""}, wantCode: 2, stderr: "--idempotency-key: 0 bytes; want 1 to 255"},
		{name: "long idempotency key", args: []string{"incr", "k", "--idempotency-key", strings.Repeat("x", 256)}, wantCode: 2, stderr: "256 bytes"},
		{name: "unprintable idempotency key", args: []string{"decr", "k", "--idempotency-key", "a\tb"}, wantCode: 2, stderr: "byte 1 (0x09) is not printable ASCII"},
		{name: "non-ASCII idempotency key", args: []string{"incr", "k", "--idempotency-key", "é"}, wantCode: 2, stderr: "byte 0 (0xc3)"},
		{name: "limit on incr", args: []string{"incr", "k", "--limit", "3"}, wantCode: 2, stderr: "--limit does not apply to incr"},
		{name: "after on get", args: []string{"get", "k", "--after", "a"}, wantCode: 2, stderr: "--after does not apply to get"},
		{name: "negative limit", args: []string{"list", "--limit", "-1"}, wantCode: 2, stderr: "--limit -1"},
		{name: "limit not a number", args: []string{"list", "--limit", "many"}, wantCode: 2, stderr: "--limit"},
		{name: "usage follows the message", args: []string{"incr"}, wantCode: 2, stderr: "Usage: peer counter [flags] incr|decr KEY [N]"},
		{name: "no peer to talk to", args: []string{"get", "k"}, wantCode: 1, stderr: "cannot reach the peer"},
		{name: "no peer to talk to, list", args: []string{"list"}, wantCode: 1, stderr: "cannot reach the peer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			args := append([]string{"counter", "--http-addr", "127.0.0.1:1"}, tc.args...)
			if tc.name == "peer help counter" {
				args = []string{"help", "counter"}
			}
			var stdout, stderr bytes.Buffer
			code := run(args, &stdout, &stderr)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.wantCode, stdout.String(), stderr.String())
			}
			if !strings.Contains(stdout.String(), tc.stdout) {
				t.Fatalf("stdout lacks %q:\n%s", tc.stdout, stdout.String())
			}
			if !strings.Contains(stderr.String(), tc.stderr) {
				t.Fatalf("stderr lacks %q:\n%s", tc.stderr, stderr.String())
			}
		})
	}
}

// The --after hint can be pasted back into bash and names the same key,
// including keys whose characters do not show.
func TestShellQuoteRoundTrips(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash here to paste into")
	}
	for _, key := range []string{"plain/key:1", "a b", `it's "x"`, "zw\u200bsp", "nb\u00a0sp'\\", "tag\U000e0001end", "-dash"} {
		q := shellQuote(key)
		out, err := exec.Command(bash, "-c", "printf %s "+q).Output()
		if err != nil {
			t.Fatalf("bash on %s: %v", q, err)
		}
		if string(out) != key {
			t.Errorf("shellQuote(%q) = %s, which bash reads as %q", key, q, out)
		}
		if strings.ContainsFunc(q, func(r rune) bool { return !unicode.IsPrint(r) }) {
			t.Errorf("shellQuote(%q) = %q has a character that does not show", key, q)
		}
	}
}
