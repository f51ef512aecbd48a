package agent

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics is one agent's Prometheus registry: no package-level globals, so
// several agents in one process (the simulation) each have their own.
type metrics struct {
	reg          *prometheus.Registry
	ringRebuilds prometheus.Counter
	gossipBytes  *prometheus.CounterVec
	rpcBytesVec  *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec
	// the hot-path counters, resolved once
	gossipOut, gossipIn, rpcOut, rpcIn prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		ringRebuilds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ringleader_ring_rebuilds_total",
			Help: "Times the ring changed after a membership event.",
		}),
		gossipBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ringleader_gossip_bytes_total",
			Help: "Gossip bytes (serf/memberlist, UDP and TCP) by direction.",
		}, []string{"direction"}),
		rpcBytesVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ringleader_rpc_bytes_total",
			Help: "Peer RPC frame bytes by direction.",
		}, []string{"direction"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ringleader_http_request_duration_seconds",
			Help:    "HTTP API request durations by route and status code.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}, []string{"route", "code"}),
	}
	m.gossipOut = m.gossipBytes.WithLabelValues("sent")
	m.gossipIn = m.gossipBytes.WithLabelValues("received")
	m.rpcOut = m.rpcBytesVec.WithLabelValues("sent")
	m.rpcIn = m.rpcBytesVec.WithLabelValues("received")
	m.reg.MustRegister(m.ringRebuilds, m.gossipBytes, m.rpcBytesVec, m.httpDuration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// registerMembers adds the members-by-status gauge, read from serf at scrape
// time.
func (m *metrics) registerMembers(a *Agent) {
	m.reg.MustRegister(&membersCollector{a: a, desc: prometheus.NewDesc(
		"ringleader_members", "Cluster members by serf status, as this peer sees them.", []string{"status"}, nil)})
}

func (m *metrics) gossipSent(n int)     { m.gossipOut.Add(float64(n)) }
func (m *metrics) gossipReceived(n int) { m.gossipIn.Add(float64(n)) }

func (m *metrics) rpcBytes(sent bool, n int) {
	if sent {
		m.rpcOut.Add(float64(n))
	} else {
		m.rpcIn.Add(float64(n))
	}
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

type membersCollector struct {
	a    *Agent
	desc *prometheus.Desc
}

func (c *membersCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *membersCollector) Collect(ch chan<- prometheus.Metric) {
	counts := c.a.memberCounts()
	for _, status := range []string{"alive", "leaving", "left", "failed"} {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(counts[status]), status)
	}
}
