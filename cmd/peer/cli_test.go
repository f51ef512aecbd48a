package main

import (
	"bytes"
	"encoding/base64"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCLI(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		env      map[string]string
		wantCode int
		stdout   string
		stderr   string
	}{
		{name: "no command", args: nil, wantCode: 2, stderr: "Usage: peer COMMAND"},
		{name: "help", args: []string{"--help"}, wantCode: 0, stdout: "force-leave"},
		{name: "help command", args: []string{"help", "agent"}, wantCode: 0, stdout: "--retry-join"},
		{name: "agent help names the GC settings", args: []string{"agent", "--help"}, wantCode: 0, stdout: "GOGC, GOMEMLIMIT"},
		{name: "command help", args: []string{"members", "--help"}, wantCode: 0, stdout: "--http-addr"},
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: 2, stderr: `unknown command "frobnicate"`},
		{name: "unknown flag", args: []string{"members", "--nope"}, wantCode: 2, stderr: "unknown flag: --nope"},
		{name: "version", args: []string{"version"}, wantCode: 0, stdout: "peer "},
		{name: "force-leave without name", args: []string{"force-leave"}, wantCode: 2, stderr: "exactly one member"},
		{name: "ring bad args", args: []string{"ring", "who"}, wantCode: 2, stderr: "owner KEY"},
		{name: "ring owner preference 0", args: []string{"ring", "owner", "k", "-n", "0"}, wantCode: 2, stderr: "must be at least 1, got 0"},
		{name: "ring owner negative preference", args: []string{"ring", "owner", "k", "-n", "-1"}, wantCode: 2, stderr: "must be at least 1, got -1"},
		{name: "agent bad log level", args: []string{"agent", "--log-level", "loud"}, wantCode: 2, stderr: "--log-level"},
		{name: "agent bad name, said once", args: []string{"agent", "--name", "bad name!"}, wantCode: 2, stderr: "peer agent: node name \"bad name!\""},
		{name: "agent bad key", args: []string{"agent", "--name", "x", "--encrypt", "short"}, wantCode: 2, stderr: "encrypt"},
		{name: "agent bad vnodes from env", args: []string{"agent", "--name", "x"}, env: map[string]string{"PEER_VNODES": "0"}, wantCode: 2, stderr: "vnodes"},
		{name: "env var with bad value", args: []string{"members"}, env: map[string]string{"PEER_JSON": "sure"}, wantCode: 2, stderr: "PEER_JSON"},
		{name: "no peer to talk to", args: []string{"members", "--http-addr", "127.0.0.1:1"}, wantCode: 1, stderr: "cannot reach the peer"},
		{name: "env gives the address", args: []string{"members"}, env: map[string]string{"PEER_HTTP_ADDR": "127.0.0.1:1"}, wantCode: 1, stderr: "127.0.0.1:1"},
		{name: "flag beats env", args: []string{"members", "--http-addr", "127.0.0.1:2"}, env: map[string]string{"PEER_HTTP_ADDR": "127.0.0.1:1"}, wantCode: 1, stderr: "127.0.0.1:2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var stdout, stderr bytes.Buffer
			code := run(tc.args, &stdout, &stderr)
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

func TestKeygen(t *testing.T) {
	var a, b bytes.Buffer
	if run([]string{"keygen"}, &a, &b) != 0 || run([]string{"keygen"}, &b, &b) != 0 {
		t.Fatal("keygen failed")
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(a.String()))
	if err != nil || len(key) != 32 {
		t.Fatalf("keygen printed %q: %d bytes, %v", a.String(), len(key), err)
	}
	if a.String() == b.String() {
		t.Fatal("two keys are equal")
	}
}

func TestWithDefaultPort(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.1":      "10.0.0.1:7946",
		"10.0.0.1:1234": "10.0.0.1:1234",
		":7000":         ":7000",
		"[::1]:7000":    "[::1]:7000",
		"::1":           "[::1]:7946",
		"localhost":     "localhost:7946",
		"":              "",
	} {
		if got := withDefaultPort(in, "7946"); got != want {
			t.Errorf("withDefaultPort(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestClusterRequests checks the requests and output of members, ring and
// force-leave, which go through agent/client.
func TestClusterRequests(t *testing.T) {
	member := `{"name":"n1","addr":"10.0.0.1:7946","rpc_addr":"10.0.0.1:7947","status":"alive","tags":{"role":"peer","rpc":"10.0.0.1:7947"},"peer":true,"in_ring":true}`
	for _, tc := range []struct {
		name   string
		args   []string // --http-addr is added
		script []exchange
		stdout string
	}{
		{
			name:   "members",
			args:   []string{"members"},
			script: []exchange{{method: "GET", uri: "/v1/members", respBody: `{"members":[` + member + `]}`}},
			stdout: "NAME  ADDRESS        STATUS  RING  RPC            TAGS\nn1    10.0.0.1:7946  alive   yes   10.0.0.1:7947  role=peer,rpc=10.0.0.1:7947\n",
		},
		{
			name:   "members --json",
			args:   []string{"members", "--json"},
			script: []exchange{{method: "GET", uri: "/v1/members", respBody: `{"members":[` + member + `]}`}},
			stdout: `{"members":[` + member + `]}` + "\n",
		},
		{
			name:   "ring",
			args:   []string{"ring"},
			script: []exchange{{method: "GET", uri: "/v1/ring", respBody: `{"checksum":"ab12","vnodes":64,"members":["n1","n2"]}`}},
			stdout: "checksum  ab12\nvnodes    64\nmembers   2\n  n1\n  n2\n",
		},
		{
			name: "ring owner of a dot-dot key",
			args: []string{"ring", "owner", "..", "-n", "2"},
			script: []exchange{{method: "GET", uri: "/v1/ring/owner/%2E%2E?n=2",
				respBody: `{"key":"..","owner":"n2","preference":["n2","n1"],"checksum":"ab12"}`}},
			stdout: "key         ..\nowner       n2\npreference  n2, n1\nchecksum    ab12\n",
		},
		{
			name:   "force-leave",
			args:   []string{"force-leave", "n 3", "--prune", "--json"},
			script: []exchange{{method: "POST", uri: "/v1/members/n%203/force-leave?prune=true", respBody: `{"member":"n 3","pruned":true}`}},
			stdout: `{"member":"n 3","pruned":true}` + "\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := &fakeAPI{t: t, next: tc.script}
			srv := httptest.NewServer(api)
			defer srv.Close()
			var stdout, stderr bytes.Buffer
			args := append(append([]string{}, tc.args...), "--http-addr", srv.Listener.Addr().String())
			if code := run(args, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d; stderr: %s", code, stderr.String())
			}
			if stdout.String() != tc.stdout {
				t.Errorf("stdout:\n%q\nwant:\n%q", stdout.String(), tc.stdout)
			}
			if n := api.left(); n > 0 {
				t.Errorf("%d expected requests not made", n)
			}
		})
	}
}
