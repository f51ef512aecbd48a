package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// noopServer is the baseline: the same net/http server settings and
// ServeMux the peer's HTTP API uses, with a handler that reads the body
// and answers {"key":"k","value":1} as JSON, doing no work in between. It
// answers POST and GET on every path, so modes noop, incr and get all
// work against it.
type noopServer struct {
	served atomic.Int64 // requests answered
}

// maxNoopBody is the peer's limit on a request body (agent.MaxRequestBody).
const maxNoopBody = 1 << 20

func (s *noopServer) handler() http.Handler {
	mux := http.NewServeMux()
	answer := func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxNoopBody)
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(map[string]string{"error": "reading the body: " + err.Error()})
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(struct {
			Key   string `json:"key"`
			Value int64  `json:"value"`
		}{"k", 1})
		s.served.Add(1)
	}
	mux.HandleFunc("POST /", answer)
	mux.HandleFunc("GET /", answer)
	return mux
}

// serveHTTP answers on l with h, with the peer's server settings, until
// ctx ends, then shuts down gracefully (at most 5 s) and returns.
func serveHTTP(ctx context.Context, l net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second, // as the peer's
		IdleTimeout:       2 * time.Minute,
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-done; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}
