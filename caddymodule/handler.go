package caddymodule

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/hookgate/hookgate/event"
	"github.com/hookgate/hookgate/verify"
)

func init() {
	caddy.RegisterModule(new(Handler))
}

// Defaults of the webhook_ingest handler.
const (
	defaultPrefix         = "/webhooks"
	defaultVersion        = "v1"
	defaultMaxBody        = 1 << 20
	defaultStatus         = http.StatusOK
	defaultPublishTimeout = 5 * time.Second
	defaultRetryAfter     = 5 * time.Second
	// readyWait is how long a request waits for the app to finish starting
	// before it gets a 503: apps start in random order.
	readyWait = 2 * time.Second
	// maxSegment bounds a version or source name in a path.
	maxSegment = 64
	// maxDeliveryID bounds a provider delivery id used as is in an event
	// id; longer ones are hashed.
	maxDeliveryID = 128
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

	app            *App
	prefix         string
	versions       map[string]bool
	sources        map[string]*source
	status         int
	publishTimeout time.Duration
	retryAfter     string
	logger         *zap.Logger
}

// Source configures one provider endpoint.
type Source struct {
	// Name is the path segment, [a-z0-9_-]{1,64}.
	Name string `json:"name"`

	// Verify names the signature scheme and its secrets. Required: a
	// source that accepts unsigned requests says so with scheme "none".
	Verify *VerifyConfig `json:"verify,omitempty"`

	// Tolerance bounds the age of signed timestamps. Default: 5m.
	Tolerance caddy.Duration `json:"tolerance,omitempty"`

	// PublicURL is the URL the provider posts to, for schemes that sign
	// the URL (twilio, square, hubspot) when Caddy sits behind a proxy
	// and does not see it. Default: rebuilt from the request.
	PublicURL string `json:"public_url,omitempty"`

	// MaxBody is the largest accepted body in bytes. Default: 1 MiB.
	MaxBody int64 `json:"max_body,omitempty"`

	// IDHeader names a request header carrying the sender's delivery id,
	// for sources whose scheme does not name one.
	IDHeader string `json:"id_header,omitempty"`

	// TypeHeader names a request header carrying the event type, for
	// sources whose scheme does not name one.
	TypeHeader string `json:"type_header,omitempty"`

	// Dedup "body" makes identical bodies duplicates of each other when
	// the sender gives no delivery id. Off by default: two equal bodies
	// may well be two events.
	Dedup string `json:"dedup,omitempty"`
}

// VerifyConfig selects a verify scheme. Secrets may be placeholders such as
// {env.STRIPE_SECRET} or {file./run/secrets/stripe}, resolved at load time so
// they never appear in Caddy's saved config.
type VerifyConfig struct {
	// Scheme is a scheme name known to package verify ("github", "stripe",
	// "standard-webhooks", ..., "none").
	Scheme string `json:"scheme"`
	// Secrets are the active secrets, newest first.
	Secrets []string `json:"secrets,omitempty"`
	// Options are scheme-specific settings.
	Options map[string]string `json:"options,omitempty"`
}

// source is a Source ready to serve.
type source struct {
	name       string
	verifier   verify.Verifier
	scheme     string
	publicURL  *url.URL
	maxBody    int64
	idHeader   string
	typeHeader string
	dedupBody  bool
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
	return h.provision()
}

// provision does the part of Provision that needs no Caddy context.
func (h *Handler) provision() error {
	h.prefix = strings.TrimSuffix(orDefault(h.Prefix, defaultPrefix), "/")
	if h.prefix != "" && !strings.HasPrefix(h.prefix, "/") {
		return fmt.Errorf("prefix %q must start with /", h.Prefix)
	}
	h.versions = map[string]bool{}
	versions := h.Versions
	if len(versions) == 0 {
		versions = []string{defaultVersion}
	}
	for _, v := range versions {
		if !validSegment(v) {
			return fmt.Errorf("version %q: want 1-%d characters of [a-z0-9_-]", v, maxSegment)
		}
		h.versions[v] = true
	}
	h.status = orDefault(h.Status, defaultStatus)
	if h.status < 200 || h.status > 299 {
		return fmt.Errorf("status %d: want a 2xx code (providers treat anything else as failure)", h.status)
	}
	h.publishTimeout = time.Duration(orDefault(h.PublishTimeout, caddy.Duration(defaultPublishTimeout)))
	h.retryAfter = strconv.Itoa(int((time.Duration(orDefault(h.RetryAfter, caddy.Duration(defaultRetryAfter))) + time.Second - 1) / time.Second))
	if len(h.Sources) == 0 {
		return errors.New("no source: add at least one 'source <name> { verify ... }'")
	}
	h.sources = make(map[string]*source, len(h.Sources))
	repl := caddy.NewReplacer()
	for _, s := range h.Sources {
		if _, dup := h.sources[s.Name]; dup {
			return fmt.Errorf("source %q is defined twice", s.Name)
		}
		rs, err := s.provision(repl)
		if err != nil {
			return fmt.Errorf("source %q: %w", s.Name, err)
		}
		h.sources[s.Name] = rs
	}
	return nil
}

func (s *Source) provision(repl *caddy.Replacer) (*source, error) {
	if !validSegment(s.Name) {
		return nil, fmt.Errorf("name: want 1-%d characters of [a-z0-9_-]", maxSegment)
	}
	if s.Verify == nil || s.Verify.Scheme == "" {
		return nil, errors.New("no verify: add 'verify <scheme> <secret>...', or 'verify none' to accept unsigned requests")
	}
	secrets := make([]string, 0, len(s.Verify.Secrets))
	for i, sec := range s.Verify.Secrets {
		v, err := repl.ReplaceOrErr(sec, true, true)
		if err != nil {
			return nil, fmt.Errorf("verify: secret %d: %w", i+1, err)
		}
		if v == "" {
			return nil, fmt.Errorf("verify: secret %d is empty (is its environment variable or file set?)", i+1)
		}
		secrets = append(secrets, v)
	}
	v, err := verify.New(verify.Config{
		Scheme:    s.Verify.Scheme,
		Secrets:   secrets,
		Tolerance: time.Duration(s.Tolerance),
		Options:   s.Verify.Options,
	})
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	rs := &source{
		name:       s.Name,
		verifier:   v,
		scheme:     s.Verify.Scheme,
		maxBody:    orDefault(s.MaxBody, defaultMaxBody),
		idHeader:   s.IDHeader,
		typeHeader: s.TypeHeader,
	}
	if rs.maxBody < 0 {
		return nil, fmt.Errorf("max_body %d: must be positive", s.MaxBody)
	}
	switch s.Dedup {
	case "":
	case "body":
		rs.dedupBody = true
	default:
		return nil, fmt.Errorf("dedup %q: the only mode is 'body'", s.Dedup)
	}
	if s.PublicURL != "" {
		u, err := url.Parse(s.PublicURL)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("public_url %q: want an absolute URL such as https://hooks.example.com/webhooks/v1/%s", s.PublicURL, s.Name)
		}
		rs.publicURL = u
	}
	return rs, nil
}

// Validate checks the handler against its app.
func (h *Handler) Validate() error {
	if h.app == nil {
		return nil
	}
	limit := orDefault(h.app.MaxEventSize, defaultMaxEventSize)
	for _, s := range h.sources {
		if s.maxBody > limit {
			return fmt.Errorf("source %q: max_body %d is above the store's max_event_size %d; raise max_event_size in the webhooks global option", s.name, s.maxBody, limit)
		}
	}
	return nil
}

// ServeHTTP handles one delivery.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	path := r.URL.Path
	if r.URL.RawPath != "" {
		// Escapes in the path (%2F and friends): no valid segment needs
		// one, so route the raw form and let it fail.
		path = r.URL.RawPath
	}
	version, src := h.route(path)
	if src == nil {
		return h.reject(w, r, problemNotFound, nil, "", "")
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return h.reject(w, r, problemMethod, nil, version, src.name)
	}
	if !h.app.waitReady(readyWait) {
		return h.reject(w, r, problemNotReady, nil, version, src.name)
	}
	if r.ContentLength > src.maxBody {
		return h.reject(w, r, problemTooLarge, fmt.Errorf("Content-Length %d is above max_body %d", r.ContentLength, src.maxBody), version, src.name)
	}
	if ce := r.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return h.reject(w, r, problemEncoding, fmt.Errorf("Content-Encoding %q", ce), version, src.name)
	}

	buf := bodyPool.Get().(*bytes.Buffer)
	defer putBody(buf)
	if err := readBody(buf, w, r, src.maxBody); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return h.reject(w, r, problemTooLarge, fmt.Errorf("body above max_body %d", src.maxBody), version, src.name)
		}
		return h.reject(w, r, problemBadBody, err, version, src.name)
	}
	body := buf.Bytes()

	receivedAt := time.Now()
	res, err := src.verifier.Verify(&verify.Request{
		Method: r.Method,
		URL:    src.requestURL(r),
		Header: r.Header,
		Body:   body,
		Now:    receivedAt,
	})
	if err != nil {
		return h.reject(w, r, problemSignature, err, version, src.name)
	}

	msg, id := h.message(r, version, src, res, body, receivedAt)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), h.publishTimeout)
	ack, err := h.app.publish(ctx, msg)
	cancel()
	if err != nil {
		return h.reject(w, r, problemStore, err, version, src.name)
	}
	return h.accept(w, id, ack)
}

// route splits <prefix>/<version>/<source>. It returns a nil source for any
// other path, so nothing from an unknown path reaches a subject or a log.
func (h *Handler) route(path string) (version string, src *source) {
	rest, ok := strings.CutPrefix(path, h.prefix)
	if !ok || len(rest) < 4 || rest[0] != '/' {
		return "", nil
	}
	version, name, ok := strings.Cut(rest[1:], "/")
	if !ok || !h.versions[version] {
		return "", nil
	}
	return version, h.sources[name]
}

// requestURL is the URL the provider signed, for the schemes that sign it.
func (s *source) requestURL(r *http.Request) *url.URL {
	if s.publicURL != nil {
		u := *s.publicURL
		if u.RawQuery == "" {
			u.RawQuery = r.URL.RawQuery
		}
		return &u
	}
	u := *r.URL
	u.Host = r.Host
	u.Scheme = "http"
	if r.TLS != nil {
		u.Scheme = "https"
	}
	return &u
}

// message builds the stored event and returns it with its id.
func (h *Handler) message(r *http.Request, version string, src *source, res verify.Result, body []byte, receivedAt time.Time) (*nats.Msg, string) {
	deliveryID := res.ID
	if deliveryID == "" && src.idHeader != "" {
		deliveryID = r.Header.Get(src.idHeader)
	}
	var id string
	switch {
	case deliveryID != "":
		id = eventID(src.name, deliveryID)
	case src.dedupBody:
		sum := sha256.Sum256(body)
		id = src.name + ":body:" + hex.EncodeToString(sum[:16])
	default:
		id = src.name + ":" + nuid.Next()
	}
	typ := res.Type
	if typ == "" && src.typeHeader != "" {
		typ = r.Header.Get(src.typeHeader)
	}
	hdr := make(nats.Header, len(r.Header)+8)
	for k, v := range r.Header {
		if keepHeader(k) {
			hdr[k] = v
		}
	}
	hdr[event.HeaderMsgID] = []string{id}
	hdr[event.HeaderID] = []string{id}
	hdr[event.HeaderSource] = []string{src.name}
	hdr[event.HeaderVersion] = []string{version}
	if typ != "" {
		hdr[event.HeaderType] = []string{typ}
	}
	if deliveryID != "" {
		hdr[event.HeaderDeliveryID] = []string{deliveryID}
	}
	hdr[event.HeaderReceivedAt] = []string{receivedAt.UTC().Format(time.RFC3339Nano)}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		hdr[event.HeaderContentType] = []string{ct}
	}
	hdr[event.HeaderVerified] = []string{src.scheme}
	return &nats.Msg{Subject: event.Subject(version, src.name, typ), Header: hdr, Data: body}, id
}

// eventID makes "<source>:<delivery id>", hashing ids that are too long or
// not printable ASCII so the id stays a safe header value and dedup key.
func eventID(source, deliveryID string) string {
	ok := len(deliveryID) <= maxDeliveryID
	for i := 0; ok && i < len(deliveryID); i++ {
		ok = deliveryID[i] > ' ' && deliveryID[i] < 0x7f
	}
	if ok {
		return source + ":" + deliveryID
	}
	sum := sha256.Sum256([]byte(deliveryID))
	return source + ":sha256:" + hex.EncodeToString(sum[:16])
}

// dropHeaders are request headers never stored: hop-by-hop headers,
// credentials, and framing that no longer applies to the stored body.
var dropHeaders = map[string]bool{
	"Authorization":       true,
	"Proxy-Authorization": true,
	"Cookie":              true,
	"Connection":          true,
	"Keep-Alive":          true,
	"Proxy-Connection":    true,
	"Te":                  true,
	"Trailer":             true,
	"Transfer-Encoding":   true,
	"Upgrade":             true,
	"Content-Length":      true,
	"Expect":              true,
}

func keepHeader(name string) bool {
	return !dropHeaders[name] && !event.IsReserved(name)
}

// accept writes the success answer.
func (h *Handler) accept(w http.ResponseWriter, id string, ack *jetstream.PubAck) error {
	b, err := json.Marshal(acceptBody{ID: id, Duplicate: ack.Duplicate})
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(h.status)
	_, err = w.Write(b)
	return err
}

type acceptBody struct {
	ID        string `json:"id"`
	Duplicate bool   `json:"duplicate"`
}

// reject answers with a problem and logs the real reason for the operator.
// The provider sees only the problem's fixed text.
func (h *Handler) reject(w http.ResponseWriter, r *http.Request, p *problem, reason error, version, source string) error {
	if ce := h.logger.Check(p.level, "webhook rejected"); ce != nil {
		fields := []zap.Field{
			zap.Int("status", p.status),
			zap.String("problem", p.slug),
			zap.String("remote_ip", clientIP(r)),
		}
		if source != "" {
			fields = append(fields, zap.String("source", source), zap.String("version", version))
		}
		if reason != nil {
			fields = append(fields, zap.String("reason", reason.Error()))
		}
		ce.Write(fields...)
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "application/problem+json")
	if p.status == http.StatusServiceUnavailable {
		hdr.Set("Retry-After", h.retryAfter)
	}
	w.WriteHeader(p.status)
	_, err := w.Write(p.body)
	return err
}

func clientIP(r *http.Request) string {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok {
		return ip
	}
	return r.RemoteAddr
}

// problem is one kind of rejection, rendered once as an RFC 9457 body.
type problem struct {
	status int
	slug   string
	level  zapcore.Level
	body   []byte
}

func newProblem(status int, slug, detail string, level zapcore.Level) *problem {
	b, _ := json.Marshal(map[string]any{
		"type":   "urn:hookgate:problem:" + slug,
		"title":  http.StatusText(status),
		"status": status,
		"detail": detail,
	})
	return &problem{status: status, slug: slug, level: level, body: b}
}

var (
	problemNotFound  = newProblem(http.StatusNotFound, "unknown-endpoint", "No webhook endpoint at this path.", zapcore.DebugLevel)
	problemMethod    = newProblem(http.StatusMethodNotAllowed, "method-not-allowed", "Webhooks are delivered with POST.", zapcore.DebugLevel)
	problemTooLarge  = newProblem(http.StatusRequestEntityTooLarge, "body-too-large", "The request body is larger than this endpoint accepts.", zapcore.InfoLevel)
	problemEncoding  = newProblem(http.StatusUnsupportedMediaType, "unsupported-encoding", "Content-Encoding is not accepted by this endpoint.", zapcore.InfoLevel)
	problemBadBody   = newProblem(http.StatusBadRequest, "unreadable-body", "The request body could not be read.", zapcore.InfoLevel)
	problemSignature = newProblem(http.StatusUnauthorized, "invalid-signature", "The request could not be authenticated.", zapcore.InfoLevel)
	problemNotReady  = newProblem(http.StatusServiceUnavailable, "not-ready", "The event store is starting; retry later.", zapcore.WarnLevel)
	problemStore     = newProblem(http.StatusServiceUnavailable, "store-unavailable", "The event could not be stored; retry later.", zapcore.ErrorLevel)
)

// bodyPool recycles body buffers: the stored message is copied into the
// NATS connection's buffer before publish returns, so a buffer is free again
// once the handler answers.
var bodyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBody keeps rare huge bodies from pinning memory in the pool.
const maxPooledBody = 256 << 10

func putBody(b *bytes.Buffer) {
	if b.Cap() > maxPooledBody {
		return
	}
	b.Reset()
	bodyPool.Put(b)
}

func readBody(buf *bytes.Buffer, w http.ResponseWriter, r *http.Request, limit int64) error {
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength))
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit))
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// validSegment reports whether s is a safe path segment: [a-z0-9_-]{1,64}.
// Only such segments become subject tokens, metric labels or log fields.
func validSegment(s string) bool {
	if len(s) == 0 || len(s) > maxSegment {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// publisher stores one event and returns once the store has acknowledged
// it. It is the one seam between the request path and JetStream, so that
// batching several requests into one fsync (group commit) can be added
// behind it without touching the handler.
type publisher interface {
	publish(ctx context.Context, msg *nats.Msg) (*jetstream.PubAck, error)
}

// Interface guards.
var (
	_ publisher                   = (*App)(nil)
	_ publisher                   = (*engine)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
)
