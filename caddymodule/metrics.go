package caddymodule

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookgate/hookgate/event"
	"github.com/hookgate/hookgate/forwarder"
	"github.com/hookgate/hookgate/verify"
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
	requestSecs  *prometheus.HistogramVec
	verifyFails  *prometheus.CounterVec
	deliverySecs *prometheus.HistogramVec
	replays      *prometheus.CounterVec
	redrives     *prometheus.CounterVec
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
	requestSecs: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "caddy", Subsystem: "webhooks", Name: "request_duration_seconds",
		Help:    "Time the handler took over a request, from its arrival to the answer, by source and outcome (as in requests_total).",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"source", "outcome"}),
	verifyFails: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "webhooks", Name: "verify_failures_total",
		Help: "Requests whose signature did not verify, by source and reason: missing_header, malformed, stale_timestamp (a clock problem), mismatch (a wrong or rotated secret), config.",
	}, []string{"source", "reason"}),
	deliverySecs: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "caddy", Subsystem: "webhooks", Name: "delivery_latency_seconds",
		Help:    "Time from an event's arrival at the gateway to its successful delivery, retries included, by destination.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400},
	}, []string{"destination"}),
	replays: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "webhooks", Name: "replays_total",
		Help: "Stored events queued for delivery again by an operator (one event or a bulk replay), by destination.",
	}, []string{"destination"}),
	redrives: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "webhooks", Name: "redrives_total",
		Help: "Dead letters queued for delivery again by an operator, by destination.",
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
	descOldestPending = prometheus.NewDesc("caddy_webhooks_destination_oldest_pending_age_seconds",
		"Age of a destination's oldest unsettled event (since it was stored); 0 with no backlog.", []string{"destination"}, nil)
	descBreakerOpen = prometheus.NewDesc("caddy_webhooks_destination_breaker_open",
		"1 while a destination's circuit breaker is open (half-open and closed are 0).", []string{"destination"}, nil)
	descStoreUp = prometheus.NewDesc("caddy_webhooks_store_up",
		"1 while the event store runs and takes new events; 0 when it is stopped, full or failing.", nil, nil)
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
		metrics.attemptSecs, metrics.deadLetters, metrics.filtered, metrics.requestSecs,
		metrics.verifyFails, metrics.deliverySecs, metrics.replays, metrics.redrives}
}

// destinationObserver feeds a destination's forwarder events to the
// metrics, with its counters looked up once.
type destinationObserver struct {
	attempts    map[string]prometheus.Counter
	seconds     prometheus.Observer
	deadLetters map[string]prometheus.Counter
	filtered    prometheus.Counter
	delivered   prometheus.Observer
}

func newDestinationObserver(name string) *destinationObserver {
	o := &destinationObserver{
		attempts:    make(map[string]prometheus.Counter, len(forwarder.AttemptOutcomes)),
		seconds:     metrics.attemptSecs.WithLabelValues(name),
		deadLetters: make(map[string]prometheus.Counter, len(forwarder.DeadLetterReasons)),
		filtered:    metrics.filtered.WithLabelValues(name),
		delivered:   metrics.deliverySecs.WithLabelValues(name),
	}
	// Made up front so every series shows from the start, at 0.
	for _, out := range forwarder.AttemptOutcomes {
		o.attempts[out] = metrics.attempts.WithLabelValues(name, out)
	}
	for _, r := range forwarder.DeadLetterReasons {
		o.deadLetters[r] = metrics.deadLetters.WithLabelValues(name, r)
	}
	metrics.replays.WithLabelValues(name)
	metrics.redrives.WithLabelValues(name)
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

func (o *destinationObserver) DeliveredAfter(sinceArrival time.Duration) {
	o.delivered.Observe(sinceArrival.Seconds())
}

// Interface guards: the app hands a destinationObserver to each forwarder.
var (
	_ forwarder.Observer        = (*destinationObserver)(nil)
	_ forwarder.LatencyObserver = (*destinationObserver)(nil)
)

// Outcomes of requests that were not rejected.
const (
	outcomeAccepted  = "accepted"
	outcomeDuplicate = "duplicate"
	outcomeHandshake = "handshake"
)

// countRequest counts the answered request q and how long the handler
// took over it since it arrived, and notes its outcome for its span.
func countRequest(q *request, source, version, outcome string) {
	q.outcome = outcome
	metrics.requests.WithLabelValues(source, version, outcome).Inc()
	metrics.requestSecs.WithLabelValues(source, outcome).Observe(time.Since(q.now).Seconds())
}

// countVerifyFailure counts a request of source whose signature did not
// verify with err, by verify.Reason.
func countVerifyFailure(source string, err error) {
	metrics.verifyFails.WithLabelValues(source, verify.Reason(err)).Inc()
}

// countReplay counts an event queued again for destination: a redrive of
// a dead letter when redrive is set, else a replay.
func countReplay(destination string, redrive bool) {
	if redrive {
		metrics.redrives.WithLabelValues(destination).Inc()
		return
	}
	metrics.replays.WithLabelValues(destination).Inc()
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
	for _, d := range []*prometheus.Desc{descStreamMessages, descStreamBytes, descStreamMaxBytes, descPending, descAckPending, descPaused,
		descOldestPending, descBreakerOpen, descStoreUp} {
		ch <- d
	}
}

func (c *appCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.app.runningEngine()
	if e == nil {
		ch <- prometheus.MustNewConstMetric(descStoreUp, prometheus.GaugeValue, 0)
		return // not started, or stopped: nothing else to report
	}
	ch <- prometheus.MustNewConstMetric(descStoreUp, prometheus.GaugeValue, boolGauge(c.app.storeState() == storeWritable))
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
		ch <- prometheus.MustNewConstMetric(descPaused, prometheus.GaugeValue, boolGauge(st.Paused), st.Name)
		ch <- prometheus.MustNewConstMetric(descBreakerOpen, prometheus.GaugeValue, boolGauge(st.Circuit == circuitOpen), st.Name)
		age := 0.0
		if t, ok := oldestPending(ctx, e, f, st); ok {
			age = max(time.Since(t).Seconds(), 0)
		}
		ch <- prometheus.MustNewConstMetric(descOldestPending, prometheus.GaugeValue, age, st.Name)
	}
}

// circuitOpen is forwarder.DestinationStatus.Circuit for an open breaker.
const circuitOpen = "open"

// boolGauge is a gauge's value for b: 1 or 0.
func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
