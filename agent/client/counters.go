package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// Consistency says how many peers a counter write or read involves.
type Consistency string

const (
	// Default leaves the choice to the peer (local).
	Default Consistency = ""
	// Local answers from the peer's own durable state.
	Local Consistency = "local"
	// Majority waits for (writes) or merges from (reads) a strict majority
	// of the voters.
	Majority Consistency = "majority"
)

func (cons Consistency) query() string {
	if cons == Default {
		return ""
	}
	return "?consistency=" + url.QueryEscape(string(cons))
}

// CounterResult is the answer to one counter write.
type CounterResult struct {
	// Index is, in the results AddBatch returns with an error, the
	// applied item's position in the batch (a batch may write a key
	// twice); elsewhere it is 0.
	Index int    `json:"index,omitempty"`
	Key   string `json:"key"`
	Value int64  `json:"value"`
	// Replayed says the answer is the first result of an earlier write with
	// the same idempotency key: nothing was applied this time.
	Replayed bool `json:"replayed,omitempty"`
}

// AddOptions are the optional parts of a counter write.
type AddOptions struct {
	Consistency Consistency
	// IdempotencyKey (1-255 printable ASCII bytes) makes a retry within the
	// peer's window apply once and answer the first result.
	IdempotencyKey string
}

// counterAnswer is a single counter answer; Value is a pointer so that an
// answer without one is an error, not a 0.
type counterAnswer struct {
	Key   string `json:"key"`
	Value *int64 `json:"value"`
}

// Add adds delta (non-zero; negative subtracts) to counter key and returns
// its new value. A Majority write that was applied here but not
// acknowledged by a majority returns an *APIError matching ErrUnavailable
// together with the result (the increment still spreads from this peer).
func (c *Client) Add(ctx context.Context, key string, delta int64, opts AddOptions) (CounterResult, error) {
	r := request{method: "POST", path: keyPath("/v1/counters/", key) + opts.Consistency.query(), body: map[string]int64{"delta": delta}}
	if opts.IdempotencyKey != "" {
		r.header = http.Header{"Idempotency-Key": {opts.IdempotencyKey}}
	}
	body, err := c.roundTripReplay(ctx, r)
	var a counterAnswer
	var apiErr *APIError
	if errors.As(err, &apiErr) && errors.Is(err, ErrUnavailable) {
		// The body of a majority miss still names the value written here.
		if json.Unmarshal(apiErr.Body, &a) == nil && a.Value != nil {
			return CounterResult{Key: key, Value: *a.Value}, err
		}
		return CounterResult{}, err
	}
	if err != nil {
		return CounterResult{}, err
	}
	if err := c.decodeCounter(r, body.body, &a); err != nil {
		return CounterResult{}, err
	}
	return CounterResult{Key: a.Key, Value: *a.Value, Replayed: body.replayed}, nil
}

// replayAnswer is an answer's body and whether it was replayed.
type replayAnswer struct {
	body     []byte
	replayed bool
}

// roundTripReplay is roundTrip keeping the Idempotent-Replayed header.
func (c *Client) roundTripReplay(ctx context.Context, r request) (replayAnswer, error) {
	var replayed bool
	r.onAnswer = func(h http.Header) { replayed = h.Get("Idempotent-Replayed") == "true" }
	b, err := c.roundTrip(ctx, r)
	return replayAnswer{body: b, replayed: replayed}, err
}

func (c *Client) decodeCounter(r request, body []byte, a *counterAnswer) error {
	if err := json.Unmarshal(body, a); err != nil {
		return fmt.Errorf("client: %s %s: unexpected answer from %s: %v", r.method, pathOnly(r.path), c.addr, err)
	}
	if a.Value == nil {
		return fmt.Errorf("client: %s %s: the peer's answer has no value: %s", r.method, pathOnly(r.path), body)
	}
	return nil
}

// Counter returns the value of counter key (0 if never written). With
// Majority, the peer first merges a strict majority's state.
func (c *Client) Counter(ctx context.Context, key string, cons Consistency) (int64, error) {
	r := request{method: "GET", path: keyPath("/v1/counters/", key) + cons.query()}
	body, err := c.roundTrip(ctx, r)
	if err != nil {
		return 0, err
	}
	var a counterAnswer
	if err := c.decodeCounter(r, body, &a); err != nil {
		return 0, err
	}
	return *a.Value, nil
}

// ListOptions select a page of counters.
type ListOptions struct {
	Prefix string // only keys that start with it
	After  string // only keys after it: the Next of the previous page
	Limit  int    // at most this many (1-10,000; 0: the peer's default, 100)
}

// CounterEntry is one listed counter: a value, or an error when its merged
// value left int64.
type CounterEntry struct {
	Key   string `json:"key"`
	Value *int64 `json:"value,omitempty"`
	Error string `json:"error,omitempty"`
}

// CounterPage is one page of a listing.
type CounterPage struct {
	Counters []CounterEntry `json:"counters"`
	// Next is the After of the next page; empty when this page is the last.
	Next string `json:"next"`
}

// ListCounters returns one page of the peer's counters in key order
// (its local state).
func (c *Client) ListCounters(ctx context.Context, opts ListOptions) (CounterPage, error) {
	q := url.Values{}
	if opts.Limit != 0 {
		q.Set("limit", strconv.Itoa(opts.Limit))
	}
	if opts.Prefix != "" {
		q.Set("prefix", opts.Prefix)
	}
	if opts.After != "" {
		q.Set("after", opts.After)
	}
	path := "/v1/counters"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var p CounterPage
	err := c.do(ctx, request{method: "GET", path: path}, &p)
	return p, err
}

// CounterItem is one write of a batch.
type CounterItem struct {
	Key            string `json:"key"`
	Delta          int64  `json:"delta"`
	IdempotencyKey string `json:"idempotency_key,omitempty"`
}

// AddBatch applies items (up to 10,000) and returns each one's result. A
// batch is not all-or-nothing: on an error after some items were applied,
// the results of those applied, each with its Index, come with the
// *APIError (do not retry the batch as it is; resend only the others).
func (c *Client) AddBatch(ctx context.Context, items []CounterItem, cons Consistency) ([]CounterResult, error) {
	r := request{method: "POST", path: "/v1/counters:batch" + cons.query(), body: struct {
		Items []CounterItem `json:"items"`
	}{items}}
	var a struct {
		Items   []CounterResult `json:"items"`
		Applied []CounterResult `json:"applied"`
	}
	err := c.do(ctx, r, &a)
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		if json.Unmarshal(apiErr.Body, &a) == nil {
			return a.Applied, err
		}
		return nil, err
	}
	return a.Items, err
}
