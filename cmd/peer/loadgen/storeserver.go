package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/ringleader/ringleader/agent"
	"github.com/ringleader/ringleader/agent/store"
	"github.com/ringleader/ringleader/crdt"
)

// storeServer is the floor of a durable increment: the no-op server's
// HTTP stack with, between reading the request and answering, exactly
// the write a peer must make durable before it acknowledges one:
// crdt.Store.Apply under one replica ID, then the key's record in one
// store.Batch committed with sync (pebble, fsync on, a peer's default
// store settings). It leaves out everything else a peer does (key and
// header checks, the ring, idempotency, metrics, spreading deltas), so
// the gap between it and the no-op is what the storage costs, and the gap
// between it and a peer is what the rest of the peer costs.
type storeServer struct {
	served atomic.Int64 // increments acknowledged
	db     *store.DB
	crdt   *crdt.Store
	id     crdt.ReplicaID
}

// newStoreServer opens (or creates) a store in dir.
func newStoreServer(dir string) (*storeServer, error) {
	cfg := store.DefaultConfig()
	cfg.WALMinSyncInterval = agent.DefaultConfig().StoreMinSyncInterval // as a peer started without flags
	db, err := store.Open(dir, cfg)
	if err != nil {
		return nil, err
	}
	cs, err := crdt.New(crdt.DefaultConfig())
	if err != nil {
		db.Close()
		return nil, err
	}
	// A data dir used before: go on from its counts, as a peer restarted
	// on its data dir does.
	if _, err := db.LoadCounters(cs); err != nil {
		db.Close()
		return nil, err
	}
	id, err := crdt.NewReplicaID("loadgen", 1)
	if err != nil {
		db.Close()
		return nil, err
	}
	return &storeServer{db: db, crdt: cs, id: id}, nil
}

func (s *storeServer) Close() error { return s.db.Close() }

// handler answers POST /v1/counters/{key} {"delta":N} with the key's new
// value, as the peer does, once the write is synced; any other request
// gets a JSON 404.
func (s *storeServer) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/counters/{key...}", func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxNoopBody)
		var body struct {
			Delta int64 `json:"delta"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			storeError(w, http.StatusBadRequest, "bad request body: "+err.Error())
			return
		}
		key := strings.TrimPrefix(r.URL.Path, "/v1/counters/")
		v, err := s.crdt.Apply(key, s.id, body.Delta)
		if err != nil {
			storeError(w, http.StatusBadRequest, err.Error())
			return
		}
		b := s.db.NewBatch()
		defer b.Close()
		if err := b.MergeCounterFrom(s.crdt, key); err != nil {
			storeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		if err := b.Commit(true); err != nil {
			storeError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(struct {
			Key   string `json:"key"`
			Value int64  `json:"value"`
		}{key, v})
		s.served.Add(1)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		storeError(w, http.StatusNotFound, fmt.Sprintf("no route %s %s: the storage floor answers only POST /v1/counters/{key} {\"delta\": N}", r.Method, r.URL.Path))
	})
	return mux
}

func storeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// runStoreServer is --serve-store: it serves the storage floor on addr
// with its data in dir until ctx ends, and returns the exit code.
func runStoreServer(ctx context.Context, stderr io.Writer, addr, dir string, remote bool) int {
	if dir == "" {
		fmt.Fprintln(stderr, "loadgen: --serve-store needs --store-dir DIR (a data dir on the disk to measure; created if missing)")
		return 2
	}
	if err := checkAddr("--serve-store", addr, remote); err != nil {
		fmt.Fprintf(stderr, "loadgen: %v\n", err)
		return 2
	}
	s, err := newStoreServer(dir)
	if err != nil {
		fmt.Fprintf(stderr, "loadgen: %v\n", err)
		return 1
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		s.Close()
		fmt.Fprintf(stderr, "loadgen: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "loadgen: storage floor on http://%s (POST /v1/counters/{key}), data in %s; SIGINT or SIGTERM stops it\n", l.Addr(), dir)
	err = serveHTTP(ctx, l, s.handler())
	fmt.Fprintf(stderr, "loadgen: acknowledged %d increments\n", s.served.Load())
	err = errors.Join(err, s.Close())
	if err != nil {
		fmt.Fprintf(stderr, "loadgen: %v\n", err)
		return 1
	}
	return 0
}
