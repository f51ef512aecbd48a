package main

import (
	"bytes"
	"encoding/base64"
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
		{name: "command help", args: []string{"members", "--help"}, wantCode: 0, stdout: "--http-addr"},
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: 2, stderr: `unknown command "frobnicate"`},
		{name: "unknown flag", args: []string{"members", "--nope"}, wantCode: 2, stderr: "unknown flag: --nope"},
		{name: "version", args: []string{"version"}, wantCode: 0, stdout: "peer "},
		{name: "force-leave without name", args: []string{"force-leave"}, wantCode: 2, stderr: "exactly one member"},
		{name: "ring bad args", args: []string{"ring", "who"}, wantCode: 2, stderr: "owner KEY"},
		{name: "agent bad log level", args: []string{"agent", "--log-level", "loud"}, wantCode: 2, stderr: "--log-level"},
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
