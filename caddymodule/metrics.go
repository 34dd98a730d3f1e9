package caddymodule

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookgate/hookgate/event"
	"github.com/hookgate/hookgate/forwarder"
)

// Prometheus metrics, served with Caddy's own on the admin endpoint's
// /metrics. The collectors are made once per process and registered again
// into the registry of every config load (Caddy makes a new one each
// time), so counts carry across reloads. Labels are bounded: configured
// sources, versions and destinations, and fixed outcome sets — never an
// event id, an address or an unknown path.
var metrics = struct {
	requests     *prometheus.CounterVec
	storeSeconds *prometheus.HistogramVec
	attempts     *prometheus.CounterVec
	attemptSecs  *prometheus.HistogramVec
	deadLetters  *prometheus.CounterVec
	filtered     *prometheus.CounterVec
}{
	requests: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "webhooks", Name: "requests_total",
		Help: "Webhook requests answered, by source, version and outcome: accepted, duplicate, handshake, or the problem type of a rejection (invalid-signature, rate-limited, store-unavailable, ...). Source and version are empty for unknown endpoints.",
	}, []string{"source", "version", "outcome"}),
	storeSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "caddy", Subsystem: "webhooks", Name: "store_duration_seconds",
		Help:    "Time from publishing a verified event to the store's acknowledgement (or failure), by source.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"source"}),
	attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "webhooks", Name: "delivery_attempts_total",
		Help: "Delivery attempts to internal destinations, by destination and outcome: delivered (2xx), error (retryable), rejected (4xx, dead-lettered), gone (410, paused).",
	}, []string{"destination", "outcome"}),
	attemptSecs: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "caddy", Subsystem: "webhooks", Name: "delivery_attempt_duration_seconds",
		Help:    "Duration of delivery attempts, by destination.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"destination"}),
	deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "webhooks", Name: "dead_letters_total",
		Help: "Events copied to WEBHOOKS_DLQ, by destination and reason (rejected, max_attempts, max_age, max_deliveries, undecodable, transform_failed).",
	}, []string{"destination", "reason"}),
	filtered: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "webhooks", Name: "filtered_total",
		Help: "Events a destination's filters did not let through: acknowledged for that destination without a delivery, by destination.",
	}, []string{"destination"}),
}

// Descriptions of the gauges the app collects from JetStream at scrape time.
var (
	descStreamMessages = prometheus.NewDesc("caddy_webhooks_stream_messages",
		"Messages in a stream (WEBHOOKS: events, WEBHOOKS_DLQ: dead letters).", []string{"stream"}, nil)
	descStreamBytes = prometheus.NewDesc("caddy_webhooks_stream_bytes",
		"Bytes in a stream.", []string{"stream"}, nil)
	descStreamMaxBytes = prometheus.NewDesc("caddy_webhooks_stream_max_bytes",
		"A stream's size limit (max_store for WEBHOOKS); at the limit new events are refused with 503.", []string{"stream"}, nil)
	descPending = prometheus.NewDesc("caddy_webhooks_destination_pending",
		"Events matching a destination not yet handed to its forwarder: the backlog.", []string{"destination"}, nil)
	descAckPending = prometheus.NewDesc("caddy_webhooks_destination_ack_pending",
		"Events handed to a destination's forwarder and not yet settled: in an attempt or waiting out a retry delay.", []string{"destination"}, nil)
	descPaused = prometheus.NewDesc("caddy_webhooks_destination_paused",
		"1 while a destination gets no events: its circuit is open or its consumer paused (after failures, or indefinitely after a 410); else 0.", []string{"destination"}, nil)
)

// registerMetrics registers the collectors into a config's registry; a
// second call for the same registry is a no-op.
func registerMetrics(reg *prometheus.Registry) error {
	if reg == nil {
		return nil
	}
	for _, c := range processCollectors() {
		if err := reg.Register(c); err != nil && !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
			return err
		}
	}
	return nil
}

// processCollectors lists the collectors made once per process, which
// registerMetrics adds to every config's registry.
func processCollectors() []prometheus.Collector {
	return []prometheus.Collector{metrics.requests, metrics.storeSeconds, metrics.attempts,
		metrics.attemptSecs, metrics.deadLetters, metrics.filtered}
}

// destinationObserver feeds a destination's forwarder events to the
// metrics, with its counters looked up once.
type destinationObserver struct {
	attempts    map[string]prometheus.Counter
	seconds     prometheus.Observer
	deadLetters map[string]prometheus.Counter
	filtered    prometheus.Counter
}

func newDestinationObserver(name string) *destinationObserver {
	o := &destinationObserver{
		attempts:    make(map[string]prometheus.Counter, len(forwarder.AttemptOutcomes)),
		seconds:     metrics.attemptSecs.WithLabelValues(name),
		deadLetters: make(map[string]prometheus.Counter, len(forwarder.DeadLetterReasons)),
		filtered:    metrics.filtered.WithLabelValues(name),
	}
	// Made up front so every series shows from the start, at 0.
	for _, out := range forwarder.AttemptOutcomes {
		o.attempts[out] = metrics.attempts.WithLabelValues(name, out)
	}
	for _, r := range forwarder.DeadLetterReasons {
		o.deadLetters[r] = metrics.deadLetters.WithLabelValues(name, r)
	}
	return o
}

func (o *destinationObserver) Attempted(outcome string, latency time.Duration) {
	if c := o.attempts[outcome]; c != nil {
		c.Inc()
	}
	o.seconds.Observe(latency.Seconds())
}

func (o *destinationObserver) DeadLettered(reason string) {
	if c := o.deadLetters[reason]; c != nil {
		c.Inc()
	}
}

func (o *destinationObserver) Filtered() { o.filtered.Inc() }

// Interface guard: the app hands a destinationObserver to each forwarder.
var _ forwarder.Observer = (*destinationObserver)(nil)

// Outcomes of requests that were not rejected.
const (
	outcomeAccepted  = "accepted"
	outcomeDuplicate = "duplicate"
	outcomeHandshake = "handshake"
)

// countRequest counts one answered request.
func countRequest(source, version, outcome string) {
	metrics.requests.WithLabelValues(source, version, outcome).Inc()
}

// appCollector reports the app's streams and destinations from JetStream
// at scrape time. Each config load registers its own, in its own registry.
type appCollector struct {
	app *App
	// mu keeps concurrent scrapes from piling up requests on the server.
	mu sync.Mutex
}

// scrapeTimeout bounds the JetStream requests of one scrape.
const scrapeTimeout = 2 * time.Second

func (c *appCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descStreamMessages, descStreamBytes, descStreamMaxBytes, descPending, descAckPending, descPaused} {
		ch <- d
	}
}

func (c *appCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.app.runningEngine()
	if e == nil {
		return // not started, or stopped: nothing to report
	}
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	for _, name := range []string{event.StreamName, event.DLQStreamName} {
		s, err := e.js.Stream(ctx, name)
		if err != nil {
			continue
		}
		st := s.CachedInfo()
		ch <- prometheus.MustNewConstMetric(descStreamMessages, prometheus.GaugeValue, float64(st.State.Msgs), name)
		ch <- prometheus.MustNewConstMetric(descStreamBytes, prometheus.GaugeValue, float64(st.State.Bytes), name)
		if st.Config.MaxBytes > 0 {
			ch <- prometheus.MustNewConstMetric(descStreamMaxBytes, prometheus.GaugeValue, float64(st.Config.MaxBytes), name)
		}
	}
	for _, f := range c.app.runningForwarders() {
		st, err := f.Status(ctx)
		if err != nil {
			continue
		}
		ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(st.Pending), st.Name)
		ch <- prometheus.MustNewConstMetric(descAckPending, prometheus.GaugeValue, float64(st.AckPending), st.Name)
		paused := 0.0
		if st.Paused {
			paused = 1
		}
		ch <- prometheus.MustNewConstMetric(descPaused, prometheus.GaugeValue, paused, st.Name)
	}
}
