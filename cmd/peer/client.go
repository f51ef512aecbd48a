package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"

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

func membersCommand(fs *pflag.FlagSet) func([]string) error {
	c := clientFlags(fs)
	return func(args []string) error {
		if len(args) > 0 {
			return usagef("unexpected argument %q", args[0])
		}
		cl, err := c.client()
		if err != nil {
			return err
		}
		defer cl.Close()
		members, err := cl.Members(context.Background())
		if err != nil {
			return c.explain(err)
		}
		if *c.json {
			return printJSON(map[string]any{"members": members})
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tADDRESS\tSTATUS\tRING\tRPC\tTAGS")
		for _, m := range members {
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
		if len(args) != 0 && (args[0] != "owner" || len(args) != 2) {
			return usagef("want no arguments, or 'owner KEY'")
		}
		if *n < 1 {
			return usagef("--preference (-n) must be at least 1, got %d", *n)
		}
		cl, err := c.client()
		if err != nil {
			return err
		}
		defer cl.Close()
		if len(args) == 0 {
			r, err := cl.Ring(context.Background())
			if err != nil {
				return c.explain(err)
			}
			if *c.json {
				return printJSON(r)
			}
			fmt.Fprintf(out, "checksum  %s\nvnodes    %d\nmembers   %d\n", r.Checksum, r.VNodes, len(r.Members))
			for _, m := range r.Members {
				fmt.Fprintf(out, "  %s\n", m)
			}
			return nil
		}
		r, err := cl.RingOwner(context.Background(), args[1], *n)
		if err != nil {
			return c.explain(err)
		}
		if *c.json {
			return printJSON(r)
		}
		fmt.Fprintf(out, "key         %s\nowner       %s\npreference  %s\nchecksum    %s\n", r.Key, r.Owner, strings.Join(r.Preference, ", "), r.Checksum)
		return nil
	}
}

func forceLeaveCommand(fs *pflag.FlagSet) func([]string) error {
	c := clientFlags(fs)
	prune := fs.Bool("prune", false, "forget the member entirely instead of keeping it as left")
	return func(args []string) error {
		if len(args) != 1 {
			return usagef("give exactly one member NAME")
		}
		cl, err := c.client()
		if err != nil {
			return err
		}
		defer cl.Close()
		if err := cl.ForceLeave(context.Background(), args[0], *prune); err != nil {
			return c.explain(err)
		}
		if *c.json {
			return printJSON(map[string]any{"member": args[0], "pruned": *prune})
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
