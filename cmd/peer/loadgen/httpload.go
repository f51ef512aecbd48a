package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"
)

// maxAnswer bounds the bytes read from one answer; a longer answer is
// drained no further, and its connection is not reused.
const maxAnswer = 1 << 20

// httpSessions prepares the HTTP modes: one transport shared by every
// session, keeping up to cfg.connections keep-alive connections, at most
// one per session in flight. The URLs of all keys are parsed once, here.
func httpSessions(cfg config, dials *atomic.Int64) (func(int) session, func()) {
	dialer := &net.Dialer{Timeout: cfg.timeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy: nil, // straight to the target, whatever HTTP_PROXY says
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return dialer.DialContext(ctx, network, addr)
		},
		MaxIdleConns:          cfg.connections,
		MaxIdleConnsPerHost:   cfg.connections, // no connection closed for want of an idle slot
		MaxConnsPerHost:       cfg.connections,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ResponseHeaderTimeout: cfg.timeout,
		WriteBufferSize:       16 << 10,
		ReadBufferSize:        16 << 10,
	}
	client := &http.Client{
		Transport: tr,
		Timeout:   cfg.timeout,
		// A redirect is an answer to count, not to follow.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}

	query := ""
	if cfg.consistency != "" {
		query = "consistency=" + cfg.consistency
	}
	base := "http://" + cfg.target
	mustURL := func(s string) *url.URL {
		u, err := url.Parse(s)
		if err != nil {
			panic(err) // validate checked the target and path; cannot happen
		}
		return u
	}
	var keyURLs []*url.URL
	if cfg.mode == "incr" || cfg.mode == "get" {
		keyURLs = make([]*url.URL, cfg.keys)
		for i := range keyURLs {
			keyURLs[i] = mustURL(base + "/v1/counters/" + url.PathEscape(keyName(cfg, i)))
			keyURLs[i].RawQuery = query
		}
	}
	batchURL := mustURL(base + "/v1/counters:batch")
	batchURL.RawQuery = query
	noopURL := mustURL(base + cfg.noopPath)

	newSession := func(worker int) session {
		return &httpSession{
			cfg:      cfg,
			client:   client,
			rng:      rand.New(rand.NewPCG(cfg.seed, uint64(worker))),
			keyURLs:  keyURLs,
			batchURL: batchURL,
			noopURL:  noopURL,
			header:   http.Header{"Content-Type": {"application/json"}},
			chosen:   make(map[int]struct{}, cfg.batch),
		}
	}
	return newSession, tr.CloseIdleConnections
}

// keyName is the name of key i.
func keyName(cfg config, i int) string { return cfg.keyPrefix + strconv.Itoa(i) }

var deltaOne = []byte(`{"delta":1}`)

// httpSession issues one worker's requests. Only its goroutine uses it.
type httpSession struct {
	cfg      config
	client   *http.Client
	rng      *rand.Rand
	keyURLs  []*url.URL // shared, read only
	batchURL *url.URL   // shared, read only
	noopURL  *url.URL   // shared, read only
	header   http.Header
	answer   bytes.Buffer
	chosen   map[int]struct{} // the keys of the batch being built
	order    []int            // the same, in the order drawn
}

func (s *httpSession) do() outcome {
	var (
		method = "POST"
		u      *url.URL
		body   []byte
		items  = 1
	)
	switch s.cfg.mode {
	case "incr":
		u, body = s.keyURLs[s.rng.IntN(len(s.keyURLs))], deltaOne
	case "get":
		method, u, items = "GET", s.keyURLs[s.rng.IntN(len(s.keyURLs))], 0
	case "noop":
		u, body, items = s.noopURL, deltaOne, 0
	case "batch":
		u, body, items = s.batchURL, s.batchBody(), s.cfg.batch
	}
	req := &http.Request{Method: method, URL: u, Host: u.Host, Header: s.header}
	if body != nil {
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.ContentLength = int64(len(body))
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return outcome{class: netClass(err)}
	}
	s.answer.Reset()
	_, err = s.answer.ReadFrom(io.LimitReader(resp.Body, maxAnswer))
	resp.Body.Close()
	if err != nil {
		return outcome{class: netClass(err)}
	}
	if resp.StatusCode/100 != 2 {
		return outcome{answered: true, class: strconv.Itoa(resp.StatusCode)}
	}
	if s.cfg.verify && !s.wellFormed() {
		return outcome{answered: true, class: "bad-answer"}
	}
	return outcome{answered: true, items: items}
}

// wellFormed reports whether the answer has the shape the mode expects:
// a value, or one value per batch item.
func (s *httpSession) wellFormed() bool {
	if s.cfg.mode == "batch" {
		var a struct {
			Items []struct {
				Value *int64 `json:"value"`
			} `json:"items"`
		}
		if json.Unmarshal(s.answer.Bytes(), &a) != nil || len(a.Items) != s.cfg.batch {
			return false
		}
		for _, it := range a.Items {
			if it.Value == nil {
				return false
			}
		}
		return true
	}
	var a struct {
		Value *int64 `json:"value"`
	}
	return json.Unmarshal(s.answer.Bytes(), &a) == nil && a.Value != nil
}

// batchBody builds {"items":[{"key":K,"delta":1},...]} over cfg.batch
// distinct random keys, chosen by Floyd's sampling: exactly cfg.batch
// draws, whatever the ratio of batch to keys. The body is new each time:
// the transport may still hold the last one.
func (s *httpSession) batchBody() []byte {
	clear(s.chosen)
	s.order = s.order[:0]
	n := s.cfg.keys
	for j := n - s.cfg.batch; j < n; j++ {
		t := s.rng.IntN(j + 1)
		if _, dup := s.chosen[t]; dup {
			t = j
		}
		s.chosen[t] = struct{}{}
		s.order = append(s.order, t)
	}
	// validate keeps the key prefix to printable ASCII without '"' or
	// '\', so a key needs no JSON escaping.
	b := make([]byte, 0, 16+(len(s.cfg.keyPrefix)+32)*s.cfg.batch)
	b = append(b, `{"items":[`...)
	for i, k := range s.order {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"key":"`...)
		b = append(b, s.cfg.keyPrefix...)
		b = strconv.AppendInt(b, int64(k), 10)
		b = append(b, `","delta":1}`...)
	}
	return append(b, "]}"...)
}

func (s *httpSession) close() {}
