// Package forwarder delivers the events of Hookgate's WEBHOOKS stream to
// internal HTTP services, one durable JetStream pull consumer per
// destination ("fwd-<name>"), at least once.
//
// A Forwarder POSTs each event's raw body, with its original Content-Type,
// the provider headers the ingest kept and Hookgate's Webhook-* headers,
// to its destination's URL. A 2xx acks the event; 408, 425, 429, 5xx and
// network errors retry it with NakWithDelay after a capped exponential
// backoff with full jitter (or an explicit schedule, or the destination's
// Retry-After); other 4xx dead-letter it at once; 410 pauses the
// destination until an operator resumes it. After MaxAttempts (or MaxAge)
// the event is copied to WEBHOOKS_DLQ with why it died and terminated.
//
// Throughput per destination is capped by Rate (a token bucket) and
// Concurrency (the worker pool; the consumer's MaxAckPending is larger, to
// leave room for events waiting out a retry delay). When several gateways
// share the consumer (Config.Shared), MaxAckPending is Concurrency, so
// JetStream holds the cap across them, and SetRateShare divides Rate among
// them. A circuit breaker
// pauses the consumer while the destination fails. Every (event,
// destination) pair has a delivery state in the KV bucket
// WEBHOOKS_DELIVERIES, read with ReadDelivery and ReadDeliveries.
//
// Config.Filters, Transform and TransformHeaders are CEL expressions
// (cel.go): an event no filter passes is acked with the state "filtered"
// and never sent; a transformation replaces the body and headers sent,
// never the stored event, and dead-letters the event it fails on.
//
// Lifecycle: New checks the config, Start creates or updates the durable
// consumer and starts delivering, Stop stops pulling and lets in-flight
// deliveries finish (or Naks them) before its context ends. Two Forwarders
// of the same destination may run at once, as they do during a Caddy
// reload: JetStream hands each event to one of them.
package forwarder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/time/rate"

	"github.com/hookgate/hookgate/event"
	"github.com/hookgate/hookgate/verify"
)

// ackMargin is added to the HTTP timeout to make the consumer's AckWait, so
// that JetStream never redelivers an event whose attempt is still running.
var ackMargin = 30 * time.Second // a variable so that tests can shorten it

// metaURL is the consumer metadata key holding a hash of the destination
// URL, so that Start can tell whether a reload changed the URL and a pause
// caused by a 410 should be lifted.
const metaURL = "hookgate_url_sha256"

// Forwarder delivers the events of one destination. It is the long-lived
// part, made by New: the configuration and what is derived from it once
// (HTTP clients, rate limiter, breaker, ordering key). What lives only while
// it runs (the consume contexts, workers, the events in hand) is a run,
// made by Start and consumed by Stop, so a Forwarder can be started again
// after it stopped.
//
// Concurrency workers make the HTTP requests. The consumer's MaxAckPending
// is Concurrency plus room for events waiting out a retry delay (which
// JetStream counts as pending), or Concurrency itself when the consumer is
// shared (see maxAckPending); every event handed out waits in a queue in
// hand until a worker is free.
type Forwarder struct {
	js     jetstream.JetStream
	cfg    Config
	log    *zap.Logger
	client *fasthttp.HostClient
	uri    *fasthttp.URI
	conns  *connSet
	// largeClient carries bodies over largeBody.
	largeClient *http.Client
	limiter     *rate.Limiter
	breaker     *breaker
	obs         Observer
	keyOf       keyFunc
	// routing holds the compiled filters and transformation; nil when
	// the destination has none.
	routing *routing
	// signer signs deliveries the Standard Webhooks way; nil when unsigned.
	signer verify.Signer

	consumer      string
	ackWait       time.Duration
	maxDeliver    int
	maxAckPending int
	// slowAfter is how long an attempt runs before its state is written as
	// "delivering" (within a quarter more, see slowWatch): fast attempts
	// write one state, not two.
	slowAfter time.Duration

	// rateShare is how many gateways share the destination's Rate (1
	// alone); see SetRateShare.
	rateShare atomic.Int64

	// mu guards run: set by Start, taken by Stop.
	mu  sync.Mutex
	run *run
}

// New checks cfg and returns a Forwarder that is not yet running.
func New(js jetstream.JetStream, cfg Config, logger *zap.Logger) (*Forwarder, error) {
	if js == nil {
		return nil, fmt.Errorf("destination %q: no JetStream context", cfg.Name)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = zap.NewNop()
	}
	f := &Forwarder{
		js:            js,
		cfg:           cfg,
		log:           logger.With(zap.String("destination", cfg.Name)),
		consumer:      ConsumerName(cfg.Name),
		ackWait:       cfg.Timeout + ackMargin,
		maxDeliver:    cfg.MaxAttempts + max(3, cfg.MaxAttempts/4),
		maxAckPending: maxAckPending(cfg),
		slowAfter:     time.Second,
		breaker:       newBreaker(cfg.Breaker),
	}
	if cfg.Rate > 0 {
		f.limiter = rate.NewLimiter(rate.Limit(cfg.Rate), cfg.Burst)
	}
	f.rateShare.Store(1)
	if cfg.OrderedBy != "" {
		f.keyOf, _ = newKeyFunc(cfg.OrderedBy) // checked by Validate
	}
	if cfg.SignSecret != "" {
		f.signer, _ = newSigner(cfg.SignSecret) // checked by Validate
	}
	f.routing, _ = compileRouting(&cfg) // checked by Validate
	f.obs = cfg.Observer
	if f.obs == nil {
		f.obs = nopObserver{}
	}
	f.conns = newConnSet()
	client, uri, err := newClient(cfg, f.conns)
	if err != nil {
		return nil, fmt.Errorf("destination %q: url %q: %w", cfg.Name, RedactURL(cfg.URL), err)
	}
	f.client, f.uri = client, uri
	f.largeClient = newLargeClient(cfg)
	return f, nil
}

// maxAckPending is the consumer's MaxAckPending for cfg. JetStream counts
// an event waiting out its NakWithDelay as a pending ack. Alone, room
// above Concurrency keeps a few events in retry from stalling the
// destination's fresh events, and the worker pool caps the requests in
// flight. Shared with other gateways, only JetStream can cap what all of
// them take, so the cap is Concurrency itself (see Config.Shared).
func maxAckPending(cfg Config) int {
	if cfg.Shared {
		return cfg.Concurrency
	}
	return cfg.Concurrency + max(16, cfg.Concurrency)
}

// SetRateShare divides the destination's Rate among n gateways that
// share its consumer (n < 1 counts as 1): the limiter runs at Rate/n
// with a burst of Burst/n rounded up, so that the n gateways together
// stay within Rate. The caller re-counts the live gateways and calls it
// again when the count changes. It takes effect for the next event even
// while the forwarder runs; calls are not to overlap (the App makes them
// one at a time).
func (f *Forwarder) SetRateShare(n int) {
	n = max(1, n)
	if f.rateShare.Swap(int64(n)) == int64(n) || f.limiter == nil {
		return
	}
	f.limiter.SetLimit(rate.Limit(f.cfg.Rate / float64(n)))
	f.limiter.SetBurst((f.cfg.Burst + n - 1) / n)
	f.log.Info("rate shared among gateways", zap.Int("gateways", n),
		zap.Float64("rate_per_gateway", f.cfg.Rate/float64(n)))
}

// Config returns the destination's configuration with defaults applied.
func (f *Forwarder) Config() Config { return f.cfg }

// Start creates or updates the destination's durable consumer and starts
// delivering. It returns once the consumer exists. A consumer of that name
// the gateway did not create (see OwnerBucket) is deleted first.
func (f *Forwarder) Start(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.run != nil {
		return fmt.Errorf("destination %q: already started", f.cfg.Name)
	}
	kv, err := EnsureStateBucket(ctx, f.js)
	if err != nil {
		return fmt.Errorf("destination %q: %w", f.cfg.Name, err)
	}
	owners, err := ensureOwnerBucket(ctx, f.js, f.log)
	if err != nil {
		return fmt.Errorf("destination %q: %w", f.cfg.Name, err)
	}
	cons, err := f.createOwnedConsumer(ctx, owners, f.consumerConfig())
	if err != nil {
		return err
	}
	r := newRun(f, kv)
	if err := r.start(ctx, cons); err != nil {
		return err
	}
	f.run = r
	f.log.Info("forwarder started",
		zap.String("consumer", f.consumer),
		zap.Strings("subjects", f.cfg.Subjects),
		zap.Int("concurrency", f.cfg.Concurrency),
		zap.Duration("ack_wait", f.ackWait),
		zap.Int("max_attempts", f.cfg.MaxAttempts))
	return nil
}

func (f *Forwarder) consumerConfig() jetstream.ConsumerConfig {
	sum := sha256.Sum256([]byte(f.cfg.URL))
	return jetstream.ConsumerConfig{
		Durable:        f.consumer,
		Description:    "Hookgate forwarder to destination " + f.cfg.Name,
		FilterSubjects: f.cfg.Subjects,
		AckPolicy:      jetstream.AckExplicitPolicy,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		// No BackOff list: it would shorten AckWait to its first entry and
		// redeliver while an attempt is still running. Retries are
		// NakWithDelay instead.
		AckWait:       f.ackWait,
		MaxDeliver:    f.maxDeliver,
		MaxAckPending: f.maxAckPending,
		Metadata:      map[string]string{metaURL: hex.EncodeToString(sum[:8])},
	}
}

// keepPause carries an existing consumer's pause into cfg: updating a
// consumer without PauseUntil would lift it. A pause is dropped only when
// the URL changed, since a new URL is how an operator answers a 410.
func (f *Forwarder) keepPause(ctx context.Context, cfg *jetstream.ConsumerConfig) error {
	cons, err := f.js.Consumer(ctx, event.StreamName, f.consumer)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("destination %q: look up consumer %q: %w", f.cfg.Name, f.consumer, err)
	}
	old := cons.CachedInfo().Config
	if old.PauseUntil == nil || !old.PauseUntil.After(time.Now()) {
		return nil
	}
	if old.Metadata[metaURL] != cfg.Metadata[metaURL] {
		f.log.Info("destination URL changed: lifting its pause", zap.Time("paused_until", *old.PauseUntil))
		return nil
	}
	cfg.PauseUntil = old.PauseUntil
	f.log.Warn("destination is paused", zap.Time("paused_until", *old.PauseUntil))
	return nil
}

// Stop stops pulling new events and waits until in-flight deliveries have
// finished (acked or nak'd), or ctx is done. Events waiting in hand (for
// the breaker, the rate limiter, a retry delay or their ordering key) are
// Nak'd at once so that another Forwarder of the destination can take
// them. Shortly before ctx's deadline, attempts still running are aborted
// and Nak'd.
func (f *Forwarder) Stop(ctx context.Context) error {
	f.mu.Lock()
	r := f.run
	f.run = nil
	f.mu.Unlock()
	if r == nil {
		return nil
	}
	err := r.stop(ctx)
	// Acks and Naks are fire-and-forget; make sure they left before the
	// caller closes the connection.
	flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	if ferr := f.js.Conn().FlushWithContext(flushCtx); ferr != nil && err == nil && !errors.Is(ferr, context.DeadlineExceeded) {
		err = ferr
	}
	f.client.CloseIdleConnections()
	f.largeClient.CloseIdleConnections()
	if err != nil {
		return fmt.Errorf("destination %q: stop: %w", f.cfg.Name, err)
	}
	f.log.Info("forwarder stopped")
	return nil
}

func waitCtx(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// nak returns m to JetStream for redelivery after delay.
func (f *Forwarder) nak(m jetstream.Msg, delay time.Duration) {
	var err error
	if delay > 0 {
		err = m.NakWithDelay(delay)
	} else {
		err = m.Nak()
	}
	if err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
		// The event comes back after AckWait anyway.
		f.log.Warn("nak failed", zap.String("subject", m.Subject()), zap.Error(err))
	}
}

func (f *Forwarder) ack(m jetstream.Msg) {
	if err := m.Ack(); err != nil {
		// The event comes back after AckWait and is delivered again: the
		// destination's idempotency check absorbs it.
		f.log.Warn("ack failed", zap.String("subject", m.Subject()), zap.Error(err))
	}
}

// debug logs a hot-path message only when debug logging is on.
func (f *Forwarder) debug(msg string, fields ...zap.Field) {
	if ce := f.log.Check(zapcore.DebugLevel, msg); ce != nil {
		ce.Write(fields...)
	}
}
