package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultAddr is the HTTP API address a peer listens on by default.
const DefaultAddr = "127.0.0.1:7948"

// DefaultTimeout bounds each call whose context has no deadline of its own
// (an acquire's wait is added to it).
const DefaultTimeout = 10 * time.Second

// maxAnswer bounds an answer body, in bytes.
const maxAnswer = 64 << 20

// Client talks to one peer's HTTP API. It is safe for concurrent use by
// many goroutines, and keeps connections alive between calls.
type Client struct {
	base    string // scheme://host:port, no trailing slash
	addr    string // as given to New, for messages
	hc      *http.Client
	timeout time.Duration
}

// Option changes how New builds a Client.
type Option func(*Client)

// WithHTTPClient makes the Client send its requests through hc (for TLS,
// a proxy or a test transport). Its Timeout, if set, applies on top of the
// Client's own.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) { c.hc = hc }
}

// WithTimeout sets how long a call may take when its context has no
// deadline (default DefaultTimeout; 0: no limit but the context's). An
// acquire gets its wait on top.
func WithTimeout(d time.Duration) Option {
	return func(c *Client) { c.timeout = d }
}

// New returns a Client for the peer at addr: "host:port" (http is
// assumed) or a URL such as "http://10.0.0.1:7948". New does no I/O.
func New(addr string, opts ...Option) (*Client, error) {
	base := addr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("client: address %q: %v; give host:port or a URL", addr, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("client: address %q: scheme %q; use http or https", addr, u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("client: address %q has no host; give host:port", addr)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("client: address %q has a query or fragment; give host:port or a base URL", addr)
	}
	c := &Client{
		base:    u.Scheme + "://" + u.Host + strings.TrimSuffix(u.EscapedPath(), "/"),
		addr:    addr,
		timeout: DefaultTimeout,
	}
	for _, o := range opts {
		o(c)
	}
	if c.timeout < 0 {
		return nil, fmt.Errorf("client: timeout %v is negative", c.timeout)
	}
	if c.hc == nil {
		c.hc = &http.Client{Transport: newTransport()}
	}
	return c, nil
}

// newTransport is http.DefaultTransport's settings with more idle
// connections per host: a Client talks to one peer, often from many
// goroutines at once.
func newTransport() *http.Transport {
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// Addr is the address the Client was made for.
func (c *Client) Addr() string { return c.addr }

// Close closes the Client's idle connections. The Client stays usable:
// a later call opens a new one.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// request is one API call.
type request struct {
	method string
	path   string      // escaped path and query, from "/v1/"
	body   any         // encoded as JSON unless nil
	header http.Header // extra headers
	extra  time.Duration
	// notFound and conflict, when set, replace ErrNotFound and ErrConflict
	// as the sentinels of a 404 and a 409 (lock routes).
	notFound, conflict error
	// onAnswer, when set, sees the answer's headers.
	onAnswer func(http.Header)
}

// do sends r and decodes a 2xx answer into out (when not nil). A non-2xx
// answer is an *APIError, with the raw body in its Body; an answer that
// cannot be decoded is an error too.
func (c *Client) do(ctx context.Context, r request, out any) error {
	body, err := c.roundTrip(ctx, r)
	if err != nil {
		return err
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			return fmt.Errorf("client: %s %s: unexpected answer from %s: %v", r.method, r.path, c.addr, err)
		}
	}
	return nil
}

// roundTrip sends r and returns the body of a 2xx answer.
func (c *Client) roundTrip(ctx context.Context, r request) ([]byte, error) {
	if _, ok := ctx.Deadline(); !ok && c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout+r.extra)
		defer cancel()
	}
	var reqBody io.Reader
	if r.body != nil {
		b, err := json.Marshal(r.body)
		if err != nil {
			return nil, fmt.Errorf("client: encoding the request: %v", err)
		}
		reqBody = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, c.base+r.path, reqBody)
	if err != nil {
		return nil, fmt.Errorf("client: %s %s: %v", r.method, r.path, err)
	}
	for k, vs := range r.header {
		req.Header[k] = vs
	}
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("client: %s %s: %w", r.method, r.path, ctx.Err())
		}
		return nil, fmt.Errorf("%w at %s: %w", ErrUnreachable, c.addr, err)
	}
	defer resp.Body.Close()
	if r.onAnswer != nil {
		r.onAnswer(resp.Header)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("client: %s %s: reading the answer: %w", r.method, r.path, ctx.Err())
		}
		return nil, fmt.Errorf("client: %s %s: reading the answer from %s: %w", r.method, r.path, c.addr, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, newAPIError(r, resp.StatusCode, body)
	}
	return body, nil
}
