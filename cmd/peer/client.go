package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/ringleader/ringleader/agent"
	"github.com/ringleader/ringleader/agent/client"
)

const defaultHTTPAddr = "127.0.0.1:7948"

// apiClient is the flags every client command shares.
type apiClient struct {
	addr *string
	json *bool
}

func clientFlags(fs *pflag.FlagSet) apiClient {
	return apiClient{
		addr: fs.String("http-addr", defaultHTTPAddr, "HTTP API address of the local peer, host:port"),
		json: fs.Bool("json", false, "print the API's JSON instead of a table"),
	}
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

// client returns an API client for --http-addr.
func (c apiClient) client() (*client.Client, error) {
	cl, err := client.New(*c.addr)
	if err != nil {
		return nil, fmt.Errorf("--http-addr %q: %v", *c.addr, err)
	}
	return cl, nil
}

// explain words an API client's error for the command line: a peer that
// does not answer gets a hint.
func (c apiClient) explain(err error) error {
	if !errors.Is(err, client.ErrUnreachable) {
		return err
	}
	detail := err.Error()
	var ue *url.Error
	if errors.As(err, &ue) {
		detail = ue.Error()
	}
	return fmt.Errorf("cannot reach the peer at %s (is 'peer agent' running? set --http-addr or PEER_HTTP_ADDR): %s", *c.addr, detail)
}

// call does one API request and decodes the JSON answer into v, or returns
// the API's error message.
func (c apiClient) call(method, path string, v any) ([]byte, error) {
	return c.send(method, path, nil, nil, v)
}

// send is call with a request body, in encoded as JSON unless it is nil, and
// extra request headers.
func (c apiClient) send(method, path string, in any, header http.Header, v any) ([]byte, error) {
	base := *c.addr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	var reqBody io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("encoding the request: %v", err)
		}
		reqBody = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, base+path, reqBody)
	if err != nil {
		return nil, fmt.Errorf("--http-addr %q: %v", *c.addr, err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the peer at %s (is 'peer agent' running? set --http-addr or PEER_HTTP_ADDR): %v", *c.addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the answer from %s: %v", *c.addr, err)
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return nil, errors.New(e.Error)
		}
		return nil, fmt.Errorf("%s %s: HTTP %d", method, path, resp.StatusCode)
	}
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			return nil, fmt.Errorf("unexpected answer from %s: %v", *c.addr, err)
		}
	}
	return body, nil
}

func membersCommand(fs *pflag.FlagSet) func([]string) error {
	c := clientFlags(fs)
	return func(args []string) error {
		if len(args) > 0 {
			return usagef("unexpected argument %q", args[0])
		}
		var r struct {
			Members []agent.Member `json:"members"`
		}
		body, err := c.call("GET", "/v1/members", &r)
		if err != nil {
			return err
		}
		if *c.json {
			_, err := out.Write(body)
			return err
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tADDRESS\tSTATUS\tRING\tRPC\tTAGS")
		for _, m := range r.Members {
			ring := "no"
			if m.InRing {
				ring = "yes"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", m.Name, m.Addr, m.Status, ring, dash(m.RPCAddr), formatTags(m.Tags))
		}
		return tw.Flush()
	}
}

func ringCommand(fs *pflag.FlagSet) func([]string) error {
	c := clientFlags(fs)
	n := fs.IntP("preference", "n", 3, "preference list length for 'ring owner'")
	return func(args []string) error {
		switch {
		case len(args) == 0:
			var r agent.RingInfo
			body, err := c.call("GET", "/v1/ring", &r)
			if err != nil {
				return err
			}
			if *c.json {
				_, err := out.Write(body)
				return err
			}
			fmt.Fprintf(out, "checksum  %s\nvnodes    %d\nmembers   %d\n", r.Checksum, r.VNodes, len(r.Members))
			for _, m := range r.Members {
				fmt.Fprintf(out, "  %s\n", m)
			}
			return nil
		case args[0] == "owner" && len(args) == 2:
			var r agent.OwnerInfo
			body, err := c.call("GET", fmt.Sprintf("/v1/ring/owner/%s?n=%d", url.PathEscape(args[1]), *n), &r)
			if err != nil {
				return err
			}
			if *c.json {
				_, err := out.Write(body)
				return err
			}
			fmt.Fprintf(out, "key         %s\nowner       %s\npreference  %s\nchecksum    %s\n", r.Key, r.Owner, strings.Join(r.Preference, ", "), r.Checksum)
			return nil
		}
		return usagef("want no arguments, or 'owner KEY'")
	}
}

func forceLeaveCommand(fs *pflag.FlagSet) func([]string) error {
	c := clientFlags(fs)
	prune := fs.Bool("prune", false, "forget the member entirely instead of keeping it as left")
	return func(args []string) error {
		if len(args) != 1 {
			return usagef("give exactly one member NAME")
		}
		body, err := c.call("POST", fmt.Sprintf("/v1/members/%s/force-leave?prune=%t", url.PathEscape(args[0]), *prune), nil)
		if err != nil {
			return err
		}
		if *c.json {
			_, err := out.Write(body)
			return err
		}
		fmt.Fprintf(out, "%s was forced to leave\n", args[0])
		return nil
	}
}

func keygenCommand(fs *pflag.FlagSet) func([]string) error {
	return func(args []string) error {
		if len(args) > 0 {
			return usagef("unexpected argument %q", args[0])
		}
		key := make([]byte, agent.KeySize)
		if _, err := rand.Read(key); err != nil {
			return fmt.Errorf("reading random bytes: %v", err)
		}
		fmt.Fprintln(out, base64.StdEncoding.EncodeToString(key))
		return nil
	}
}

func versionCommand(fs *pflag.FlagSet) func([]string) error {
	return func(args []string) error {
		fmt.Fprintf(out, "peer %s (protocol %d)\n", agent.Version, agent.ProtocolVersion)
		return nil
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func formatTags(tags map[string]string) string {
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + tags[k]
	}
	return strings.Join(parts, ",")
}
