package caddymodule

import (
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookgate/hookgate/verify"
)

// Defaults and bounds of a source.
const (
	defaultMaxBody = 1 << 20
	// defaultMaxRatio bounds gzip expansion: JSON compresses 5-20 times,
	// a bomb a thousand times and more.
	defaultMaxRatio = 100
	// maxSegment bounds a version or source name in a path.
	maxSegment = 64
)

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

	// BodyTimeout bounds how long the source waits for the whole body once
	// the headers are in; past it, 408 Request Timeout and the connection
	// is closed. Default: the handler's body_timeout (10s).
	BodyTimeout caddy.Duration `json:"body_timeout,omitempty"`

	// MaxHeaders bounds the request's header fields; past it, 431.
	// Default: the handler's max_headers (100).
	MaxHeaders int `json:"max_headers,omitempty"`

	// MaxHeaderBytes bounds the header fields' size as sent; past it, 431.
	// Default: the handler's max_header_bytes (16 KiB).
	MaxHeaderBytes int64 `json:"max_header_bytes,omitempty"`

	// MaxRatio bounds how many times larger than its compressed size a
	// gzip body may decompress; past it, 413. Default: 100.
	MaxRatio int `json:"max_ratio,omitempty"`

	// SubjectSuffix is a CEL expression over the event (the variables of
	// a destination's filter) yielding a string, a list of strings or
	// null: subject tokens appended to the event's subject at ingest, so
	// NATS subscribers can select by content. See subject_suffix.go.
	SubjectSuffix string `json:"subject_suffix,omitempty"`

	// SubjectHeaders maps header names to CEL expressions over the event
	// (the variables of SubjectSuffix) yielding a string, a list of
	// strings or null: headers set on the stored event at ingest. Names
	// may not start with Hookgate- or Nats-.
	SubjectHeaders map[string]string `json:"subject_headers,omitempty"`
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
	// stored holds the source's series of an accepted [0] and a
	// duplicate [1] event, by version (*storedSeries, made on first use).
	stored     [2]sync.Map
	verifier   verify.Verifier
	scheme     string
	publicURL  *url.URL
	maxBody    int64
	idHeader   string
	typeHeader string
	dedupBody  bool
	// versions is nil when the source takes all the handler's versions.
	versions map[string]bool
	// deprecated holds the headers announcing each deprecated version.
	deprecated map[string]http.Header
	// gone answers a retired version; goneLink points to the successor.
	gone     *problem
	goneLink []string
	bucket   *bucket
	perIP    *ipTable
	allow    []netip.Prefix
	gzip     bool
	maxRatio int64
	// acceptEncoding is the Accept-Encoding sent with a 415.
	acceptEncoding string
	// bodyTimeout bounds the wait for the body.
	bodyTimeout time.Duration
	// maxHeaders and maxHeaderBytes bound the stored headers.
	maxHeaders     int
	maxHeaderBytes int64
	// getHandshake is set when the provider's handshake is a GET
	// (verify.GetHandshaker): then a GET reaches the verifier.
	getHandshake bool
	// suffix is the compiled subject_suffix and subject_header lines; nil
	// when none.
	suffix *subjectSuffix
}

// handshakeGET reports whether v's provider sends its handshake as a GET.
func handshakeGET(v verify.Verifier) bool {
	gh, ok := v.(verify.GetHandshaker)
	return ok && gh.HandshakeGET()
}

// allowMethods is the Allow header of the source's 405.
func (s *source) allowMethods() string {
	if s.getHandshake {
		return "GET, POST"
	}
	return http.MethodPost
}

// nameOrEmpty is the source's name, or "" for no source (an unknown path).
func (s *source) nameOrEmpty() string {
	if s == nil {
		return ""
	}
	return s.name
}

func (s *Source) provision(repl *caddy.Replacer) (*source, error) {
	v, err := s.verifier(repl)
	if err != nil {
		return nil, err
	}
	rs := &source{
		name:     s.Name,
		verifier: v,
		scheme:   s.Verify.Scheme,
		maxBody:  orDefault(s.MaxBody, defaultMaxBody),
		// Canonical, so that reading them per request allocates
		// nothing (Header.Get canonicalizes any other spelling).
		idHeader:   http.CanonicalHeaderKey(s.IDHeader),
		typeHeader: http.CanonicalHeaderKey(s.TypeHeader),

		storeSeconds: metrics.storeSeconds.WithLabelValues(s.Name),
	}
	rs.getHandshake = handshakeGET(v)
	if rs.suffix, err = newSubjectSuffix(s.SubjectSuffix, s.SubjectHeaders); err != nil {
		return nil, err
	}
	if rs.maxBody < 0 {
		return nil, fmt.Errorf("max_body %d: must be positive", s.MaxBody)
	}
	rs.acceptEncoding = "identity"
	for _, e := range s.AcceptEncoding {
		if err := checkEncoding(e); err != nil {
			return nil, err
		}
		rs.gzip = true
		rs.acceptEncoding = "gzip, identity"
	}
	rs.maxRatio = int64(orDefault(s.MaxRatio, defaultMaxRatio))
	if err := checkMaxRatio(s.MaxRatio, rs.gzip); err != nil {
		return nil, err
	}
	if err := checkDedup(s.Dedup); err != nil {
		return nil, err
	}
	rs.dedupBody = s.Dedup == "body"
	if s.PublicURL != "" {
		u, err := url.Parse(s.PublicURL)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("public_url %q: want an absolute URL such as https://hooks.example.com/webhooks/v1/%s", s.PublicURL, s.Name)
		}
		rs.publicURL = u
	}
	return rs, nil
}

// verifier resolves the secrets' placeholders and builds the verifier. The
// source has a verify line (checkVerify).
func (s *Source) verifier(repl *caddy.Replacer) (verify.Verifier, error) {
	secrets := make([]string, 0, len(s.Verify.Secrets))
	for i, sec := range s.Verify.Secrets {
		v, err := repl.ReplaceOrErr(sec, true, true)
		if err != nil || v == "" {
			return nil, fmt.Errorf("verify: %w", placeholderError(fmt.Sprintf("secret %d", i+1), sec, err))
		}
		secrets = append(secrets, v)
	}
	// Options hold secrets too (Meta's verify_token, Plaid's client_id):
	// their {env.*} and {file.*} placeholders are resolved as well. Others
	// are the scheme's own ({body} and {timestamp} in a template) and are
	// kept.
	var options map[string]string
	if len(s.Verify.Options) > 0 {
		options = make(map[string]string, len(s.Verify.Options))
	}
	for name, val := range s.Verify.Options {
		v := repl.ReplaceKnown(val, "")
		if v == "" && val != "" {
			return nil, fmt.Errorf("verify: %w", placeholderError("option "+name, val, nil))
		}
		options[name] = v
	}
	v, err := verify.New(verify.Config{
		Scheme:    s.Verify.Scheme,
		Secrets:   secrets,
		Tolerance: time.Duration(s.Tolerance),
		Options:   options,
	})
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	return v, nil
}

// sourceLimits sets up a source's rate limits and its allowlist.
func (h *Handler) sourceLimits(s *Source, rs *source) error {
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

// requestURL is the URL the provider signed, for the schemes that sign
// it, written into u (the request's scratch, so it allocates nothing) and
// returned.
func (s *source) requestURL(r *http.Request, u *url.URL) *url.URL {
	if s.publicURL != nil {
		*u = *s.publicURL
		if u.RawQuery == "" {
			u.RawQuery = r.URL.RawQuery
		}
		return u
	}
	*u = *r.URL
	u.Host = r.Host
	u.Scheme = "http"
	if r.TLS != nil {
		u.Scheme = "https"
	}
	return u
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

// storedSeries are the series countRequest counts a stored event of one
// source, version and outcome in, looked up once: WithLabelValues hashes
// its labels under the vector's lock on every call.
type storedSeries struct {
	requests prometheus.Counter
	seconds  prometheus.Observer
}

// countStored counts the stored request q, as countRequest does with the
// outcome accepted or duplicate. A series is made (and scraped) from the
// first request it counts, as with countRequest.
func (s *source) countStored(q *request, duplicate bool) {
	i, outcome := 0, outcomeAccepted
	if duplicate {
		i, outcome = 1, outcomeDuplicate
	}
	q.outcome = outcome
	v, ok := s.stored[i].Load(q.version)
	if !ok {
		v, _ = s.stored[i].LoadOrStore(q.version, &storedSeries{
			requests: metrics.requests.WithLabelValues(s.name, q.version, outcome),
			seconds:  metrics.requestSecs.WithLabelValues(s.name, outcome),
		})
	}
	ss := v.(*storedSeries)
	ss.requests.Inc()
	ss.seconds.Observe(time.Since(q.now).Seconds())
}
