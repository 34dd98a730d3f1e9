package forwarder

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"time"

	"github.com/hookgate/hookgate/event"
	"github.com/hookgate/hookgate/verify"
)

// Defaults applied by New to zero fields of Config.
const (
	DefaultTimeout         = 10 * time.Second
	DefaultMaxAttempts     = 12
	DefaultBackoffBase     = time.Second
	DefaultBackoffCap      = time.Hour
	DefaultConcurrency     = 8
	DefaultBreakerFailures = 10
	DefaultBreakerCooldown = 30 * time.Second
	DefaultBreakerWindow   = time.Minute
	DefaultBreakerMin      = 10
)

// On4xx tells what a destination's 4xx answer (other than 408, 410, 425 and
// 429, which have fixed meanings) does to an event.
type On4xx string

// The values of On4xx.
const (
	// DeadLetter copies the event to WEBHOOKS_DLQ at once: the destination
	// said it will never accept it. The default.
	DeadLetter On4xx = "dead_letter"
	// Retry treats the 4xx like a 5xx: retry with backoff until the
	// attempts or max age run out.
	Retry On4xx = "retry"
)

// Config describes one destination.
type Config struct {
	// Name identifies the destination; its consumer is "fwd-<Name>".
	// Letters, digits, '-' and '_' only.
	Name string
	// URL receives a POST per event.
	URL string
	// Subjects filter the events this destination gets (NATS wildcards).
	// Empty means every event ("webhooks.>").
	Subjects []string
	// Timeout bounds one delivery attempt. Default 10s.
	Timeout time.Duration
	// MaxAttempts is how many attempts an event gets before it is
	// dead-lettered. Default 12, or len(Schedule)+1 when Schedule is set.
	MaxAttempts int
	// MaxAge dead-letters an event once this long has passed since the
	// gateway received it, whatever the attempts left. 0: no limit.
	MaxAge time.Duration
	// BackoffBase and BackoffCap shape the capped exponential backoff with
	// full jitter between attempts: before attempt n+1 the forwarder waits
	// a uniform random time in [0, min(cap, base·2^(n-1))). Defaults 1s
	// and 1h.
	BackoffBase, BackoffCap time.Duration
	// Schedule, when set, replaces the backoff: the wait after the n-th
	// failed attempt is Schedule[n-1], the last entry repeating.
	Schedule []time.Duration
	// RetryAfterCap bounds how long a destination's Retry-After may defer
	// the next attempt. Default BackoffCap (or the longest Schedule entry).
	RetryAfterCap time.Duration
	// On4xx decides the fate of an event answered with a plain 4xx.
	// Default DeadLetter.
	On4xx On4xx
	// Rate caps attempts per second (a token bucket); 0 means no cap.
	Rate float64
	// Burst is the bucket size of Rate. Default 1.
	Burst int
	// Concurrency caps the requests in flight to the destination (the
	// worker pool). The consumer's MaxAckPending is Concurrency plus
	// max(16, Concurrency), room for events waiting out a retry delay;
	// with Shared it is Concurrency itself. Default 8.
	Concurrency int
	// Shared says that other gateways pull from the same durable consumer
	// (a JetStream cluster of gateways, or an external NATS). The cap then
	// has to hold across all of them, and only JetStream sees them all: the
	// consumer's MaxAckPending becomes Concurrency, so the events handed
	// out and not yet acked, in every gateway together, never exceed it.
	// Events waiting out a retry delay hold one of those slots (JetStream
	// counts a NakWithDelay as pending), and so do the events a gateway
	// that died had in hand, until AckWait ends. Rate is shared with
	// SetRateShare.
	Shared bool
	// OrderedBy, when set, delivers events that share a key one at a time
	// in stream order. A value starting with "$." is a JSON path into the
	// body ("$.data.object.customer"); anything else names a provider
	// header. Events without the key are not ordered.
	OrderedBy string
	// SignSecret, when set, signs every delivery the Standard Webhooks way
	// (webhook-id, webhook-timestamp, webhook-signature) so the destination
	// can verify the gateway: a "whsec_<base64>" HMAC secret (v1) or a
	// "whsk_<base64>" Ed25519 private key (v1a), read as verify's
	// standard-webhooks scheme reads them.
	SignSecret string
	// Headers are added to every delivery (a static credential such as
	// Authorization for the internal service), replacing provider headers
	// of the same name. Their values are secrets: never logged, shown as
	// "REDACTED" by Status. Names the forwarder sets itself (Webhook-*,
	// Idempotency-Key, User-Agent) and hop-by-hop or framing headers are
	// refused by Validate.
	Headers http.Header
	// Filters are CEL expressions over the event (see the variables in
	// cel.go); an event goes to the destination only when all yield true.
	// An event filtered out is acked for this destination without a
	// delivery, and its delivery state is StatusFiltered.
	Filters []string
	// Transform, when set, is a CEL expression yielding the body to send:
	// a map or a list is sent as JSON (Content-Type application/json), a
	// string or bytes as it is. The stored event never changes; an event
	// the transformation fails on is dead-lettered (reason
	// transform_failed).
	Transform string
	// TransformHeaders, when set, is a CEL expression yielding a map of
	// header names to a string (set the header) or null (remove it).
	TransformHeaders string
	// Breaker configures the circuit breaker.
	Breaker BreakerConfig
	// Observer, when set, is told of every attempt, dead letter and
	// circuit change, for metrics.
	Observer Observer
	// TLS, for an https:// URL, replaces the default client TLS config
	// (the system's roots, no client certificate): set RootCAs for a
	// private CA, Certificates for mutual TLS. ServerName defaults to the
	// URL's host.
	TLS *tls.Config
}

// BreakerConfig describes when a destination's circuit opens. While it is
// open the destination's consumer is paused, so waiting events spend no
// attempts; after Cooldown one probe is let through, and its success closes
// the circuit.
type BreakerConfig struct {
	// Disabled turns the breaker off.
	Disabled bool
	// Failures opens the circuit after this many consecutive failed
	// attempts. Default 10; negative disables this trigger.
	Failures int
	// Ratio opens the circuit when at least this fraction (0 < Ratio ≤ 1)
	// of the attempts within Window failed, once MinRequests attempts were
	// made in it. 0 disables this trigger.
	Ratio float64
	// Window is the span Ratio is measured over. Default 1m.
	Window time.Duration
	// MinRequests is how many attempts a Window needs before Ratio counts.
	// Default 10.
	MinRequests int
	// Cooldown is how long the circuit stays open before a probe. Default
	// 30s.
	Cooldown time.Duration
}

// ConsumerName returns the durable consumer name of a destination.
func ConsumerName(destination string) string { return "fwd-" + destination }

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if len(c.Subjects) == 0 {
		c.Subjects = []string{event.SubjectRoot + ".>"}
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.BackoffBase == 0 {
		c.BackoffBase = DefaultBackoffBase
	}
	if c.BackoffCap == 0 {
		c.BackoffCap = max(DefaultBackoffCap, c.BackoffBase)
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
		if len(c.Schedule) > 0 {
			c.MaxAttempts = len(c.Schedule) + 1
		}
	}
	if c.RetryAfterCap == 0 {
		c.RetryAfterCap = c.BackoffCap
		if len(c.Schedule) > 0 {
			c.RetryAfterCap = 0
			for _, d := range c.Schedule {
				c.RetryAfterCap = max(c.RetryAfterCap, d)
			}
		}
	}
	if c.On4xx == "" {
		c.On4xx = DeadLetter
	}
	if len(c.Headers) > 0 {
		// Canonical names, in a copy the caller cannot change under us.
		h := make(http.Header, len(c.Headers))
		for k, vs := range c.Headers {
			h[textproto.CanonicalMIMEHeaderKey(k)] = append(h[textproto.CanonicalMIMEHeaderKey(k)], vs...)
		}
		c.Headers = h
	}
	if c.Burst == 0 {
		c.Burst = 1
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	b := &c.Breaker
	if b.Failures == 0 {
		b.Failures = DefaultBreakerFailures
	}
	if b.Window == 0 {
		b.Window = DefaultBreakerWindow
	}
	if b.MinRequests == 0 {
		b.MinRequests = DefaultBreakerMin
	}
	if b.Cooldown == 0 {
		b.Cooldown = DefaultBreakerCooldown
	}
	return c
}

// Validate reports the first problem with c, naming the field. Zero fields
// are fine: they take their defaults.
func (c *Config) Validate() error {
	if err := c.validate(); err != nil {
		return fmt.Errorf("destination %q: %w", c.Name, err)
	}
	return nil
}

func (c *Config) validate() error {
	if c.Name == "" {
		return errors.New("name is empty")
	}
	if !isToken(c.Name) {
		return fmt.Errorf("name %q: use only letters, digits, '-' and '_'", c.Name)
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		return fmt.Errorf("url %q: %w", c.URL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("url %q: want an absolute http:// or https:// URL", RedactURL(c.URL))
	}
	if c.TLS != nil && u.Scheme != "https" {
		return fmt.Errorf("url %q: TLS settings need an https:// URL", RedactURL(c.URL))
	}
	for _, s := range c.Subjects {
		if !validSubjectFilter(s) {
			return fmt.Errorf("subject %q: want a NATS subject under %q, such as %q", s, event.SubjectRoot+".", event.SubjectRoot+".v1.stripe.>")
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"timeout", c.Timeout}, {"max_age", c.MaxAge}, {"backoff base", c.BackoffBase}, {"backoff cap", c.BackoffCap}, {"retry_after cap", c.RetryAfterCap}, {"breaker window", c.Breaker.Window}, {"breaker cooldown", c.Breaker.Cooldown}} {
		if d.v < 0 {
			return fmt.Errorf("%s %v: must not be negative", d.name, d.v)
		}
	}
	if c.BackoffCap != 0 && c.BackoffCap < c.BackoffBase {
		return fmt.Errorf("backoff cap %v is below its base %v", c.BackoffCap, c.BackoffBase)
	}
	for i, d := range c.Schedule {
		if d < 0 {
			return fmt.Errorf("schedule entry %d (%v): must not be negative", i+1, d)
		}
	}
	if c.MaxAttempts < 0 {
		return fmt.Errorf("max_attempts %d: must be at least 1", c.MaxAttempts)
	}
	if c.On4xx != "" && c.On4xx != DeadLetter && c.On4xx != Retry {
		return fmt.Errorf("on_4xx %q: want %q or %q", c.On4xx, DeadLetter, Retry)
	}
	if c.Rate < 0 {
		return fmt.Errorf("rate %v: must not be negative", c.Rate)
	}
	if c.Burst < 0 {
		return fmt.Errorf("burst %d: must not be negative", c.Burst)
	}
	if c.Concurrency < 0 || c.Concurrency > maxConcurrency {
		return fmt.Errorf("concurrency %d: want 1 to %d", c.Concurrency, maxConcurrency)
	}
	if c.OrderedBy != "" {
		if _, err := newKeyFunc(c.OrderedBy); err != nil {
			return fmt.Errorf("ordered_by %q: %w", c.OrderedBy, err)
		}
	}
	if c.SignSecret != "" {
		if _, err := newSigner(c.SignSecret); err != nil {
			return fmt.Errorf("sign standard-webhooks: %w", err)
		}
	}
	if _, err := compileRouting(c); err != nil {
		return err
	}
	for name := range c.Headers {
		if err := checkHeaderName(name); err != nil {
			return err
		}
	}
	if r := c.Breaker.Ratio; r < 0 || r > 1 {
		return fmt.Errorf("breaker ratio %v: want a fraction in (0, 1]", r)
	}
	if c.Breaker.MinRequests < 0 {
		return fmt.Errorf("breaker min requests %d: must not be negative", c.Breaker.MinRequests)
	}
	return nil
}

// checkHeaderName refuses a configured header the forwarder owns: its own
// Webhook-* and Idempotency-Key headers (the destination's idempotency
// check and signature verification depend on them), User-Agent, and the
// headers dropped from stored events (hop-by-hop, framing, Content-Type).
func checkHeaderName(name string) error {
	canon := textproto.CanonicalMIMEHeaderKey(name)
	switch {
	case name == "" || strings.ContainsAny(name, " \t\r\n:"):
		return fmt.Errorf("header %q: not a header name", name)
	case strings.HasPrefix(canon, "Webhook-") || canon == event.HeaderIdempotencyKey || canon == "User-Agent":
		return fmt.Errorf("header %s: set by the forwarder on every delivery and cannot be overridden; choose another name", canon)
	case dropHeader(canon):
		return fmt.Errorf("header %s: a hop-by-hop or framing header, set by the HTTP client; remove it", canon)
	}
	return nil
}

// maxConcurrency bounds Concurrency so that a typo cannot open thousands of
// connections to an internal service.
const maxConcurrency = 1024

// Matches reports whether an event stored under subject goes to this
// destination, so that an event log can show "pending" for destinations
// that have not written a delivery state yet.
func (c *Config) Matches(subject string) bool {
	subs := c.Subjects
	if len(subs) == 0 {
		subs = []string{event.SubjectRoot + ".>"}
	}
	for _, f := range subs {
		if subjectMatches(f, subject) {
			return true
		}
	}
	return false
}

func subjectMatches(filter, subject string) bool {
	ft := strings.Split(filter, ".")
	st := strings.Split(subject, ".")
	for i, t := range ft {
		if t == ">" {
			return len(st) > i
		}
		if i >= len(st) || (t != "*" && t != st[i]) {
			return false
		}
	}
	return len(ft) == len(st)
}

func validSubjectFilter(s string) bool {
	toks := strings.Split(s, ".")
	if len(toks) < 2 || toks[0] != event.SubjectRoot {
		return false
	}
	for i, t := range toks {
		switch {
		case t == "":
			return false
		case t == ">" && i != len(toks)-1:
			return false
		case strings.ContainsAny(t, " \t\r\n") || (len(t) > 1 && strings.ContainsAny(t, "*>")):
			return false
		}
	}
	return true
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// newSigner returns the Standard Webhooks signer of a secret, parsed by
// verify as the standard-webhooks source reads it: "whsec_<base64>" (or
// bare base64) signs v1 HMAC-SHA256, "whsk_<base64>" signs v1a Ed25519.
func newSigner(secret string) (verify.Signer, error) {
	return verify.NewSigner(verify.Config{Scheme: "standard-webhooks", Secrets: []string{secret}})
}
