package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// MaxRequestBody bounds every HTTP request body, in bytes.
const MaxRequestBody = 1 << 20

func (a *Agent) startHTTP() error {
	if a.cfg.HTTPAddr == "" {
		return nil
	}
	l, err := net.Listen("tcp", a.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("agent: http listen on %s: %w", a.cfg.HTTPAddr, err)
	}
	srv := &http.Server{
		Handler:           a.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	a.mu.Lock()
	a.httpSrv, a.httpAddr = srv, l.Addr().String()
	a.mu.Unlock()
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("http server stopped", "err", err)
		}
	}()
	return nil
}

// Handler returns the HTTP API (what HTTPAddr serves), for embedding in
// another server.
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/health", a.handleHealth)
	mux.HandleFunc("GET /v1/status", a.handleStatus)
	mux.HandleFunc("GET /v1/members", a.handleMembers)
	mux.HandleFunc("POST /v1/members/{name}/force-leave", a.handleForceLeave)
	mux.HandleFunc("GET /v1/ring", a.handleRing)
	mux.HandleFunc("GET /v1/voters", a.handleVoters)
	mux.HandleFunc("GET /v1/counters", a.handleListCounters)
	mux.HandleFunc("POST /v1/counters:batch", a.handleBatch)
	mux.Handle("GET /metrics", a.metrics.handler())
	if a.cfg.EnableDebug {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no route %s %s; see the README for the API", r.Method, r.URL.Path))
	})
	return a.instrument(mux)
}

// keyRoute serves the paths under prefix, whose rest is a user key. These
// routes bypass ServeMux, which cleans paths and would redirect a key such
// as "a/../b" or "x//y" to another key.
type keyRoute struct {
	method string
	prefix string
	serve  func(w http.ResponseWriter, r *http.Request, key string)
}

func (a *Agent) keyRoutes() []keyRoute {
	return []keyRoute{
		{method: "GET", prefix: "/v1/ring/owner/", serve: a.handleOwner},
		{method: "GET", prefix: "/v1/counters/", serve: a.handleGetCounter},
		{method: "POST", prefix: "/v1/counters/", serve: a.handlePostCounter},
		{method: "POST", prefix: "/v1/locks/", serve: a.handleAcquireLock},
		{method: "PUT", prefix: "/v1/locks/", serve: a.handleRenewLock},
		{method: "DELETE", prefix: "/v1/locks/", serve: a.handleReleaseLock},
		{method: "GET", prefix: "/v1/locks/", serve: a.handleLockInfo},
	}
}

// queryParams names the query parameters each route of the API reads. A
// request to a /v1/ route that names another is refused: a misspelled
// parameter (?consistancy=majority) would be ignored, and the write
// would not be what the client meant.
var queryParams = map[string][]string{
	"GET /v1/ring/owner/{key...}":         {"n"},
	"GET /v1/counters/{key...}":           {"consistency"},
	"POST /v1/counters/{key...}":          {"consistency"},
	"GET /v1/counters":                    {"prefix", "limit", "after", "consistency"},
	"POST /v1/counters:batch":             {"consistency"},
	"DELETE /v1/locks/{key...}":           {"lease"},
	"POST /v1/members/{name}/force-leave": {"prune"},
}

// requestShapeError refuses, with its status code, what the route
// (pattern) would otherwise misread: a query string that does not parse
// (the pair that does not would be dropped), a query parameter given more
// than once (which one counts would be a guess) or that a /v1/ route does
// not read, and a body in an encoding the API does not decode.
func requestShapeError(r *http.Request, pattern string) (int, error) {
	// /metrics and /debug/pprof/ read their own (Prometheus's name[] may
	// repeat).
	if _, path, _ := strings.Cut(pattern, " "); r.URL.RawQuery != "" && strings.HasPrefix(path, "/v1/") {
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			return http.StatusBadRequest, fmt.Errorf("bad query string %q: %v", r.URL.RawQuery, err)
		}
		for _, name := range slices.Sorted(maps.Keys(q)) {
			if n := len(q[name]); n > 1 {
				return http.StatusBadRequest, fmt.Errorf("query parameter %q is given %d times; give it once", name, n)
			}
			if known := queryParams[pattern]; !slices.Contains(known, name) {
				if len(known) == 0 {
					return http.StatusBadRequest, fmt.Errorf("unknown query parameter %q: %s takes none", name, path)
				}
				return http.StatusBadRequest, fmt.Errorf("unknown query parameter %q: %s takes %s", name, path, strings.Join(known, ", "))
			}
		}
	}
	if r.ContentLength != 0 { // a body, or one of unknown length
		for _, v := range r.Header.Values("Content-Encoding") {
			for enc := range strings.SplitSeq(v, ",") {
				if enc = strings.TrimSpace(enc); enc != "" && !strings.EqualFold(enc, "identity") {
					return http.StatusUnsupportedMediaType, fmt.Errorf("Content-Encoding %q is not supported; send the body uncompressed", strings.TrimSpace(v))
				}
			}
		}
	}
	return 0, nil
}

// instrument limits bodies, answers wrong methods with a JSON 405, serves
// the key routes, and records durations by route and code.
func (a *Agent) instrument(mux *http.ServeMux) http.Handler {
	keyed := a.keyRoutes()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		var kr *keyRoute
		var allowed []string
		for i := range keyed {
			if strings.HasPrefix(r.URL.Path, keyed[i].prefix) {
				allowed = append(allowed, keyed[i].method)
				// HEAD is GET without the body (the server drops it), as
				// ServeMux does for its GET routes.
				if keyed[i].method == r.Method || (r.Method == http.MethodHead && keyed[i].method == http.MethodGet) {
					kr = &keyed[i]
				}
			}
		}
		if len(allowed) == 0 {
			for _, m := range []string{"GET", "POST", "PUT", "DELETE"} {
				if routed(mux, r, m) {
					allowed = append(allowed, m)
				}
			}
		}
		// Wherever GET is served, HEAD is too: ServeMux matches HEAD to its
		// GET patterns, and the key routes above do the same.
		if slices.Contains(allowed, http.MethodGet) {
			allowed = append(allowed, http.MethodHead)
		}
		refuse := writeError
		if r.Method == http.MethodPost && r.URL.Path == batchPath {
			refuse = writeBatchRefusal
		}
		// The route, once the method is one it serves: what the checks
		// below refuse depends on it, and an unknown path stays a 404.
		var pattern string
		wrongMethod := kr == nil && len(allowed) > 0 && !slices.Contains(allowed, r.Method)
		switch {
		case kr != nil:
			pattern = kr.method + " " + kr.prefix + "{key...}"
		case len(allowed) > 0 && !wrongMethod:
			_, pattern = mux.Handler(r)
		}
		var shapeCode int
		var shapeErr error
		if pattern != "" {
			shapeCode, shapeErr = requestShapeError(r, pattern)
		}
		switch {
		case wrongMethod:
			rec.Header().Set("Allow", strings.Join(allowed, ", "))
			writeError(rec, http.StatusMethodNotAllowed, fmt.Sprintf("%s is not allowed on %s; use %s", r.Method, r.URL.Path, strings.Join(allowed, " or ")))
		case shapeErr != nil:
			refuse(rec, shapeCode, shapeErr.Error())
		case r.ContentLength > MaxRequestBody:
			refuse(rec, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is %d bytes, limit %d", r.ContentLength, MaxRequestBody))
		case kr != nil:
			r.Body = http.MaxBytesReader(rec, r.Body, MaxRequestBody)
			r.Pattern = pattern
			kr.serve(rec, r, strings.TrimPrefix(r.URL.Path, kr.prefix))
		default:
			r.Body = http.MaxBytesReader(rec, r.Body, MaxRequestBody)
			mux.ServeHTTP(rec, r)
		}
		route := r.Pattern
		if route == "" {
			route = "other"
		}
		a.metrics.observeHTTP(route, rec.code, time.Since(start))
	})
}

// routed reports whether a route other than the catch-all serves r's path
// with method.
func routed(mux *http.ServeMux, r *http.Request, method string) bool {
	probe := r.Clone(r.Context())
	probe.Method = method
	_, pattern := mux.Handler(probe)
	return pattern != "" && pattern != "/"
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

// writeJSON writes v as the JSON answer.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // an API answer, not HTML: keep < > & as they are in messages
	enc.Encode(v)
}

// writeError writes {"error": msg}.
func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// errorStatus maps the agent's errors to HTTP status codes.
func errorStatus(err error) int {
	switch {
	case errors.Is(err, ErrBadKey):
		return http.StatusBadRequest
	case errors.Is(err, ErrUnknownMember):
		return http.StatusNotFound
	case errors.Is(err, ErrMemberAlive):
		return http.StatusConflict
	case errors.Is(err, ErrNotStarted), errors.Is(err, ErrShutdown):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func (a *Agent) handleHealth(w http.ResponseWriter, r *http.Request) {
	if _, err := a.serfOrErr(); err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "node": a.cfg.NodeName})
}

// Status is what GET /v1/status answers.
type Status struct {
	Node          string         `json:"node"`
	Version       string         `json:"version"`
	Protocol      int            `json:"protocol"`
	GossipAddr    string         `json:"gossip_addr"`
	RPCAddr       string         `json:"rpc_addr"`
	RingChecksum  string         `json:"ring_checksum"`
	RingMembers   int            `json:"ring_members"`
	VNodes        int            `json:"vnodes"`
	Members       map[string]int `json:"members"`
	UptimeSeconds float64        `json:"uptime_seconds"`
	Encrypted     bool           `json:"encrypted"`
	// Incarnation is this peer's replica incarnation; 0 while the startup
	// identity check runs or while leaving, when counter writes are refused.
	Incarnation uint64 `json:"incarnation"`
	CounterKeys int    `json:"counter_keys"`
}

// Status reports this peer's state.
func (a *Agent) Status() Status {
	v := a.view.load()
	a.mu.Lock()
	started := a.startedAt
	a.mu.Unlock()
	return Status{
		Node:          a.cfg.NodeName,
		Version:       Version,
		Protocol:      ProtocolVersion,
		GossipAddr:    a.gossipAddr(),
		RPCAddr:       a.RPCAddr(),
		RingChecksum:  v.Ring.ChecksumHex(),
		RingMembers:   v.Ring.Len(),
		VNodes:        a.cfg.VNodes,
		Members:       a.memberCounts(),
		UptimeSeconds: a.clock.Now().Sub(started).Seconds(),
		Encrypted:     len(a.cfg.EncryptKey) > 0,
		Incarnation:   a.incarnation(),
		CounterKeys:   a.counterKeys(),
	}
}

func (a *Agent) incarnation() uint64 {
	if a.ctr == nil {
		return 0
	}
	if id := a.ctr.id.Load(); id != nil {
		return id.Incarnation
	}
	return 0
}

func (a *Agent) counterKeys() int {
	if a.ctr == nil {
		return 0
	}
	return a.ctr.store.Len()
}

func (a *Agent) handleStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.Status())
}

func (a *Agent) handleMembers(w http.ResponseWriter, r *http.Request) {
	ms, err := a.Members()
	if err != nil {
		writeError(w, errorStatus(err), err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"members": ms})
}

func (a *Agent) handleForceLeave(w http.ResponseWriter, r *http.Request) {
	prune, err := queryBool(r, "prune")
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	name := r.PathValue("name")
	if err := a.ForceLeave(name, prune); err != nil {
		writeError(w, errorStatus(err), err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"member": name, "pruned": prune})
}

func (a *Agent) handleVoters(w http.ResponseWriter, r *http.Request) {
	v, err := a.Voters()
	if err != nil {
		writeError(w, errorStatus(err), err.Error())
		return
	}
	if v.Members == nil {
		v.Members = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"cluster": v.Cluster, "version": v.Version, "members": v.Members, "majority": v.Majority})
}

// RingInfo is what GET /v1/ring answers.
type RingInfo struct {
	Checksum string   `json:"checksum"`
	VNodes   int      `json:"vnodes"`
	Members  []string `json:"members"`
}

func (a *Agent) handleRing(w http.ResponseWriter, r *http.Request) {
	v := a.view.load()
	names := []string{}
	for _, m := range v.Ring.Members() {
		names = append(names, m.Name)
	}
	writeJSON(w, http.StatusOK, RingInfo{Checksum: v.Ring.ChecksumHex(), VNodes: v.Ring.VNodes(), Members: names})
}

// OwnerInfo is what GET /v1/ring/owner/{key} answers.
type OwnerInfo struct {
	Key        string   `json:"key"`
	Owner      string   `json:"owner"`
	Preference []string `json:"preference"`
	Checksum   string   `json:"checksum"`
}

func (a *Agent) handleOwner(w http.ResponseWriter, r *http.Request, key string) {
	if err := ValidateKey(key); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	n := 3
	if s := r.URL.Query().Get("n"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 1 || n > 64 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("n=%q: give a preference list length from 1 to 64", s))
			return
		}
	}
	v := a.view.load()
	pref, err := v.Ring.Preference(key, n)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("no owner for %q: %v (has this peer joined a cluster?)", key, err))
		return
	}
	writeJSON(w, http.StatusOK, OwnerInfo{Key: key, Owner: pref[0], Preference: pref, Checksum: v.Ring.ChecksumHex()})
}

func queryBool(r *http.Request, name string) (bool, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, fmt.Errorf("%s=%q: give true or false", name, s)
	}
	return b, nil
}
