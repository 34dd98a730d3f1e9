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
	// sign it (Twilio, Square, HubSpot v2/v3). Behind a proxy this is the
	// source's configured public URL with the received query string, not
	// what the gateway saw. Schemes that sign the URL fail with ErrConfig
	// when it is nil.
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
	// Handshake, when not nil, means the request is the provider's setup
	// handshake (Slack's url_verification, Discord's PING, Zoom's
	// endpoint.url_validation, a CRC or hub.challenge GET...), not an event:
	// the gateway answers with it and stores nothing.
	Handshake *Handshake
}

// Handshake is the answer a provider expects to its setup handshake.
type Handshake struct {
	// Status is the HTTP status to answer; zero means 200.
	Status int
	// Header holds the answer's headers, Content-Type among them.
	Header http.Header
	// Body is the answer's body, sent as it is.
	Body []byte
}

// GetHandshaker is implemented by the verifiers of providers whose
// handshake is a GET request (Meta's hub.challenge, Twitter's CRC check,
// Dropbox's challenge, Okta's verification). The gateway passes a GET to
// Verify only when HandshakeGET reports true; every other GET is refused
// with 405 before the verifier sees it. Verify must then answer a GET only
// with a Result whose Handshake is set, or an error.
type GetHandshaker interface {
	HandshakeGET() bool
}

// Verifier checks one request. Implementations are safe for concurrent use.
type Verifier interface {
	// Verify returns nil error only when the request is authentic. It
	// reads r and never changes it.
	Verify(r *Request) (Result, error)
}

// Signer signs a request the way the provider would, so a test or the CLI
// can produce deliveries that Verify accepts.
type Signer interface {
	// Sign sets on r.Header (made when nil) the headers the provider would
	// send, timestamped with r.Now (time.Now() when zero) and signed with
	// the newest secret. Where the provider signs elsewhere, Sign changes
	// that too: Twilio adds bodySHA256 to r.URL for a body that is not a
	// form, Mailgun carries its signature in r.Body. A delivery id header
	// the caller set is kept and signed as it is; a missing one is made.
	Sign(r *Request) error
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
	// ErrConfig means the Config cannot make a verifier, or the request
	// lacks what the source must supply (the URL a scheme signs).
	ErrConfig = errors.New("invalid verifier configuration")
)

// Limits on the work one request can cause, whatever its headers hold.
const (
	// MaxSecrets is the most active secrets a Config may hold.
	MaxSecrets = 8
	// MaxSignatures is the most signatures read from one header; more are
	// ignored, so a long header cannot multiply the MACs computed.
	MaxSignatures = 8
)

// DefaultTolerance is how far a signed timestamp may be from now, the value
// Stripe's, Slack's and the Standard Webhooks libraries use.
const DefaultTolerance = 5 * time.Minute

// Config names a scheme and its secrets; New turns it into a Verifier.
type Config struct {
	// Scheme is one of Schemes().
	Scheme string
	// Secrets are the active secrets (or public keys), newest first, at
	// most MaxSecrets, none empty. A request is accepted when any
	// signature matches any of them; a Signer signs with the first.
	Secrets []string
	// Tolerance bounds how far a signed timestamp may be from now, in
	// either direction; zero means DefaultTolerance, negative is an error.
	// Schemes without a timestamp ignore it.
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

// NewSigner makes the signer for c.Scheme. It fails with ErrConfig for a
// scheme that cannot sign (none can sign with a public key only).
func NewSigner(c Config) (Signer, error) {
	v, err := New(c)
	if err != nil {
		return nil, err
	}
	s, ok := v.(Signer)
	if !ok {
		return nil, fmt.Errorf("%w: scheme %q cannot sign", ErrConfig, c.Scheme)
	}
	if p, ok := v.(interface{ signable() error }); ok {
		if err := p.signable(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Must returns v, and panics when err is not nil. It is for verifiers
// built from constants, as in verify.Must(verify.GitHub(secret)).
func Must(v Verifier, err error) Verifier {
	if err != nil {
		panic(err)
	}
	return v
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
