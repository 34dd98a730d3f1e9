// Package verify checks webhook signatures on the raw bytes of a request,
// one file per provider scheme. It uses only the standard library, so any Go
// program can use it:
//
//	v, err := verify.New(verify.Config{Scheme: "github", Secrets: []string{secret}})
//	res, err := v.Verify(&verify.Request{Method: "POST", URL: u, Header: r.Header, Body: body})
//
// Every verifier compares in constant time, accepts any number of active
// secrets (rotation), fails closed on a missing or malformed header, and
// reports the provider's delivery id and event type when the scheme carries
// them. Errors wrap one of the sentinel errors below, so a caller can tell a
// stale timestamp from a wrong signature with errors.Is; the error text never
// contains a secret or an expected signature.
package verify

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"sync"
	"time"
)

// Request is what a verifier sees of one webhook delivery.
type Request struct {
	// Method is the HTTP method, "POST" for almost every provider.
	Method string
	// URL is the public URL the provider addressed, for the schemes that
	// sign it (Twilio, Square, HubSpot). Behind a proxy this is the
	// source's configured public URL, not what the gateway saw.
	URL *url.URL
	// Header holds the request headers as received.
	Header http.Header
	// Body is the raw request body, exactly as received.
	Body []byte
	// Now is the time to check timestamps against; zero means time.Now().
	Now time.Time
}

// now returns the request's clock.
func (r *Request) now() time.Time {
	if r.Now.IsZero() {
		return time.Now()
	}
	return r.Now
}

// Result is what a successful verification learned about the delivery.
type Result struct {
	// ID is the provider's delivery id ("" when the scheme carries none).
	// Retries of one delivery carry the same id, so it is the dedup key.
	ID string
	// Type is the provider's event type ("" when the scheme carries none).
	Type string
}

// Verifier checks one request. Implementations are safe for concurrent use.
type Verifier interface {
	// Verify returns nil error only when the request is authentic.
	Verify(r *Request) (Result, error)
}

// Sentinel errors. Every error a Verifier returns wraps exactly one of them.
var (
	// ErrMissing means a required header (or body field) is absent.
	ErrMissing = errors.New("signature missing")
	// ErrMalformed means a signature or timestamp could not be parsed.
	ErrMalformed = errors.New("signature malformed")
	// ErrMismatch means no signature matched any active secret.
	ErrMismatch = errors.New("signature mismatch")
	// ErrExpired means the signed timestamp is outside the tolerance.
	ErrExpired = errors.New("timestamp outside tolerance")
	// ErrConfig means the Config cannot make a verifier.
	ErrConfig = errors.New("invalid verifier configuration")
)

// DefaultTolerance is how far a signed timestamp may be from now, the value
// Stripe's, Slack's and the Standard Webhooks libraries use.
const DefaultTolerance = 5 * time.Minute

// Config names a scheme and its secrets; New turns it into a Verifier.
type Config struct {
	// Scheme is one of Schemes().
	Scheme string
	// Secrets are the active secrets (or public keys), newest first. A
	// request is accepted when any signature matches any of them.
	Secrets []string
	// Tolerance bounds the age of signed timestamps; zero means
	// DefaultTolerance. Schemes without a timestamp ignore it.
	Tolerance time.Duration
	// Options holds scheme-specific settings (for example the generic hmac
	// scheme's "header", "algorithm", "encoding"); each scheme documents
	// its own and rejects unknown ones.
	Options map[string]string
}

// Constructor makes a Verifier from a Config.
type Constructor func(Config) (Verifier, error)

var (
	registryMu sync.RWMutex
	registry   = map[string]Constructor{}
)

// Register makes a scheme available to New. It panics on a duplicate name,
// as a programming error.
func Register(scheme string, c Constructor) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[scheme]; dup {
		panic("verify: scheme registered twice: " + scheme)
	}
	registry[scheme] = c
}

// New makes the verifier for c.Scheme.
func New(c Config) (Verifier, error) {
	registryMu.RLock()
	ctor, ok := registry[c.Scheme]
	registryMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: unknown scheme %q (known: %v)", ErrConfig, c.Scheme, Schemes())
	}
	return ctor(c)
}

// Schemes lists the registered scheme names, sorted.
func Schemes() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
