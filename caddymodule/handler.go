package caddymodule

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/time/rate"

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
	// defaultMaxRatio bounds gzip expansion: JSON compresses 5-20 times,
	// a bomb a thousand times and more.
	defaultMaxRatio = 100
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

	// RatePerIP limits each client IP (as Caddy resolves it, honouring the
	// server's trusted_proxies; an IPv6 client is its /64) on every path
	// of this handler, unknown ones included, except the sources that set
	// their own. Checked before the body is read. Default: no limit.
	RatePerIP *RateLimit `json:"rate_per_ip,omitempty"`

	app            *App
	prefix         string
	versions       map[string]bool
	retired        map[string]bool
	sources        map[string]*source
	status         int
	publishTimeout time.Duration
	retryAfter     string
	perIP          *ipTable
	limiters       limiterSet
	logger         *zap.Logger
}

// Deprecation announces that a version is going away.
type Deprecation struct {
	// Version is the deprecated version, one of the handler's Versions.
	Version string `json:"version"`

	// Sunset is the date (2027-06-30, midnight UTC) or RFC 3339 time after
	// which the version may stop working, sent as the Sunset header.
	Sunset string `json:"sunset"`

	// Since is when the version is deprecated, sent as the Deprecation
	// header ("@<unix seconds>"); a future date announces it. Default: the
	// Sunset date.
	Since string `json:"since,omitempty"`

	// Successor is the version senders should move to, linked with
	// rel="successor-version". Default: the last of the handler's
	// versions that the source accepts and that is not deprecated.
	Successor string `json:"successor,omitempty"`
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

	// Versions restricts the source to some of the handler's versions; a
	// POST to another gets 404. Default: all of them.
	Versions []string `json:"versions,omitempty"`

	// Rate is the source's budget, shared by all its senders, checked
	// before the body is read (429 + Retry-After past it). Default: none.
	Rate *RateLimit `json:"rate,omitempty"`

	// RatePerIP replaces the handler's rate_per_ip for this source, e.g.
	// a larger budget for a provider that sends from a few addresses.
	RatePerIP *RateLimit `json:"rate_per_ip,omitempty"`

	// AllowIPs, when set, admits only clients in these ranges (addresses,
	// CIDR prefixes, or "private_ranges"); others get 403 before the body
	// is read. Use it with the ranges a provider publishes (GitHub's
	// "hooks" in its /meta API), as a defence in depth beside signatures.
	AllowIPs []string `json:"allow_ips,omitempty"`

	// AcceptEncoding lists the Content-Encodings accepted besides
	// identity; the only one is "gzip". Others get 415. A gzip body is
	// decompressed (at most max_body bytes out, at most MaxRatio times
	// its compressed size) before it is verified and stored: the
	// signature must cover the decompressed bytes, and the stored event
	// is the decompressed body without its Content-Encoding.
	AcceptEncoding []string `json:"accept_encoding,omitempty"`

	// MaxRatio bounds how many times larger than its compressed size a
	// gzip body may decompress; past it, 413. Default: 100.
	MaxRatio int `json:"max_ratio,omitempty"`
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
	name string
	// storeSeconds is the source's series of the store latency metric.
	storeSeconds prometheus.Observer
	verifier     verify.Verifier
	scheme       string
	publicURL    *url.URL
	maxBody      int64
	idHeader     string
	typeHeader   string
	dedupBody    bool
	// versions is nil when the source takes all the handler's versions.
	versions map[string]bool
	// deprecated holds the headers announcing each deprecated version.
	deprecated map[string]http.Header
	// gone answers a retired version; goneLink points to the successor.
	gone     *problem
	goneLink []string
	bucket   *rate.Limiter
	perIP    *ipTable
	allow    []netip.Prefix
	gzip     bool
	maxRatio int64
	// acceptEncoding is the Accept-Encoding sent with a 415.
	acceptEncoding string
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
	for _, v := range h.versionList() {
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
	h.retired = map[string]bool{}
	for _, v := range h.Retired {
		switch {
		case !validSegment(v):
			return fmt.Errorf("retire %q: want 1-%d characters of [a-z0-9_-]", v, maxSegment)
		case h.versions[v]:
			return fmt.Errorf("retire %s: %s is also among the versions; a version is either accepted or retired", v, v)
		}
		h.retired[v] = true
	}
	deprecated, err := h.deprecations()
	if err != nil {
		return err
	}
	if h.RatePerIP != nil {
		if h.perIP, err = h.limiters.ipTableFor(h.prefix, h.RatePerIP); err != nil {
			return fmt.Errorf("rate_per_ip: %w", err)
		}
	}
	h.sources = make(map[string]*source, len(h.Sources))
	repl := caddy.NewReplacer()
	for _, s := range h.Sources {
		if _, dup := h.sources[s.Name]; dup {
			return fmt.Errorf("source %q is defined twice", s.Name)
		}
		rs, err := s.provision(repl)
		if err == nil {
			err = h.provisionEdge(s, rs, deprecated)
		}
		if err != nil {
			return fmt.Errorf("source %q: %w", s.Name, err)
		}
		h.sources[s.Name] = rs
	}
	return nil
}

// deprecation is a Deprecation ready to render.
type deprecation struct {
	since, sunset time.Time
	successor     string
}

// deprecations checks the Deprecated list against the versions.
func (h *Handler) deprecations() (map[string]*deprecation, error) {
	out := make(map[string]*deprecation, len(h.Deprecated))
	for _, d := range h.Deprecated {
		if !h.versions[d.Version] {
			return nil, fmt.Errorf("deprecate %s: not among the versions %v", d.Version, h.Versions)
		}
		if out[d.Version] != nil {
			return nil, fmt.Errorf("deprecate %s: given twice", d.Version)
		}
		sunset, err := parseDate(d.Sunset)
		if err != nil {
			return nil, fmt.Errorf("deprecate %s: sunset: %w", d.Version, err)
		}
		since := sunset
		if d.Since != "" {
			if since, err = parseDate(d.Since); err != nil {
				return nil, fmt.Errorf("deprecate %s: since: %w", d.Version, err)
			}
			if since.After(sunset) {
				return nil, fmt.Errorf("deprecate %s: since %s is after the sunset %s", d.Version, d.Since, d.Sunset)
			}
		}
		if d.Successor != "" && (!h.versions[d.Successor] || d.Successor == d.Version) {
			return nil, fmt.Errorf("deprecate %s: successor %q must be another of the versions %v", d.Version, d.Successor, h.Versions)
		}
		out[d.Version] = &deprecation{since: since, sunset: sunset, successor: d.Successor}
	}
	return out, nil
}

// parseDate reads a date (2027-06-30, taken as midnight UTC) or an RFC 3339
// time.
func parseDate(s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: want a date such as 2027-06-30 or an RFC 3339 time", s)
	}
	return t.UTC(), nil
}

// provisionEdge sets up what a source needs from the handler: its
// versions and their headers, its rate limits and its allowlist.
func (h *Handler) provisionEdge(s *Source, rs *source, deprecated map[string]*deprecation) error {
	accepted := h.versionList()
	if len(s.Versions) > 0 {
		rs.versions = make(map[string]bool, len(s.Versions))
		for _, v := range s.Versions {
			if !h.versions[v] {
				return fmt.Errorf("versions: %q is not among the handler's versions %v", v, accepted)
			}
			rs.versions[v] = true
		}
		accepted = s.Versions
	}
	// The successor a sender is pointed to by default: the newest accepted
	// version that is not deprecated.
	latest := ""
	for _, v := range accepted {
		if deprecated[v] == nil {
			latest = v
		}
	}
	link := func(v string) []string {
		if v == "" {
			return nil
		}
		return []string{"<" + h.prefix + "/" + v + "/" + s.Name + `>; rel="successor-version"`}
	}
	for _, v := range accepted {
		d := deprecated[v]
		if d == nil {
			continue
		}
		if rs.deprecated == nil {
			rs.deprecated = map[string]http.Header{}
		}
		hdr := http.Header{
			"Deprecation": {"@" + strconv.FormatInt(d.since.Unix(), 10)},
			"Sunset":      {d.sunset.Format(http.TimeFormat)},
		}
		successor := latest
		if d.successor != "" && (rs.versions == nil || rs.versions[d.successor]) {
			successor = d.successor
		}
		if l := link(successor); l != nil {
			hdr["Link"] = l
		}
		rs.deprecated[v] = hdr
	}
	if len(h.retired) > 0 {
		rs.gone = newProblemWith(http.StatusGone, "version-retired",
			"This API version is retired; post to one of the current versions: "+strings.Join(accepted, ", ")+".",
			zapcore.InfoLevel, map[string]any{"current_versions": accepted})
		rs.goneLink = link(latest)
	}

	scope := h.prefix + "/" + s.Name
	var err error
	if s.Rate != nil {
		if rs.bucket, err = h.limiters.bucketFor(scope, s.Rate); err != nil {
			return fmt.Errorf("rate: %w", err)
		}
	}
	rs.perIP = h.perIP
	if s.RatePerIP != nil {
		if rs.perIP, err = h.limiters.ipTableFor(scope, s.RatePerIP); err != nil {
			return fmt.Errorf("rate_per_ip: %w", err)
		}
	}
	if len(s.AllowIPs) > 0 {
		if rs.allow, err = parseAllowIPs(s.AllowIPs); err != nil {
			return err
		}
	}
	return nil
}

// versionList is the handler's accepted versions in their configured order.
func (h *Handler) versionList() []string {
	if len(h.Versions) == 0 {
		return []string{defaultVersion}
	}
	return h.Versions
}

// Cleanup gives back the rate limiters this handler shares with other
// configs; the last config to let go of a limiter drops its buckets.
func (h *Handler) Cleanup() error {
	return h.limiters.release()
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

		storeSeconds: metrics.storeSeconds.WithLabelValues(s.Name),
	}
	if rs.maxBody < 0 {
		return nil, fmt.Errorf("max_body %d: must be positive", s.MaxBody)
	}
	rs.acceptEncoding = "identity"
	for _, e := range s.AcceptEncoding {
		if e != "gzip" {
			return nil, fmt.Errorf("accept_encoding %q: the only encoding is gzip", e)
		}
		rs.gzip = true
		rs.acceptEncoding = "gzip, identity"
	}
	rs.maxRatio = int64(orDefault(s.MaxRatio, defaultMaxRatio))
	switch {
	case s.MaxRatio < 0:
		return nil, fmt.Errorf("max_ratio %d: must be positive", s.MaxRatio)
	case s.MaxRatio != 0 && !rs.gzip:
		return nil, fmt.Errorf("max_ratio %d: applies to gzip bodies only; add 'accept_encoding gzip'", s.MaxRatio)
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
	limit := h.app.maxEventSize
	for _, s := range h.sources {
		if s.maxBody > limit {
			return fmt.Errorf("source %q: max_body %d is above the store's max_event_size %d; raise max_event_size in the webhooks global option", s.name, s.maxBody, limit)
		}
	}
	return nil
}

// ServeHTTP handles one delivery. Everything up to the body read is
// decided from the path, the headers and the client address alone, so an
// unwanted request costs no body bytes (and a client sending
// "Expect: 100-continue" sends none).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	path := r.URL.Path
	if r.URL.RawPath != "" {
		// Escapes in the path (%2F and friends): no valid segment needs
		// one, so route the raw form and let it fail.
		path = r.URL.RawPath
	}
	version, src := h.route(path)
	now := time.Now()
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
		if wait, ok := perIP.take(client, now); !ok {
			w.Header().Set("Retry-After", retryAfter(wait))
			return h.rejectUnread(w, r, problemRateIP, errOverPerIP, version, src.nameOrEmpty())
		}
	}
	if src == nil {
		return h.rejectUnread(w, r, problemNotFound, nil, "", "")
	}
	hdr := w.Header()
	for k, v := range src.deprecated[version] {
		hdr[k] = v
	}
	if h.retired[version] {
		if src.goneLink != nil {
			hdr["Link"] = src.goneLink
		}
		return h.rejectUnread(w, r, src.gone, nil, version, src.name)
	}
	if src.allow != nil && !allowed(src.allow, client) {
		return h.rejectUnread(w, r, problemForbidden, errNotAllowed, version, src.name)
	}
	if r.Method != http.MethodPost {
		hdr.Set("Allow", http.MethodPost)
		return h.rejectUnread(w, r, problemMethod, nil, version, src.name)
	}
	if src.bucket != nil {
		if wait, ok := take(src.bucket, now); !ok {
			hdr.Set("Retry-After", retryAfter(wait))
			return h.rejectUnread(w, r, problemRateSource, errOverRate, version, src.name)
		}
	}
	if !h.app.waitReady(readyWait) {
		return h.rejectUnread(w, r, problemNotReady, nil, version, src.name)
	}
	if r.ContentLength > src.maxBody {
		return h.rejectUnread(w, r, problemTooLarge, fmt.Errorf("Content-Length %d is above max_body %d", r.ContentLength, src.maxBody), version, src.name)
	}
	gz, ok := src.contentEncoding(r.Header)
	if !ok {
		hdr.Set("Accept-Encoding", src.acceptEncoding)
		return h.rejectUnread(w, r, problemEncoding, fmt.Errorf("Content-Encoding %q", r.Header.Values("Content-Encoding")), version, src.name)
	}

	buf := bodyPool.Get().(*bytes.Buffer)
	defer putBody(buf)
	if err := readBody(buf, w, r, src.maxBody); err != nil {
		var tooBig *http.MaxBytesError
		var netErr net.Error
		switch {
		case errors.As(err, &tooBig):
			return h.reject(w, r, problemTooLarge, fmt.Errorf("body above max_body %d", src.maxBody), version, src.name)
		case errors.As(err, &netErr) && netErr.Timeout():
			hdr.Set("Connection", "close")
			return h.reject(w, r, problemTimeout, err, version, src.name)
		}
		return h.reject(w, r, problemBadBody, err, version, src.name)
	}
	body := buf.Bytes()
	if gz {
		out := bodyPool.Get().(*bytes.Buffer)
		defer putBody(out)
		if err := src.gunzip(out, body); err != nil {
			p := problemBadBody
			if errors.Is(err, errInflateLimit) {
				p = problemTooLarge
			}
			return h.reject(w, r, p, err, version, src.name)
		}
		body = out.Bytes()
	}

	receivedAt := now
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
	if src.scheme == "slack" && res.Type == "url_verification" {
		// Slack checks a Request URL by sending a signed challenge that
		// must be echoed; it is a handshake, not an event to store.
		if challenge, ok := verify.SlackChallenge(body); ok {
			return h.answerChallenge(w, challenge, version, src.name)
		}
	}
	if src.scheme == "discord" && res.Type == "PING" {
		// Discord checks a Webhook Events URL with a signed PING and wants
		// 204 No Content; like Slack's challenge it is not an event.
		h.logHandshake(version, src.name)
		w.WriteHeader(http.StatusNoContent)
		return nil
	}

	msg, id := h.message(r, version, src, res, body, receivedAt, gz)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), h.publishTimeout)
	start := time.Now()
	ack, err := h.app.publish(ctx, msg)
	src.storeSeconds.Observe(time.Since(start).Seconds())
	cancel()
	if err != nil {
		return h.reject(w, r, problemStore, err, version, src.name)
	}
	outcome := outcomeAccepted
	if ack.Duplicate {
		outcome = outcomeDuplicate
	}
	countRequest(src.name, version, outcome)
	return h.accept(w, id, ack)
}

// Reasons logged for rejections that floods produce, made once so that
// turning a flood away allocates nothing for the log.
var (
	errOverPerIP  = errors.New("client over its rate_per_ip; Retry-After says when its next token is due")
	errOverRate   = errors.New("source over its rate; Retry-After says when its next token is due")
	errNotAllowed = errors.New("client address not in the source's allow_ips")
	// errInflateLimit marks a gzip body that decompresses past a limit.
	errInflateLimit = errors.New("decompressed body over its limit")
)

func (s *source) nameOrEmpty() string {
	if s == nil {
		return ""
	}
	return s.name
}

// contentEncoding reports whether the body is gzip, and whether its
// Content-Encoding is one the source accepts at all.
func (s *source) contentEncoding(h http.Header) (gz, ok bool) {
	ce := h["Content-Encoding"]
	switch {
	case len(ce) == 0:
		return false, true
	case len(ce) > 1:
		return false, false
	}
	switch v := strings.TrimSpace(ce[0]); {
	case v == "" || strings.EqualFold(v, "identity"):
		return false, true
	case s.gzip && (strings.EqualFold(v, "gzip") || strings.EqualFold(v, "x-gzip")):
		return true, true
	}
	return false, false
}

// gzipReaders recycles gzip readers and their 32 KiB windows.
var gzipReaders sync.Pool

// gunzip decompresses a gzip body into dst: at most max_body bytes, and at
// most max_ratio times the compressed size, so a small bomb costs little.
func (s *source) gunzip(dst *bytes.Buffer, compressed []byte) error {
	limit := min(s.maxBody, int64(len(compressed))*s.maxRatio)
	in := bytes.NewReader(compressed)
	zr, _ := gzipReaders.Get().(*gzip.Reader)
	var err error
	if zr == nil {
		zr, err = gzip.NewReader(in)
	} else {
		err = zr.Reset(in)
	}
	if err != nil {
		return fmt.Errorf("gzip body of %d bytes: %w", len(compressed), err)
	}
	defer gzipReaders.Put(zr)
	n, err := dst.ReadFrom(io.LimitReader(zr, limit+1))
	if err != nil {
		return fmt.Errorf("gzip body of %d bytes: %w", len(compressed), err)
	}
	if n > limit {
		return fmt.Errorf("gzip body of %d bytes: %w: more than %d bytes (max_body %d, max_ratio %d)", len(compressed), errInflateLimit, limit, s.maxBody, s.maxRatio)
	}
	return nil
}

// logHandshake records that a provider's endpoint check was answered.
func (h *Handler) logHandshake(version, source string) {
	countRequest(source, version, outcomeHandshake)
	if ce := h.logger.Check(zapcore.InfoLevel, "webhook URL verification answered"); ce != nil {
		ce.Write(zap.String("source", source), zap.String("version", version))
	}
}

// answerChallenge echoes a provider's URL verification challenge.
func (h *Handler) answerChallenge(w http.ResponseWriter, challenge, version, source string) error {
	b, err := json.Marshal(map[string]string{"challenge": challenge})
	if err != nil {
		return err
	}
	h.logHandshake(version, source)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(b)
	return err
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
// A decompressed gzip body is stored without its Content-Encoding.
func (h *Handler) message(r *http.Request, version string, src *source, res verify.Result, body []byte, receivedAt time.Time, gz bool) (*nats.Msg, string) {
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
		if keepHeader(k) && !(gz && k == "Content-Encoding") {
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
	if source == "" {
		version = "" // whatever the path said: labels stay bounded
	}
	countRequest(source, version, p.slug)
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

// rejectUnread rejects a request whose body was not read. After the
// handler, net/http reads up to 256 KiB of an unread body before it
// answers, so the connection can carry the next request; behind Caddy
// (whose idle-timeout reader replaces the body net/http checks) it does so
// even after "Expect: 100-continue", inviting the body it was to spare.
// So unless the body is small and already on its way, the answer closes
// the connection instead.
func (h *Handler) rejectUnread(w http.ResponseWriter, r *http.Request, p *problem, reason error, version, source string) error {
	if r.ProtoMajor == 1 && r.ContentLength != 0 &&
		(r.ContentLength < 0 || r.ContentLength > maxDrain || r.Header.Get("Expect") != "") {
		w.Header().Set("Connection", "close")
	}
	return h.reject(w, r, p, reason, version, source)
}

// maxDrain is the largest unread body left for net/http to drain so the
// connection stays open: a typical delivery, whose bytes are already
// sent.
const maxDrain = 64 << 10

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
	return newProblemWith(status, slug, detail, level, nil)
}

// newProblemWith adds extension members (RFC 9457 section 3.2) to the body.
func newProblemWith(status int, slug, detail string, level zapcore.Level, ext map[string]any) *problem {
	m := map[string]any{
		"type":   "urn:hookgate:problem:" + slug,
		"title":  http.StatusText(status),
		"status": status,
		"detail": detail,
	}
	for k, v := range ext {
		m[k] = v
	}
	b, _ := json.Marshal(m)
	return &problem{status: status, slug: slug, level: level, body: b}
}

const rateLimitedDetail = "Too many requests; retry after the time in Retry-After."

var (
	problemNotFound  = newProblem(http.StatusNotFound, "unknown-endpoint", "No webhook endpoint at this path.", zapcore.DebugLevel)
	problemMethod    = newProblem(http.StatusMethodNotAllowed, "method-not-allowed", "Webhooks are delivered with POST.", zapcore.DebugLevel)
	problemTooLarge  = newProblem(http.StatusRequestEntityTooLarge, "body-too-large", "The request body is larger than this endpoint accepts.", zapcore.InfoLevel)
	problemEncoding  = newProblem(http.StatusUnsupportedMediaType, "unsupported-encoding", "Content-Encoding is not accepted by this endpoint.", zapcore.InfoLevel)
	problemBadBody   = newProblem(http.StatusBadRequest, "unreadable-body", "The request body could not be read.", zapcore.InfoLevel)
	problemSignature = newProblem(http.StatusUnauthorized, "invalid-signature", "The request could not be authenticated.", zapcore.InfoLevel)
	problemForbidden = newProblem(http.StatusForbidden, "client-not-allowed", "This endpoint does not accept requests from your address.", zapcore.InfoLevel)
	problemTimeout   = newProblem(http.StatusRequestTimeout, "body-timeout", "The request body did not arrive in time.", zapcore.InfoLevel)
	// A client over its own budget is logged at debug level (a flood
	// would fill the log); a source over its shared budget at info, as a
	// provider is being turned away.
	problemRateIP     = newProblem(http.StatusTooManyRequests, "rate-limited", rateLimitedDetail, zapcore.DebugLevel)
	problemRateSource = newProblem(http.StatusTooManyRequests, "rate-limited", rateLimitedDetail, zapcore.InfoLevel)
	problemNotReady   = newProblem(http.StatusServiceUnavailable, "not-ready", "The event store is starting; retry later.", zapcore.WarnLevel)
	problemStore      = newProblem(http.StatusServiceUnavailable, "store-unavailable", "The event could not be stored; retry later.", zapcore.ErrorLevel)
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
	_ caddy.CleanerUpper          = (*Handler)(nil)
)
