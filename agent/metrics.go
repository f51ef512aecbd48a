package agent

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
)

// metrics is one agent's Prometheus registry: no package-level globals, so
// several agents in one process (the simulation) each have their own.
type metrics struct {
	reg          *prometheus.Registry
	ringRebuilds prometheus.Counter
	gossipBytes  *prometheus.CounterVec
	rpcBytesVec  *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec
	// httpObservers caches httpDuration's series by route and code, so a
	// request does not hash its labels: map[httpSeries]prometheus.Observer.
	httpObservers sync.Map
	// the hot-path counters, resolved once
	gossipOut, gossipIn, rpcOut, rpcIn prometheus.Counter

	// counters
	increments     prometheus.Counter
	deltasSent     prometheus.Counter
	deltasReceived prometheus.Counter
	aeRounds       *prometheus.CounterVec
	aeBytes        *prometheus.CounterVec
	aeKeysRepaired prometheus.Counter
	// idemCopyFailures counts idempotency records whose copy to a peer of
	// their preference list did not arrive.
	idemCopyFailures prometheus.Counter

	// locks
	lockGrants           prometheus.Counter
	lockWaits            prometheus.Counter
	lockExpiries         prometheus.Counter
	lockHandoffs         prometheus.Counter
	lockRedirects        prometheus.Counter
	lockRounds           *prometheus.CounterVec
	lockNoQuorum         prometheus.Counter
	lockPromisesAnswered prometheus.Counter
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
	m.increments = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ringleader_counter_increments_total",
		Help: "Counter writes (increments and decrements) applied on this peer under its own replica ID.",
	})
	m.deltasSent = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ringleader_counter_deltas_sent_total",
		Help: "Counter key states pushed to peers (one per key and peer).",
	})
	m.deltasReceived = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ringleader_counter_deltas_received_total",
		Help: "Counter key states received from peers and merged (pushes, repairs and majority reads).",
	})
	m.aeRounds = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ringleader_antientropy_rounds_total",
		Help: "Anti-entropy rounds this peer started, by result: equal, repaired or error.",
	}, []string{"result"})
	m.aeBytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ringleader_antientropy_bytes_total",
		Help: "Payload bytes of the anti-entropy rounds this peer started (digests, keys and states), by direction.",
	}, []string{"direction"})
	m.aeKeysRepaired = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ringleader_antientropy_keys_repaired_total",
		Help: "Keys whose state changed, on either side, in anti-entropy rounds this peer started.",
	})
	m.reg.MustRegister(m.increments, m.deltasSent, m.deltasReceived, m.aeRounds, m.aeBytes, m.aeKeysRepaired)
	newCounter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
		m.reg.MustRegister(c)
		return c
	}
	m.idemCopyFailures = newCounter("ringleader_idempotency_copy_failures_total", "Copies of idempotency records that did not reach a peer of the key's preference list, counted per record in each failed call (a peer that keeps failing is sent all its records again after a back-off while it is on the ring, and each resend counts them again).")
	m.lockGrants = newCounter("ringleader_lock_grants_total", "Lock leases this peer granted as the owner of their keys.")
	m.lockWaits = newCounter("ringleader_lock_waits_total", "Lock requests this peer queued behind a holder (wait > 0).")
	m.lockExpiries = newCounter("ringleader_lock_expiries_total", "Lock leases that ran out on this peer without being renewed or released.")
	m.lockHandoffs = newCounter("ringleader_lock_handoffs_total", "Lock keys this peer handed to a new owner when the ring moved them.")
	m.lockRedirects = newCounter("ringleader_lock_redirects_total", "Lock requests this peer sent on to another peer because that peer's ring (or this one's) names it the owner.")
	m.lockNoQuorum = newCounter("ringleader_lock_no_quorum_total", "Lock requests refused because no strict majority of the voters promised the key.")
	m.lockPromisesAnswered = newCounter("ringleader_lock_promises_answered_total", "Ownership promise requests (one per key) this peer's acceptor answered, promised or refused.")
	m.lockRounds = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ringleader_lock_promise_rounds_total",
		Help: "Ownership promise rounds this peer ran as an owner, by kind (claim: a new epoch or a lapsed claim renewed; renew: a batch renewal; transfer: a handoff taken over) and result (ok or failed).",
	}, []string{"kind", "result"})
	m.reg.MustRegister(m.lockRounds)
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

// fsyncCollector exports the store's write-ahead log fsync latencies
// (pebble's histogram, in nanoseconds) as a histogram in seconds.
type fsyncCollector struct {
	h    prometheus.Histogram
	desc *prometheus.Desc
}

func newFsyncCollector(h prometheus.Histogram) *fsyncCollector {
	return &fsyncCollector{h: h, desc: prometheus.NewDesc("ringleader_store_fsync_seconds",
		"Latency of the store's write-ahead log fsyncs (each one may commit many writes).", nil, nil)}
}

func (c *fsyncCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *fsyncCollector) Collect(ch chan<- prometheus.Metric) {
	var m dto.Metric
	if c.h == nil || c.h.Write(&m) != nil || m.Histogram == nil {
		return
	}
	buckets := make(map[float64]uint64, len(m.Histogram.Bucket))
	for _, b := range m.Histogram.Bucket {
		buckets[b.GetUpperBound()/1e9] = b.GetCumulativeCount()
	}
	ch <- prometheus.MustNewConstHistogram(c.desc, m.Histogram.GetSampleCount(), m.Histogram.GetSampleSum()/1e9, buckets)
}

// registerCounters adds the counter service's gauges and the store's fsync
// histogram.
func (m *metrics) registerCounters(c *counters) {
	m.reg.MustRegister(newFsyncCollector(c.db.FsyncLatency()),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "ringleader_counter_keys",
			Help: "Counter keys this peer holds.",
		}, func() float64 { return float64(c.store.Len()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "ringleader_idempotency_records",
			Help: "Idempotency records this peer holds (an estimate between sweeps).",
		}, func() float64 { return float64(c.idemCount.Load()) }))
}

type httpSeries struct {
	route string
	code  int
}

// observeHTTP records one request's duration.
func (m *metrics) observeHTTP(route string, code int, d time.Duration) {
	k := httpSeries{route, code}
	o, ok := m.httpObservers.Load(k)
	if !ok {
		o, _ = m.httpObservers.LoadOrStore(k, m.httpDuration.WithLabelValues(route, strconv.Itoa(code)))
	}
	o.(prometheus.Observer).Observe(d.Seconds())
}
