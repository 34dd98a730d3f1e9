package caddymodule

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	oteltrace "go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/hookgate/hookgate/verify"
)

func init() {
	caddy.RegisterModule(new(Handler))
}

// Defaults of the webhook_ingest handler.
const (
	defaultPrefix         = "/webhooks"
	defaultVersion        = "v1"
	defaultStatus         = http.StatusOK
	defaultPublishTimeout = 5 * time.Second
	defaultRetryAfter     = 5 * time.Second
	// readyWait is how long a request waits for the app to finish starting
	// before it gets a 503: apps start in random order.
	readyWait = 2 * time.Second
)

// Handler is the "webhook_ingest" HTTP handler. It answers
// POST <prefix>/<version>/<source>: checks the source's signature on the raw
// body, stores the event in the webhooks app's stream and answers 2xx only
// once the store has acknowledged it. It is terminal: it never calls the
// next handler.
type Handler struct {
	// Prefix is the path before /<version>/<source>. Default: "/webhooks".
	Prefix string `json:"prefix,omitempty"`

	// Versions are the accepted path versions. Default: ["v1"].
	Versions []string `json:"versions,omitempty"`

	// Sources are the providers this endpoint accepts, by path name.
	Sources []*Source `json:"sources,omitempty"`

	// Status is the success status code (2xx). Default: 200.
	Status int `json:"status,omitempty"`

	// PublishTimeout bounds the wait for the store's acknowledgement;
	// past it the provider gets 503 and retries. Default: 5s.
	PublishTimeout caddy.Duration `json:"publish_timeout,omitempty"`

	// RetryAfter is the Retry-After sent with a 503. Default: 5s.
	RetryAfter caddy.Duration `json:"retry_after,omitempty"`

	// Deprecated announces the end of versions that still work: their
	// responses carry Deprecation (RFC 9745), Sunset (RFC 8594) and a Link
	// to the successor version's path.
	Deprecated []*Deprecation `json:"deprecated,omitempty"`

	// Retired are versions no longer accepted: a POST to one gets 410 Gone
	// with a problem body naming the current versions, and a Link to the
	// successor. They must not be among Versions.
	Retired []string `json:"retired,omitempty"`

	// BodyTimeout bounds how long a source waits for the whole body once
	// the headers are in; past it, 408 and the connection is closed. It
	// is the default of the sources' own body_timeout. Default: 10s.
	BodyTimeout caddy.Duration `json:"body_timeout,omitempty"`

	// MaxHeaders bounds the header fields of a request (Host aside); past
	// it, 431. Together with MaxHeaderBytes it keeps every stored event
	// deliverable to an ordinary HTTP server. The default of the sources'
	// own max_headers. Default: 100.
	MaxHeaders int `json:"max_headers,omitempty"`

	// MaxHeaderBytes bounds the header fields' size as sent ("Name: value"
	// and a line end each); past it, 431. The default of the sources' own
	// max_header_bytes. Default: 16 KiB.
	MaxHeaderBytes int64 `json:"max_header_bytes,omitempty"`

	// RatePerIP limits each client IP (as Caddy resolves it, honouring the
	// server's trusted_proxies; an IPv6 client is its /64) on every path
	// of this handler, unknown ones included, except the sources that set
	// their own. Checked before the body is read. Default: no limit.
	RatePerIP *RateLimit `json:"rate_per_ip,omitempty"`

	// app is the webhooks app, for its limits; events is where events go,
	// the app itself unless a test or a later store (group commit, an
	// external NATS, a cluster) plugs another publisher in.
	app            *App
	events         publisher
	prefix         string
	versions       map[string]bool
	retired        map[string]bool
	sources        map[string]*source
	status         int
	publishTimeout time.Duration
	retryAfter     string
	perIP          *ipTable
	limiters       limiterSet
	// deadlines hands out the publish contexts.
	deadlines *deadlineSlots
	logger    *zap.Logger
	// trapWarn lets the prefix trap be warned about at most every
	// prefixTrapEvery (prefixtrap.go).
	trapWarn *rate.Sometimes
}

// CaddyModule returns the Caddy module information.
func (*Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.webhook_ingest",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision builds the router and the verifiers.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	appIface, err := ctx.App("webhooks")
	if err != nil {
		return fmt.Errorf("webhooks app: %w", err)
	}
	h.app = appIface.(*App)
	h.events = h.app
	if err := h.provision(); err != nil {
		return err
	}
	h.warnIfUnverified()
	h.warnIfReplayOutlivesDedup(time.Duration(orDefault(h.app.DedupWindow, caddy.Duration(defaultDedupWindow))))
	return nil
}

// warnIfUnverified warns, once per provisioning, about sources that accept
// unsigned requests: valid, and right behind a trusted proxy or on a
// private network, but on the internet anyone who finds the path can store
// events that internal services will trust.
func (h *Handler) warnIfUnverified() {
	var paths []string
	for _, s := range h.Sources {
		if s.Verify != nil && s.Verify.Scheme == "none" {
			paths = append(paths, h.prefix+"/<version>/"+s.Name)
		}
	}
	if len(paths) == 0 {
		return
	}
	h.logger.Warn("webhook sources accept unsigned requests (verify none): anyone who can reach them can store events; use a signature scheme, or allow_ips, on a public listener",
		zap.Strings("paths", paths))
}

// warnIfReplayOutlivesDedup warns once per source whose signed deliveries
// stay valid longer than dedup, the app's dedup window: the signature's
// timestamp check and the dedup of the delivery id together refuse a
// replay, so a captured delivery replayed after the window but inside the
// tolerance would be stored again. Mailgun (8h, it resends the original
// signature) does so with the default 6h window.
func (h *Handler) warnIfReplayOutlivesDedup(dedup time.Duration) {
	for _, s := range h.Sources {
		if s.Verify == nil || s.Verify.Scheme == "none" {
			continue
		}
		tol := time.Duration(s.Tolerance)
		if tol == 0 {
			tol = verify.SchemeTolerance(s.Verify.Scheme)
		}
		if tol > dedup {
			h.logger.Warn("a signed delivery stays valid longer than the dedup window: a captured delivery replayed after the window would be stored again; set dedup_window in the webhooks global option to at least the tolerance",
				zap.String("source", s.Name), zap.Duration("tolerance", tol), zap.Duration("dedup_window", dedup))
		}
	}
}

// provision does the part of Provision that needs no Caddy context.
func (h *Handler) provision() error {
	if err := checkPrefix(h.Prefix); err != nil {
		return err
	}
	h.prefix = strings.TrimSuffix(orDefault(h.Prefix, defaultPrefix), "/")
	h.trapWarn = &rate.Sometimes{Interval: prefixTrapEvery}
	if err := h.checkBounds(); err != nil {
		return err
	}
	if err := h.acceptVersions(); err != nil {
		return err
	}
	h.status = orDefault(h.Status, defaultStatus)
	if err := checkStatus(h.status); err != nil {
		return err
	}
	h.publishTimeout = time.Duration(orDefault(h.PublishTimeout, caddy.Duration(defaultPublishTimeout)))
	h.deadlines = new(deadlineSlots)
	h.retryAfter = strconv.Itoa(int((time.Duration(orDefault(h.RetryAfter, caddy.Duration(defaultRetryAfter))) + time.Second - 1) / time.Second))
	if err := checkHasSources(len(h.Sources)); err != nil {
		return err
	}
	deprecated, err := h.retireAndDeprecate()
	if err != nil {
		return err
	}
	if h.RatePerIP != nil {
		if h.perIP, err = h.limiters.ipTableFor(h.prefix, h.RatePerIP); err != nil {
			return fmt.Errorf("rate_per_ip: %w", err)
		}
	}
	return h.provisionSources(deprecated)
}

// provisionSources makes each Source ready to serve.
func (h *Handler) provisionSources(deprecated map[string]*deprecation) error {
	h.sources = make(map[string]*source, len(h.Sources))
	repl := caddy.NewReplacer()
	for _, s := range h.Sources {
		if err := checkSourceName(s.Name); err != nil {
			return err
		}
		if err := checkVerify(s.Name, s.Verify); err != nil {
			return err
		}
		if _, dup := h.sources[s.Name]; dup {
			return errSourceTwice(s.Name)
		}
		rs, err := s.provision(repl)
		if err == nil {
			err = h.sourceVersions(s, rs, deprecated)
		}
		if err == nil {
			err = h.sourceLimits(s, rs)
		}
		if err == nil {
			err = h.sourceBounds(s, rs)
		}
		if err != nil {
			return fmt.Errorf("source %q: %w", s.Name, err)
		}
		h.sources[s.Name] = rs
	}
	return nil
}

// Cleanup gives back the rate limiters this handler shares with other
// configs; the last config to let go of a limiter drops its buckets.
func (h *Handler) Cleanup() error {
	return h.limiters.release()
}

// Validate checks the handler against its app.
func (h *Handler) Validate() error {
	if h.app == nil {
		return nil
	}
	limit := h.app.maxEventSize
	for _, s := range h.sources {
		if s.maxBody > limit {
			return fmt.Errorf("source %q: max_body %d is above the store's max_event_size %d; raise max_event_size in the webhooks global option", s.name, s.maxBody, limit)
		}
	}
	return nil
}

// request is one delivery on its way through the phases. It says once what
// the path named, so every answer and log line carries the same version and
// source.
type request struct {
	w http.ResponseWriter
	r *http.Request
	// version and src are what the path routes to; src is nil for an
	// unknown path.
	version string
	src     *source
	// now is when the request arrived: rate limits and signed timestamps
	// are checked against it, and it is the event's received time.
	now time.Time
	// gz is set by admit when the body is gzip.
	gz bool
	// body is the body as verified and stored, set by read.
	body []byte
	// res is what the verifier learned, set by read.
	res verify.Result
	// bufs are the pooled buffers holding the body, given back by release.
	bufs [2]*bytes.Buffer
	// sc is the pooled storage of the verification, the event and the
	// answer, set by read and given back by release.
	sc *scratch
	// span is the handler's span of a traced request, else nil; outcome
	// is what countRequest counted, for the span.
	span    oteltrace.Span
	outcome string
}

// release gives the request's buffers back to the pool.
func (q *request) release() {
	putBody(q.bufs[0])
	putBody(q.bufs[1])
	putScratch(q.sc)
}

// ServeHTTP handles one delivery in three phases, in the documented order
// of checks: admit decides from the path, the headers and the client
// address alone, so an unwanted request costs no body bytes (and a client
// sending "Expect: 100-continue" sends none); read takes the body,
// decompresses and verifies it; store answers a handshake or stores the
// event and answers once the store has acknowledged it.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	q := request{w: w, r: r, now: time.Now()}
	if len(r.TransferEncoding) > 0 {
		// net/http drops a Content-Length sent with Transfer-Encoding and
		// frames by the latter, so whatever a front proxy framing by
		// Content-Length took for this body would be read here as the
		// next request. Closing the connection after the answer leaves
		// nothing to smuggle in (RFC 9112 section 6.1).
		w.Header().Set("Connection", "close")
	}
	q.version, q.src = h.route(routePath(r))
	if traced(r) {
		q.span = startSpan(&q)
		defer endSpan(&q)
	}
	if p, reason := h.admit(&q); p != nil {
		return h.rejectUnread(&q, p, reason)
	}
	defer q.release()
	if p, reason := h.read(&q); p != nil {
		return h.reject(&q, p, reason)
	}
	return h.store(&q)
}

// routePath is the path to route: the raw (escaped) form when there is
// one, since no valid segment needs an escape and %2F and friends must
// fail.
func routePath(r *http.Request) string {
	if r.URL.RawPath != "" {
		return r.URL.RawPath
	}
	return r.URL.Path
}

// admit runs the checks that need no body, in the documented order. A
// non-nil problem is the answer; the headers it needs are set.
func (h *Handler) admit(q *request) (*problem, error) {
	src, r := q.src, q.r
	var client netip.Addr
	perIP := h.perIP
	if src != nil {
		perIP = src.perIP
	}
	if perIP != nil || (src != nil && src.allow != nil) {
		client = clientAddr(r)
	}
	// Every request costs its client a token, unknown paths included, so
	// probing for endpoints is as limited as posting to them.
	if perIP != nil {
		if wait, ok := perIP.take(client, q.now); !ok {
			q.w.Header().Set("Retry-After", retryAfter(wait))
			return problemRateIP, errOverPerIP
		}
	}
	if src == nil {
		h.notePrefixTrap(routePath(r))
		return problemNotFound, nil
	}
	hdr := q.w.Header()
	for k, v := range src.deprecated[q.version] {
		hdr[k] = v
	}
	if h.retired[q.version] {
		if src.goneLink != nil {
			hdr["Link"] = src.goneLink
		}
		return src.gone, nil
	}
	if src.allow != nil && !allowed(src.allow, client) {
		return problemForbidden, errNotAllowed
	}
	if r.Method != http.MethodPost && (r.Method != http.MethodGet || !src.getHandshake) {
		hdr.Set("Allow", src.allowMethods())
		return problemMethod, nil
	}
	if src.bucket != nil {
		if wait, ok := src.bucket.take(q.now); !ok {
			hdr.Set("Retry-After", retryAfter(wait))
			return problemRateSource, errOverRate
		}
	}
	if !storeReady(h.events) {
		return problemNotReady, nil
	}
	if err := src.checkHeaders(r.Header); err != nil {
		return problemHeaders, err
	}
	if r.ContentLength > src.maxBody {
		return problemTooLarge, fmt.Errorf("Content-Length %d is above max_body %d", r.ContentLength, src.maxBody)
	}
	gz, ok := src.contentEncoding(r.Header)
	if !ok {
		hdr.Set("Accept-Encoding", src.acceptEncoding)
		return problemEncoding, fmt.Errorf("Content-Encoding %q", r.Header.Values("Content-Encoding"))
	}
	q.gz = gz
	return nil, nil
}

// liftMargin is how long a handler may run after its body was read
// besides the store's wait (publish_timeout): verifying, decompressing,
// answering. A body deadline further away than both is not lifted.
const liftMargin = time.Second

// read reads the body (at most max_body), decompresses a gzip body within
// its caps and verifies the signature over the result. A GET handshake has
// no body to read.
func (h *Handler) read(q *request) (*problem, error) {
	src := q.src
	q.sc = getScratch()
	if q.r.Method == http.MethodGet {
		// A GET handshake: the verifier reads the query, not a body.
		return h.verify(q)
	}
	buf := bodyPool.Get().(*bytes.Buffer)
	q.bufs[0] = buf
	// The body must be in by then; the server's own timeouts, if
	// shorter, still apply (Caddy lets a handler tighten them only).
	deadline := q.now.Add(src.bodyTimeout)
	timed := setReadDeadline(q.w, deadline)
	err := readBody(buf, &q.sc.body, q.w, q.r, src.maxBody)
	if timed && err == nil && time.Until(deadline) <= h.publishTimeout+liftMargin {
		// Lift it, so that a store slower than the rest of the
		// budget cannot fail the connection's next read (net/http's
		// background read while the handler waits). A deadline the
		// handler cannot outlive stays: net/http sets the connection's
		// own before it reads the next request.
		setReadDeadline(q.w, time.Time{})
	}
	if err != nil {
		var tooBig *http.MaxBytesError
		var netErr net.Error
		switch {
		case errors.As(err, &tooBig):
			return problemTooLarge, fmt.Errorf("body above max_body %d", src.maxBody)
		case errors.As(err, &netErr) && netErr.Timeout():
			q.w.Header().Set("Connection", "close")
			return problemTimeout, err
		}
		return problemBadBody, err
	}
	q.body = buf.Bytes()
	if q.gz {
		out := bodyPool.Get().(*bytes.Buffer)
		q.bufs[1] = out
		if err := src.gunzip(out, q.body); err != nil {
			if errors.Is(err, errInflateLimit) {
				return problemTooLarge, err
			}
			return problemBadBody, err
		}
		q.body = out.Bytes()
	}
	return h.verify(q)
}

// verify checks the signature of the request as read. A GET passes only
// as a handshake.
func (h *Handler) verify(q *request) (*problem, error) {
	src, vr := q.src, &q.sc.vreq
	*vr = verify.Request{
		Method: q.r.Method,
		URL:    src.requestURL(q.r, &q.sc.url),
		Header: q.r.Header,
		Body:   q.body,
		Now:    q.now,
	}
	res, err := src.verifier.Verify(vr)
	if err != nil {
		countVerifyFailure(src.name, err)
		return problemSignature, err
	}
	if q.r.Method == http.MethodGet && res.Handshake == nil {
		q.w.Header().Set("Allow", src.allowMethods())
		return problemMethod, errGetNoHandshake
	}
	q.res = res
	return nil, nil
}

// store answers a provider's handshake, or stores the event and answers
// once the store has acknowledged it (503 + Retry-After when it did not).
func (h *Handler) store(q *request) error {
	src := q.src
	if q.res.Handshake != nil {
		return h.answerHandshake(q, q.res.Handshake)
	}
	msg := &q.sc.ev.msg
	id := h.message(&q.sc.ev, q.r, q.version, src, q.res, q.body, q.now, q.gz)
	if q.span != nil {
		tagTrace(q.span, msg, id)
	}
	start := time.Now()
	ack, err := h.events.publish(h.deadlines.context(start, h.publishTimeout), msg)
	src.storeSeconds.Observe(time.Since(start).Seconds())
	if errors.Is(err, errStreamFull) {
		// Logged by the engine once a minute, with what to do.
		return h.reject(q, problemStoreQuiet, err)
	}
	if err != nil {
		return h.reject(q, problemStore, err)
	}
	src.countStored(q, ack.Duplicate)
	h.logStored(q, id, msg, ack.Duplicate)
	return h.accept(q, id, ack)
}

// scratch is the storage an accepted request verifies, builds its event
// and its answer in, recycled across requests: publish copies the message
// into the NATS connection's buffer before it returns (as for the body's
// buffer), and the writer copies the answer, so all of it is free again
// once the handler has answered.
type scratch struct {
	vreq   verify.Request
	url    url.URL
	ev     eventMsg
	answer []byte
	// body caps the read of a body of known length (readBody).
	body io.LimitedReader
}

// scratchPool recycles scratch.
var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// maxPooledHeaders keeps the header map of a request with very many
// fields from staying in the pool at that size.
const maxPooledHeaders = 64

func getScratch() *scratch { return scratchPool.Get().(*scratch) }

// putScratch clears sc of the request's data and gives it back.
func putScratch(sc *scratch) {
	if sc == nil {
		return
	}
	sc.vreq, sc.url = verify.Request{}, url.URL{}
	sc.ev.reset(maxPooledHeaders)
	sc.answer = sc.answer[:0]
	scratchPool.Put(sc)
}

// deadlineSlots hands out the contexts that bound a publish to
// publish_timeout. Requests arriving within one slot share a context,
// so that a request makes no context and no timer of its own; a slot
// lasts maxSlot, or a 64th of the timeout when that is shorter. Its
// context ends publish_timeout after the slot's first request: at most
// publish_timeout after any request of the slot arrived, and at most one
// slot earlier. The request's own context is not a parent: the store's
// acknowledgement is awaited even when the provider hangs up (as
// context.WithoutCancel did), and no publisher reads its values.
type deadlineSlots struct {
	cur atomic.Pointer[deadlineSlot]
}

// maxSlot is the longest a deadline slot lasts.
const maxSlot = 10 * time.Millisecond

// deadlineSlot is one slot's shared context.
type deadlineSlot struct {
	start time.Time
	ctx   context.Context
	// cancel is never called early (requests share ctx); the timer
	// releases the context at its deadline.
	cancel context.CancelFunc
}

// context returns the shared context of the slot now falls in, for a
// publish starting now (not when the request arrived: its body may have
// taken most of body_timeout) and bounded by timeout.
func (d *deadlineSlots) context(now time.Time, timeout time.Duration) context.Context {
	width := min(maxSlot, timeout/64)
	cur := d.cur.Load()
	if cur != nil {
		if age := now.Sub(cur.start); age >= 0 && age < width {
			return cur.ctx
		}
	}
	next := &deadlineSlot{start: now}
	next.ctx, next.cancel = context.WithDeadline(context.Background(), now.Add(timeout))
	// A concurrent request may have started a slot too: either context
	// is as good, and each ends by itself.
	d.cur.CompareAndSwap(cur, next)
	return next.ctx
}

// route splits <prefix>/<version>/<source>. It returns a nil source for any
// other path, so nothing from an unknown path reaches a subject or a log.
// A retired version routes (to be answered 410); a version the source does
// not take does not.
func (h *Handler) route(path string) (version string, src *source) {
	rest, ok := strings.CutPrefix(path, h.prefix)
	if !ok || len(rest) < 4 || rest[0] != '/' {
		return "", nil
	}
	version, name, ok := strings.Cut(rest[1:], "/")
	if !ok {
		return "", nil
	}
	src = h.sources[name]
	switch {
	case src == nil:
		return "", nil
	case h.retired[version]:
		return version, src
	case !h.versions[version], src.versions != nil && !src.versions[version]:
		return "", nil
	}
	return version, src
}

// publisher stores one event and returns once the store has acknowledged
// it. It is the one seam between the request path and JetStream, so that
// batching several requests into one fsync (group commit) can be added
// behind it without touching the handler.
type publisher interface {
	publish(ctx context.Context, msg *nats.Msg) (*jetstream.PubAck, error)
}

// readier is a publisher that may not be ready to store yet: the webhooks
// app, which starts in random order with the HTTP server.
type readier interface {
	// waitReady reports whether the store is ready, waiting at most d.
	waitReady(d time.Duration) bool
}

// storeReady reports whether p can take events, waiting up to readyWait
// for one that is starting. A publisher that has no notion of starting is
// always ready.
func storeReady(p publisher) bool {
	if r, ok := p.(readier); ok {
		return r.waitReady(readyWait)
	}
	return true
}

// Interface guards.
var (
	_ publisher                   = (*App)(nil)
	_ publisher                   = (*engine)(nil)
	_ readier                     = (*App)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
)
