package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
)

// Counter routes:
//
//	POST /v1/counters/{key...}   {"delta": n}          → {"key", "value"}
//	GET  /v1/counters/{key...}                         → {"key", "value"}
//	GET  /v1/counters?prefix=&limit=&after=            → {"counters": [...], "next"}
//	POST /v1/counters:batch      {"items": [{"key", "delta", "idempotency_key"}]} → {"items": [...]}
//
// Writes and single reads take ?consistency=local|majority; writes take an
// Idempotency-Key header (batch items: an idempotency_key each).

const (
	defaultListLimit = 100
	maxListLimit     = 10000
)

// counterStatus maps the counter errors to HTTP status codes.
func counterStatus(err error) int {
	switch {
	case errors.Is(err, ErrBadKey), errors.Is(err, ErrBadDelta), errors.Is(err, errBadBody):
		return http.StatusBadRequest
	case errors.Is(err, ErrIdempotencyConflict):
		return http.StatusUnprocessableEntity
	case errors.Is(err, ErrValueOverflow):
		return http.StatusConflict
	case errors.Is(err, ErrNotReady), errors.Is(err, ErrNoMajority), errors.Is(err, ErrUnavailable):
		return http.StatusServiceUnavailable
	}
	return errorStatus(err)
}

func consistencyOf(r *http.Request) (Consistency, error) {
	return ParseConsistency(r.URL.Query().Get("consistency"))
}

// parseDelta reads a JSON number that must be a non-zero int64.
func parseDelta(raw json.RawMessage, where string) (int64, error) {
	n := string(bytes.TrimSpace(raw))
	if n == "" || n == "null" {
		return 0, fmt.Errorf("%w: %s has no \"delta\"; send {\"delta\": <non-zero integer>}", ErrBadDelta, where)
	}
	if n[0] == '"' {
		return 0, fmt.Errorf("%w: %s: delta %s is a string; send a JSON number", ErrBadDelta, where, n)
	}
	d, err := strconv.ParseInt(n, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %s: delta %s is not an integer in the int64 range", ErrBadDelta, where, n)
	}
	if d == 0 {
		return 0, fmt.Errorf("%w: %s: delta must not be 0", ErrBadDelta, where)
	}
	return d, nil
}

// errBadBody marks a counter write whose body is not the JSON it expects:
// a 400, like a bad delta, but the fault is the body's shape, not a delta.
var errBadBody = errors.New("bad request body")

// decodeJSON decodes a JSON body strictly: known fields only, each once and
// in lower case (checkObjectKeys), one value. Its errors wrap errBadBody.
func decodeJSON(body []byte, v any) error {
	if err := checkObjectKeys(body); err != nil {
		return fmt.Errorf("%w: %v", errBadBody, err)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return err
		}
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: empty body; send JSON", errBadBody)
		}
		return fmt.Errorf("%w: %s", errBadBody, jsonBodyError(err))
	}
	if dec.More() {
		return fmt.Errorf("%w: it has more than one JSON value", errBadBody)
	}
	return nil
}

func writeBodyError(w http.ResponseWriter, err error) {
	code, msg := bodyError(err)
	writeError(w, code, msg)
}

// bodyError gives the status and message for a request body that could
// not be read or parsed.
func bodyError(err error) (int, string) {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is over the limit of %d bytes", tooBig.Limit)
	}
	return http.StatusBadRequest, err.Error()
}

// batchPath is the batch route; its error answers all carry "applied".
const batchPath = "/v1/counters:batch"

// writeBatchRefusal answers a batch refused before any item was applied:
// {"error": msg, "applied": []}, the shape of every batch error answer.
func writeBatchRefusal(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(appendBatchAnswer(nil, nil, nil, msg))
}

type counterAnswer struct {
	Key   string `json:"key"`
	Value int64  `json:"value"`
}

func (a *Agent) handlePostCounter(w http.ResponseWriter, r *http.Request, key string) {
	cons, err := consistencyOf(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := ValidateKey(key); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	idemKey, err := idempotencyHeader(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	delta, err := readDelta(r)
	if err != nil {
		writeBodyError(w, err)
		return
	}
	item := CounterItem{Key: key, Delta: delta, IdempotencyKey: idemKey}
	res, err := a.Add(r.Context(), []CounterItem{item}, cons)
	if len(res) == 1 && res[0].Replayed {
		// Also on a 503 for want of a majority: the write is the earlier one.
		w.Header().Set("Idempotent-Replayed", "true")
	}
	if err != nil {
		if errors.Is(err, ErrNoMajority) && len(res) == 1 {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": err.Error(), "key": key, "value": res[0].Value})
			return
		}
		writeError(w, counterStatus(err), err.Error())
		return
	}
	writeCounter(w, key, res[0].Value)
}

// idempotencyHeader returns a single write's Idempotency-Key header, ""
// when it has none. A header that is present but empty is refused, not
// taken for none (the client expects its retries to apply once), and so
// are two of them (which one is meant is unclear).
func idempotencyHeader(r *http.Request) (string, error) {
	vs, ok := r.Header["Idempotency-Key"]
	switch {
	case !ok:
		return "", nil
	case len(vs) > 1:
		return "", fmt.Errorf("%w: the request has %d Idempotency-Key headers; send one", ErrBadIdempotencyKey, len(vs))
	}
	if err := validateIdempotencyKey(vs[0]); err != nil {
		return "", err
	}
	return vs[0], nil
}

// bodyPool holds buffers for request bodies of single writes.
var bodyPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// readDelta reads a single write's body, {"delta": n}. The common exact
// form is parsed by hand (this is the hot path); anything else goes
// through the strict JSON decoder, which gives the error messages.
func readDelta(r *http.Request) (int64, error) {
	bp := bodyPool.Get().(*[]byte)
	defer bodyPool.Put(bp)
	buf := (*bp)[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, err
		}
	}
	*bp = buf
	if d, ok := parseDeltaFast(buf); ok {
		return d, nil
	}
	var body struct {
		Delta json.RawMessage `json:"delta"`
	}
	if err := decodeJSON(buf, &body); err != nil {
		return 0, err
	}
	return parseDelta(body.Delta, "the body")
}

// parseDeltaFast parses exactly {"delta":<non-zero integer>} with optional
// spaces; ok is false for anything else.
func parseDeltaFast(b []byte) (int64, bool) {
	i := 0
	skip := func() {
		for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
			i++
		}
	}
	expect := func(lit string) bool {
		skip()
		if !bytes.HasPrefix(b[i:], []byte(lit)) {
			return false
		}
		i += len(lit)
		return true
	}
	if !expect("{") || !expect(`"delta"`) || !expect(":") {
		return 0, false
	}
	skip()
	start := i
	if i < len(b) && b[i] == '-' {
		i++
	}
	digits := i
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	if i == digits || (b[digits] == '0' && i-digits > 1) {
		return 0, false
	}
	d, err := strconv.ParseInt(string(b[start:i]), 10, 64)
	if err != nil || d == 0 || !expect("}") {
		return 0, false
	}
	skip()
	return d, i == len(b)
}

// writeCounter writes {"key": key, "value": v}, without reflection for
// keys that need no escaping.
func writeCounter(w http.ResponseWriter, key string, v int64) {
	w.Header().Set("Content-Type", "application/json")
	plain := true
	for i := 0; i < len(key) && plain; i++ {
		c := key[i]
		plain = c >= 0x20 && c < 0x7f && c != '"' && c != '\\'
	}
	if !plain {
		writeJSON(w, http.StatusOK, counterAnswer{Key: key, Value: v})
		return
	}
	b := make([]byte, 0, len(key)+48)
	b = append(b, `{"key":"`...)
	b = append(b, key...)
	b = append(b, `","value":`...)
	b = strconv.AppendInt(b, v, 10)
	b = append(b, "}\n"...)
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

func (a *Agent) handleGetCounter(w http.ResponseWriter, r *http.Request, key string) {
	cons, err := consistencyOf(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	v, err := a.Value(r.Context(), key, cons)
	if err != nil {
		writeError(w, counterStatus(err), err.Error())
		return
	}
	writeCounter(w, key, v)
}

// CounterPage is what GET /v1/counters answers.
type CounterPage struct {
	Counters []CounterEntry `json:"counters"`
	// Next is the key to pass as after= for the next page; empty when this
	// page is the last.
	Next string `json:"next"`
}

func (a *Agent) handleListCounters(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if c := q.Get("consistency"); c != "" && c != "local" {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("consistency=%q: a listing reads this peer's state (local); read single keys with consistency=majority", c))
		return
	}
	limit := defaultListLimit
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxListLimit {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit=%q: give a number from 1 to %d", s, maxListLimit))
			return
		}
		limit = n
	}
	entries, next, err := a.ListCounters(q.Get("prefix"), q.Get("after"), limit)
	if err != nil {
		writeError(w, counterStatus(err), err.Error())
		return
	}
	writeJSON(w, http.StatusOK, CounterPage{Counters: entries, Next: next})
}

func (a *Agent) handleBatch(w http.ResponseWriter, r *http.Request) {
	cons, err := consistencyOf(r)
	if err != nil {
		writeBatchRefusal(w, http.StatusBadRequest, err.Error())
		return
	}
	if _, ok := r.Header["Idempotency-Key"]; ok {
		writeBatchRefusal(w, http.StatusBadRequest, `a batch takes no Idempotency-Key header, not even an empty one (it would not make the batch idempotent); give each item its own "idempotency_key"`)
		return
	}
	var items []CounterItem
	body, err := io.ReadAll(r.Body)
	if err == nil {
		var ok bool
		if items, ok = parseBatchFast(body); !ok {
			items, err = parseBatchStrict(body)
		}
	}
	if err != nil {
		code, msg := bodyError(err)
		writeBatchRefusal(w, code, msg)
		return
	}
	if len(items) == 0 {
		writeBatchRefusal(w, http.StatusBadRequest, `no items; send {"items": [{"key": "k", "delta": 1}, ...]}`)
		return
	}
	res, err := a.Add(r.Context(), items, cons)
	code, msg := http.StatusOK, ""
	if err != nil {
		code, msg = counterStatus(err), err.Error()
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(appendBatchAnswer(make([]byte, 0, 64+40*len(res)), items, res, msg))
}
