package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// result is one run's tally, as printed (JSON with --json).
type result struct {
	Mode        string  `json:"mode"`
	Target      string  `json:"target"`
	Connections int     `json:"connections"`
	Seed        uint64  `json:"seed"`
	ElapsedS    float64 `json:"elapsed_s"` // from the first request to the end of the last
	// Requests is every request issued: Successes plus ErrorCount.
	Requests   int64            `json:"requests"`
	Successes  int64            `json:"successes"`
	ErrorCount int64            `json:"error_count"`
	Errors     map[string]int64 `json:"errors"` // by class: an HTTP status, "net", "timeout", "redis-error", "bad-answer"
	// Increments is the increments the successes carried (batch: items);
	// 0 for get and noop.
	Increments     int64   `json:"increments"`
	RequestsPerS   float64 `json:"requests_per_s"`
	IncrementsPerS float64 `json:"increments_per_s"`
	LatencyP50Ms   float64 `json:"latency_p50_ms"` // over answered requests
	LatencyP90Ms   float64 `json:"latency_p90_ms"`
	LatencyP99Ms   float64 `json:"latency_p99_ms"`
	LatencyMaxMs   float64 `json:"latency_max_ms"`
	Answered       uint64  `json:"answered"`           // requests with an answer, whose latency counts
	ConnsOpened    int64   `json:"connections_opened"` // more than Connections means keep-alive broke
}

// fill computes the rates and latencies.
func (r *result) fill(h *histogram, elapsed time.Duration) {
	if s := elapsed.Seconds(); s > 0 {
		r.RequestsPerS = float64(r.Requests) / s
		r.IncrementsPerS = float64(r.Increments) / s
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	r.LatencyP50Ms = ms(h.quantile(0.50))
	r.LatencyP90Ms = ms(h.quantile(0.90))
	r.LatencyP99Ms = ms(h.quantile(0.99))
	r.LatencyMaxMs = ms(h.max)
	r.Answered = h.n
}

func (r *result) writeJSON(w io.Writer) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

func (r *result) writeText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "mode %s  target %s  connections %d  seed %d  elapsed %.2fs\n", r.Mode, r.Target, r.Connections, r.Seed, r.ElapsedS)
	fmt.Fprintf(&b, "requests     %10d  %10.0f/s\n", r.Requests, r.RequestsPerS)
	unit := "increments"
	if r.Mode == "batch" {
		unit = "items"
	}
	fmt.Fprintf(&b, "%-12s %10d  %10.0f/s\n", unit, r.Increments, r.IncrementsPerS)
	fmt.Fprintf(&b, "errors       %10d", r.ErrorCount)
	if len(r.Errors) > 0 {
		classes := make([]string, 0, len(r.Errors))
		for k := range r.Errors {
			classes = append(classes, k)
		}
		slices.Sort(classes)
		parts := make([]string, len(classes))
		for i, k := range classes {
			parts[i] = fmt.Sprintf("%s: %d", k, r.Errors[k])
		}
		fmt.Fprintf(&b, "  (%s)", strings.Join(parts, ", "))
	}
	fmt.Fprintf(&b, "\nlatency ms   p50 %.3f  p90 %.3f  p99 %.3f  max %.3f  (±%.1f%%)\n",
		r.LatencyP50Ms, r.LatencyP90Ms, r.LatencyP99Ms, r.LatencyMaxMs, 50.0/histSub)
	fmt.Fprintf(&b, "connections opened %d\n", r.ConnsOpened)
	_, err := io.WriteString(w, b.String())
	return err
}
