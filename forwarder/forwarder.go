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
// Concurrency (the worker pool and the consumer's MaxAckPending, which
// agree). A circuit breaker pauses the consumer while the destination
// fails. Every (event, destination) pair has a delivery state in the KV
// bucket WEBHOOKS_DELIVERIES, read with ReadDelivery and ReadDeliveries.
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
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/time/rate"

	"github.com/hookgate/hookgate/event"
)

// ackMargin is added to the HTTP timeout to make the consumer's AckWait, so
// that JetStream never redelivers an event whose attempt is still running.
var ackMargin = 30 * time.Second // a variable so that tests can shorten it

// metaURL is the consumer metadata key holding a hash of the destination
// URL, so that Start can tell whether a reload changed the URL and a pause
// caused by a 410 should be lifted.
const metaURL = "hookgate_url_sha256"

// Forwarder delivers the events of one destination.
//
// Concurrency workers make the HTTP requests; the consumer's MaxAckPending
// is Concurrency plus room for events waiting out a retry delay (which
// JetStream counts as pending), and every event handed out waits in a
// queue in hand until a worker is free.
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
	signKey     []byte

	consumer      string
	ackWait       time.Duration
	maxDeliver    int
	maxAckPending int
	// slowAfter is how long an attempt runs before its state is written as
	// "delivering": fast attempts write one state, not two.
	slowAfter time.Duration

	mu      sync.Mutex
	started bool
	cc      jetstream.ConsumeContext
	advCC   jetstream.ConsumeContext
	kv      jetstream.KeyValue
	work    chan task
	workers sync.WaitGroup
	loops   sync.WaitGroup
	// stopCtx is cancelled when Stop begins: waiting events give up.
	stopCtx context.Context
	stopNow context.CancelFunc
	// hardCtx aborts attempts in flight when Stop runs out of time.
	hardCtx    context.Context
	hardCancel context.CancelFunc
	// held are messages in hand but not in an HTTP attempt (waiting for the
	// breaker, the rate limiter, a retry delay or their turn in a key's
	// queue); they get InProgress so JetStream keeps them ours.
	held map[jetstream.Msg]struct{}
	// queues holds, per ordering key, the events waiting behind the one
	// being delivered.
	queues map[string][]jetstream.Msg
	// attempts remembers the attempts made per stream sequence while an
	// event is being retried, so a redelivery needs no state read.
	attempts map[uint64]int
}

// task is one message handed to a worker, with its ordering key ("" when
// unordered).
type task struct {
	msg jetstream.Msg
	key string
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
		js:         js,
		cfg:        cfg,
		log:        logger.With(zap.String("destination", cfg.Name)),
		consumer:   ConsumerName(cfg.Name),
		ackWait:    cfg.Timeout + ackMargin,
		maxDeliver: cfg.MaxAttempts + max(3, cfg.MaxAttempts/4),
		// JetStream counts an event waiting out its NakWithDelay as a
		// pending ack. Room above Concurrency keeps a few events in retry
		// from stalling the destination's fresh events; the worker pool
		// alone caps the requests in flight.
		maxAckPending: cfg.Concurrency + max(16, cfg.Concurrency),
		slowAfter:     time.Second,
		breaker:       newBreaker(cfg.Breaker),
	}
	if cfg.Rate > 0 {
		f.limiter = rate.NewLimiter(rate.Limit(cfg.Rate), cfg.Burst)
	}
	if cfg.OrderedBy != "" {
		f.keyOf, _ = newKeyFunc(cfg.OrderedBy) // checked by Validate
	}
	if cfg.SignSecret != "" {
		f.signKey, _ = decodeSecret(cfg.SignSecret) // checked by Validate
	}
	f.obs = cfg.Observer
	if f.obs == nil {
		f.obs = nopObserver{}
	}
	f.conns = newConnSet()
	client, uri, err := newClient(cfg, f.conns)
	if err != nil {
		return nil, fmt.Errorf("destination %q: url %q: %w", cfg.Name, redactURL(cfg.URL), err)
	}
	f.client, f.uri = client, uri
	f.largeClient = newLargeClient(cfg)
	return f, nil
}

// Config returns the destination's configuration with defaults applied.
func (f *Forwarder) Config() Config { return f.cfg }

// Start creates or updates the destination's durable consumer and starts
// delivering. It returns once the consumer exists.
func (f *Forwarder) Start(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.started {
		return fmt.Errorf("destination %q: already started", f.cfg.Name)
	}
	kv, err := EnsureStateBucket(ctx, f.js)
	if err != nil {
		return fmt.Errorf("destination %q: %w", f.cfg.Name, err)
	}
	ccfg := f.consumerConfig()
	if err := f.keepPause(ctx, &ccfg); err != nil {
		return err
	}
	cons, err := f.js.CreateOrUpdateConsumer(ctx, event.StreamName, ccfg)
	if err != nil {
		return fmt.Errorf("destination %q: create consumer %q on stream %s: %w", f.cfg.Name, f.consumer, event.StreamName, err)
	}
	f.kv = kv
	f.stopCtx, f.stopNow = context.WithCancel(context.Background())
	f.hardCtx, f.hardCancel = context.WithCancel(context.Background())
	// Aborting an attempt means closing its connection.
	f.conns.reset()
	context.AfterFunc(f.hardCtx, f.conns.abort)
	f.held = make(map[jetstream.Msg]struct{})
	f.queues = make(map[string][]jetstream.Msg)
	f.attempts = make(map[uint64]int)
	// Room for every event JetStream may hand out, so dispatch never
	// blocks and no event waits where keepAlive cannot see it.
	f.work = make(chan task, f.maxAckPending)
	for range f.cfg.Concurrency {
		f.workers.Go(f.worker)
	}
	f.loops.Go(f.keepAlive)
	if err := f.startAdvisories(ctx); err != nil {
		f.abortStart()
		return err
	}
	f.cc, err = cons.Consume(f.dispatch,
		jetstream.PullMaxMessages(f.maxAckPending),
		// Short pull requests: under load the server sometimes drops a
		// waiting pull request while the client still counts on it
		// (observed with nats-server 2.15.2 in BenchmarkDeliver); delivery
		// then stalls until the request expires and the client re-pulls.
		jetstream.PullExpiry(time.Second),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if errors.Is(err, jetstream.ErrNoHeartbeat) {
				// The client re-pulls on its own; see PullExpiry above.
				f.debug("consume: pull request lost, re-pulling", zap.Error(err))
				return
			}
			f.log.Warn("consume", zap.Error(err))
		}))
	if err != nil {
		f.abortStart()
		return fmt.Errorf("destination %q: consume %q: %w", f.cfg.Name, f.consumer, err)
	}
	f.started = true
	f.log.Info("forwarder started",
		zap.String("consumer", f.consumer),
		zap.Strings("subjects", f.cfg.Subjects),
		zap.Int("concurrency", f.cfg.Concurrency),
		zap.Duration("ack_wait", f.ackWait),
		zap.Int("max_attempts", f.cfg.MaxAttempts))
	return nil
}

// abortStart undoes a half-done Start; f.mu is held.
func (f *Forwarder) abortStart() {
	if f.advCC != nil {
		f.advCC.Stop()
	}
	f.stopNow()
	close(f.work)
	f.workers.Wait()
	f.loops.Wait()
	f.hardCancel()
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
	if !f.started {
		f.mu.Unlock()
		return nil
	}
	f.started = false
	f.mu.Unlock()

	if dl, ok := ctx.Deadline(); ok {
		// Leave a moment before the deadline to Nak what was aborted.
		grace := time.Until(dl)
		t := time.AfterFunc(grace-min(grace/10, time.Second), f.hardCancel)
		defer t.Stop()
	}
	f.stopNow()
	f.cc.Drain()
	f.advCC.Drain()
	var err error
	select {
	case <-f.cc.Closed():
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err == nil {
		close(f.work)
		if err = waitCtx(ctx, &f.workers); err == nil {
			err = waitCtx(ctx, &f.loops)
		}
	}
	f.hardCancel()
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

func (f *Forwarder) isStopping() bool { return f.stopCtx.Err() != nil }

// dispatch is the Consume callback. JetStream calls it serially, so it only
// routes: each message joins the work queue, or, when ordered and its key
// is busy, the back of that key's queue. Queued messages are held (kept
// alive with InProgress) until a worker takes them.
func (f *Forwarder) dispatch(m jetstream.Msg) {
	if f.isStopping() {
		f.nak(m, 0)
		return
	}
	t := task{msg: m}
	f.mu.Lock()
	f.held[m] = struct{}{}
	if f.keyOf != nil {
		t.key = f.keyOf(m)
		if t.key != "" {
			q, busy := f.queues[t.key]
			if busy {
				f.queues[t.key] = append(q, m)
				f.mu.Unlock()
				return
			}
			f.queues[t.key] = nil
		}
	}
	f.mu.Unlock()
	// The queue has room for MaxAckPending events, all JetStream hands out.
	f.work <- t
}

func (f *Forwarder) worker() {
	for t := range f.work {
		f.release(t.msg)
		f.handle(t.msg)
		for t.key != "" {
			next := f.nextInKey(t.key)
			if next == nil {
				break
			}
			if f.isStopping() {
				f.nak(next, 0)
				continue
			}
			f.handle(next)
		}
	}
}

// nextInKey pops the next event queued behind key, or retires the key.
func (f *Forwarder) nextInKey(key string) jetstream.Msg {
	f.mu.Lock()
	defer f.mu.Unlock()
	q := f.queues[key]
	if len(q) == 0 {
		delete(f.queues, key)
		return nil
	}
	m := q[0]
	f.queues[key] = q[1:]
	delete(f.held, m)
	return m
}

// hold marks m as waiting in hand; release undoes it.
func (f *Forwarder) hold(m jetstream.Msg) {
	f.mu.Lock()
	f.held[m] = struct{}{}
	f.mu.Unlock()
}

func (f *Forwarder) release(m jetstream.Msg) {
	f.mu.Lock()
	delete(f.held, m)
	f.mu.Unlock()
}

// keepAlive tells JetStream that held messages are still being worked on,
// so their AckWait does not expire while they wait.
func (f *Forwarder) keepAlive() {
	t := time.NewTicker(f.ackWait / 3)
	defer t.Stop()
	for {
		select {
		case <-f.stopCtx.Done():
			return
		case <-t.C:
		}
		f.mu.Lock()
		msgs := make([]jetstream.Msg, 0, len(f.held))
		for m := range f.held {
			msgs = append(msgs, m)
		}
		f.mu.Unlock()
		for _, m := range msgs {
			_ = m.InProgress() // fails only once acked: nothing to keep then
		}
	}
}

// wait blocks for d while m is held, and reports false when the forwarder
// is stopping.
func (f *Forwarder) wait(m jetstream.Msg, d time.Duration) bool {
	f.hold(m)
	defer f.release(m)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-f.stopCtx.Done():
		return false
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
