package caddymodule

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/hookgate/hookgate/forwarder"
)

// DestinationConfig is the JSON config of one destination: an internal HTTP
// service that receives the events matching its subjects, through its own
// durable consumer "fwd-<name>". Zero fields take the forwarder's defaults.
type DestinationConfig struct {
	// Name identifies the destination; its consumer is "fwd-<name>".
	// Letters, digits, '-' and '_'.
	Name string `json:"name"`
	// URL receives a POST per event. Placeholders such as {env.X} are
	// resolved at provisioning.
	URL string `json:"url"`
	// Subjects filter the events this destination receives, NATS wildcards
	// allowed ("webhooks.v1.stripe.invoice.>"). Default: every event.
	Subjects []string `json:"subjects,omitempty"`
	// Timeout bounds one delivery attempt. Default 10s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// MaxAttempts is how many attempts an event gets before it is
	// dead-lettered. Default 12, or one more than the schedule's entries.
	MaxAttempts int `json:"max_attempts,omitempty"`
	// MaxAge dead-letters an event this long after it was received,
	// whatever the attempts left. Default: no limit.
	MaxAge caddy.Duration `json:"max_age,omitempty"`
	// BackoffBase is the first retry's ceiling of the capped exponential
	// backoff with full jitter. Default 1s.
	BackoffBase caddy.Duration `json:"backoff_base,omitempty"`
	// BackoffCap is the backoff's largest ceiling. Default 1h.
	BackoffCap caddy.Duration `json:"backoff_cap,omitempty"`
	// Schedule replaces the backoff with fixed waits: the n-th entry after
	// the n-th failed attempt, the last repeating.
	Schedule []caddy.Duration `json:"schedule,omitempty"`
	// RetryAfterCap bounds how long a destination's Retry-After header may
	// defer the next attempt. Default: the backoff cap (or the longest
	// schedule entry).
	RetryAfterCap caddy.Duration `json:"retry_after_cap,omitempty"`
	// On4xx is what a plain 4xx answer (not 408, 410, 425, 429) does:
	// "dead_letter" (default) or "retry".
	On4xx string `json:"on_4xx,omitempty"`
	// RateEvents and RateWindow cap attempts at RateEvents per RateWindow
	// (a token bucket), for all the gateways of a cluster together (each
	// runs its share, docs/CLUSTER.md). Default: no cap.
	RateEvents int `json:"rate_events,omitempty"`
	// RateWindow is the window of RateEvents. Default 1s.
	RateWindow caddy.Duration `json:"rate_window,omitempty"`
	// Burst is the token bucket's size. Default: RateEvents, as for a
	// source's rate (RateLimit.Burst); burst 1 paces attempts evenly.
	Burst int `json:"burst,omitempty"`
	// Concurrency caps the requests in flight to the destination, for all
	// the gateways of a cluster together (the shared consumer's
	// MaxAckPending, docs/CLUSTER.md). Default 8.
	Concurrency int `json:"concurrency,omitempty"`
	// OrderedBy delivers events sharing a key one at a time in stream
	// order: a provider header name, or a dotted JSON path into the body as
	// type_field writes it ("data.object.customer"; "$." in front means the
	// same, and is how a top-level key is written: "$.customer"). Default:
	// no ordering.
	OrderedBy string `json:"ordered_by,omitempty"`
	// Headers are added to every delivery, e.g. a static credential for
	// the internal service: {"Authorization": ["Bearer {file./run/secrets/orders-token}"]}.
	// Values may hold placeholders, resolved at provisioning like the other
	// secrets; they are never logged and the admin API shows them as
	// "REDACTED". Webhook-*, Idempotency-Key, User-Agent and hop-by-hop
	// headers cannot be set.
	Headers map[string][]string `json:"headers,omitempty"`
	// Filters are CEL expressions over the event (variables body,
	// headers, source, version, type, event_id, received_at); an event
	// goes to the destination only when every one yields true. Others are
	// acked for this destination with the delivery state "filtered".
	Filters []string `json:"filters,omitempty"`
	// Transform is a CEL expression yielding the body to send: a map or a
	// list is sent as JSON, a string or bytes as it is. The stored event
	// never changes; a failing transformation dead-letters the event.
	Transform string `json:"transform,omitempty"`
	// TransformHeaders is a CEL expression yielding a map of header names
	// to a string (set) or null (remove).
	TransformHeaders string `json:"transform_headers,omitempty"`
	// Sign signs every delivery for the internal hop.
	Sign *SignConfig `json:"sign,omitempty"`
	// Breaker configures the circuit breaker. Default: open after 10
	// consecutive failures, probe after 30s.
	Breaker *BreakerConfig `json:"breaker,omitempty"`
	// TLS configures the client side of an https:// destination. Default:
	// the system's roots, no client certificate.
	TLS *DestinationTLS `json:"tls,omitempty"`
}

// DestinationTLS is how the gateway connects to an https:// destination.
// File names may hold placeholders ({env.X}).
type DestinationTLS struct {
	// CA names PEM files of the certificate authorities to trust instead of
	// the system's roots: a private CA of internal services.
	CA []string `json:"ca,omitempty"`
	// ClientCert and ClientKey name the PEM files of a client certificate,
	// for destinations that require mutual TLS.
	ClientCert string `json:"client_cert,omitempty"`
	ClientKey  string `json:"client_key,omitempty"`
	// ServerName is the name the destination's certificate must be valid
	// for. Default: the URL's host.
	ServerName string `json:"server_name,omitempty"`
}

// SignConfig is how deliveries are signed.
type SignConfig struct {
	// Scheme is the signature scheme; only "standard-webhooks".
	Scheme string `json:"scheme"`
	// Secret is the signing secret, read as the standard-webhooks source
	// reads secrets: "whsec_<base64>" (HMAC, v1) or "whsk_<base64>"
	// (Ed25519, v1a). Use a placeholder ({env.X} or {file.X}) so that it
	// stays out of the saved config.
	Secret string `json:"secret"`
}

// BreakerConfig is the JSON config of a destination's circuit breaker.
type BreakerConfig struct {
	// Off disables the breaker.
	Off bool `json:"off,omitempty"`
	// Failures opens the circuit after this many consecutive failures.
	// Default 10.
	Failures int `json:"failures,omitempty"`
	// Ratio opens the circuit when this fraction of the attempts within
	// Window failed (and at least MinRequests were made).
	Ratio float64 `json:"ratio,omitempty"`
	// Window is the span Ratio is measured over. Default 1m.
	Window caddy.Duration `json:"window,omitempty"`
	// MinRequests is the number of attempts a window needs before Ratio
	// counts. Default 10.
	MinRequests int `json:"min_requests,omitempty"`
	// Cooldown is how long the circuit stays open before one probe.
	// Default 30s.
	Cooldown caddy.Duration `json:"cooldown,omitempty"`
}

// parseDestination reads a destination block; the dispenser is on the
// "destination" token. Syntax:
//
//	destination <name> {
//		url              <url>
//		subjects         <subject>...             # default webhooks.>
//		timeout          <duration>               # default 10s
//		max_attempts     <n>                      # default 12
//		max_age          <duration>               # give up this long after receipt
//		backoff          <base> <cap>             # default 1s 1h, full jitter
//		schedule         <duration>...            # fixed waits instead of backoff
//		retry_after_cap  <duration>               # default: the backoff cap
//		on_4xx           dead_letter|retry        # default dead_letter
//		rate             <n>/<window> [burst <n>] # e.g. 50/s, 600/m burst 20
//		concurrency      <n>                      # default 8
//		ordered_by       <header>|<json.path>     # data.object.id or $.data.object.id
//		header           <name> <value>           # added to every delivery; repeatable
//		filter           <CEL expression>         # repeatable, ANDed; backticks around spaces
//		transform        <CEL expression>         # the body to send
//		transform_headers <CEL expression>        # {"X-A": "v", "X-B": null}
//		sign             standard-webhooks <secret>
//		breaker          off
//		breaker          [<failures>] [ratio <fraction>] [window <duration>] [min <n>] [cooldown <duration>]
//		tls_ca           <pem file>...            # default: the system's roots
//		tls_client_auth  <cert file> <key file>   # mutual TLS
//		tls_server_name  <name>                   # default: the URL's host
//	}
func parseDestination(d *caddyfile.Dispenser) (*DestinationConfig, error) {
	if !d.NextArg() {
		return nil, d.Errf("destination: missing name; use 'destination <name> { url <url> }'")
	}
	dc := &DestinationConfig{Name: d.Val()}
	if d.NextArg() {
		return nil, d.Errf("destination %q: unexpected %q after the name; settings go in the block", dc.Name, d.Val())
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if err := dc.parseLine(d); err != nil {
			return nil, err
		}
	}
	if dc.URL == "" {
		return nil, d.Errf("destination %q has no url line", dc.Name)
	}
	return dc, nil
}

// parseLine reads one subdirective of a destination block.
func (dc *DestinationConfig) parseLine(d *caddyfile.Dispenser) error {
	var err error
	switch d.Val() {
	case "url":
		dc.URL, err = oneArg(d)
	case "subjects":
		dc.Subjects = append(dc.Subjects, d.RemainingArgs()...)
		if len(dc.Subjects) == 0 {
			return d.Errf("subjects: missing value; e.g. 'subjects webhooks.v1.stripe.>'")
		}
	case "timeout":
		dc.Timeout, err = durationArg(d)
	case "max_age":
		dc.MaxAge, err = durationArg(d)
	case "retry_after_cap":
		dc.RetryAfterCap, err = durationArg(d)
	case "max_attempts":
		dc.MaxAttempts, err = intArg(d)
	case "concurrency":
		dc.Concurrency, err = intArg(d)
	case "backoff":
		args := d.RemainingArgs()
		if len(args) != 2 {
			return d.Errf("backoff: want '<base> <cap>', e.g. 'backoff 1s 1h'")
		}
		if dc.BackoffBase, err = parseDuration(d, "backoff base", args[0]); err == nil {
			dc.BackoffCap, err = parseDuration(d, "backoff cap", args[1])
		}
	case "schedule":
		args := d.RemainingArgs()
		if len(args) == 0 {
			return d.Errf("schedule: want one or more durations, e.g. 'schedule 5s 5m 30m 2h'")
		}
		for _, a := range args {
			v, perr := parseDuration(d, "schedule", a)
			if perr != nil {
				return perr
			}
			dc.Schedule = append(dc.Schedule, v)
		}
	case "on_4xx":
		dc.On4xx, err = oneArg(d)
		if err == nil && dc.On4xx != string(forwarder.DeadLetter) && dc.On4xx != string(forwarder.Retry) {
			return d.Errf("on_4xx %q: want dead_letter or retry", dc.On4xx)
		}
	case "rate":
		err = dc.parseRate(d)
	case "ordered_by":
		dc.OrderedBy, err = oneArg(d)
	case "sign":
		args := d.RemainingArgs()
		if len(args) != 2 || args[0] != "standard-webhooks" {
			return d.Errf("sign: want 'sign standard-webhooks <secret>' (use {env.NAME} for the secret)")
		}
		dc.Sign = &SignConfig{Scheme: args[0], Secret: args[1]}
	case "header":
		args := d.RemainingArgs()
		if len(args) != 2 {
			return d.Errf("header: want '<name> <value>', e.g. 'header Authorization \"Bearer {file./run/secrets/token}\"'")
		}
		if dc.Headers == nil {
			dc.Headers = make(map[string][]string)
		}
		dc.Headers[args[0]] = append(dc.Headers[args[0]], args[1])
	case "filter":
		var expr string
		if expr, err = expressionArg(d); err == nil {
			dc.Filters = append(dc.Filters, expr)
		}
	case "transform":
		dc.Transform, err = expressionArg(d)
	case "transform_headers":
		dc.TransformHeaders, err = expressionArg(d)
	case "breaker":
		err = dc.parseBreaker(d)
	case "tls_ca":
		files := d.RemainingArgs()
		if len(files) == 0 {
			return d.Errf("tls_ca: want one or more PEM files of the CAs to trust")
		}
		dc.tls().CA = append(dc.tls().CA, files...)
	case "tls_client_auth":
		args := d.RemainingArgs()
		if len(args) != 2 {
			return d.Errf("tls_client_auth: want '<cert file> <key file>' (PEM)")
		}
		dc.tls().ClientCert, dc.tls().ClientKey = args[0], args[1]
	case "tls_server_name":
		dc.tls().ServerName, err = oneArg(d)
	default:
		return d.Errf("destination %q: unrecognized subdirective %q", dc.Name, d.Val())
	}
	return err
}

// tls returns the destination's TLS settings, making them on first use.
func (dc *DestinationConfig) tls() *DestinationTLS {
	if dc.TLS == nil {
		dc.TLS = &DestinationTLS{}
	}
	return dc.TLS
}

// parseRate reads "rate <n>/<window> [burst <n>]", the rate syntax of
// sources (parseRateArgs).
func (dc *DestinationConfig) parseRate(d *caddyfile.Dispenser) error {
	rl, err := parseRateLimit(d, false)
	if err != nil {
		return err
	}
	dc.RateEvents, dc.RateWindow, dc.Burst = rl.Events, rl.Window, rl.Burst
	return nil
}

// rateLimit is the destination's rate in the one shape of a rate, or nil.
func (dc *DestinationConfig) rateLimit() *RateLimit {
	if dc.RateEvents <= 0 {
		return nil
	}
	return &RateLimit{Events: dc.RateEvents, Window: dc.RateWindow, Burst: dc.Burst}
}

// parseBreaker reads "breaker off" or
// "breaker [<failures>] [ratio <f>] [window <d>] [min <n>] [cooldown <d>]".
func (dc *DestinationConfig) parseBreaker(d *caddyfile.Dispenser) error {
	args := d.RemainingArgs()
	b := &BreakerConfig{}
	dc.Breaker = b
	if len(args) == 1 && args[0] == "off" {
		b.Off = true
		return nil
	}
	if len(args) == 0 {
		return d.Errf("breaker: want 'off' or '[<failures>] [ratio <fraction>] [window <duration>] [min <n>] [cooldown <duration>]'")
	}
	if n, err := strconv.Atoi(args[0]); err == nil {
		if n < 1 {
			return d.Errf("breaker: failures %d must be above 0", n)
		}
		b.Failures = n
		args = args[1:]
	}
	for len(args) > 0 {
		if len(args) < 2 {
			return d.Errf("breaker: %q needs a value", args[0])
		}
		key, val := args[0], args[1]
		args = args[2:]
		var err error
		switch key {
		case "ratio":
			b.Ratio, err = strconv.ParseFloat(strings.TrimSuffix(val, "%"), 64)
			if strings.HasSuffix(val, "%") {
				b.Ratio /= 100
			}
			if err != nil || b.Ratio <= 0 || b.Ratio > 1 {
				return d.Errf("breaker: ratio %q must be a fraction in (0, 1], e.g. 0.5 or 50%%", val)
			}
		case "window":
			b.Window, err = parseDuration(d, "breaker window", val)
		case "cooldown":
			b.Cooldown, err = parseDuration(d, "breaker cooldown", val)
		case "min":
			b.MinRequests, err = strconv.Atoi(val)
			if err != nil || b.MinRequests < 1 {
				return d.Errf("breaker: min %q must be a whole number above 0", val)
			}
		default:
			return d.Errf("breaker: unknown setting %q; want ratio, window, min or cooldown", key)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// expressionArg reads a CEL expression: one token, in backticks when it
// holds spaces or quotes, as with Caddy's own expression matcher.
func expressionArg(d *caddyfile.Dispenser) (string, error) {
	name := d.Val()
	args := d.RemainingArgs()
	if len(args) != 1 {
		return "", d.Errf("%s: want one CEL expression, in backticks when it holds spaces: %s `type.startsWith(\"invoice.\")`", name, name)
	}
	return args[0], nil
}

func intArg(d *caddyfile.Dispenser) (int, error) {
	name := d.Val()
	s, err := oneArg(d)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, d.Errf("%s %q: want a whole number above 0", name, s)
	}
	return n, nil
}

func parseDuration(d *caddyfile.Dispenser, what, s string) (caddy.Duration, error) {
	v, err := caddy.ParseDuration(s)
	if err != nil || v <= 0 {
		return 0, d.Errf("%s %q: want a positive duration such as 500ms, 30s or 2h", what, s)
	}
	return caddy.Duration(v), nil
}

// forwarderConfig resolves placeholders ({env.X}, {file.X}) in the URL and
// the signing secret and returns the forwarder's config. The app calls
// forwarder.Config.Validate on the result.
func (dc *DestinationConfig) forwarderConfig(repl *caddy.Replacer) (forwarder.Config, error) {
	u, err := repl.ReplaceOrErr(dc.URL, true, true)
	if err != nil {
		return forwarder.Config{}, fmt.Errorf("url: %w", err)
	}
	fc := forwarder.Config{
		Name:             dc.Name,
		URL:              u,
		Subjects:         dc.Subjects,
		Timeout:          time.Duration(dc.Timeout),
		MaxAttempts:      dc.MaxAttempts,
		MaxAge:           time.Duration(dc.MaxAge),
		BackoffBase:      time.Duration(dc.BackoffBase),
		BackoffCap:       time.Duration(dc.BackoffCap),
		RetryAfterCap:    time.Duration(dc.RetryAfterCap),
		On4xx:            forwarder.On4xx(dc.On4xx),
		Burst:            dc.Burst,
		Concurrency:      dc.Concurrency,
		OrderedBy:        dc.OrderedBy,
		Filters:          dc.Filters,
		Transform:        dc.Transform,
		TransformHeaders: dc.TransformHeaders,
	}
	for _, s := range dc.Schedule {
		fc.Schedule = append(fc.Schedule, time.Duration(s))
	}
	if fc.Headers, err = dc.headers(repl); err != nil {
		return forwarder.Config{}, err
	}
	if rl := dc.rateLimit(); rl != nil {
		limit, burst, err := rl.limit()
		if err != nil {
			return forwarder.Config{}, err
		}
		fc.Rate, fc.Burst = float64(limit), burst
	}
	if dc.Sign != nil {
		if dc.Sign.Scheme != "standard-webhooks" {
			return forwarder.Config{}, fmt.Errorf("sign: scheme %q: only standard-webhooks is supported", dc.Sign.Scheme)
		}
		// Not named in the error: the resolved value is the secret.
		secret, err := repl.ReplaceOrErr(dc.Sign.Secret, true, true)
		if err != nil {
			return forwarder.Config{}, fmt.Errorf("sign: secret placeholder: %w", err)
		}
		fc.SignSecret = secret
	}
	if b := dc.Breaker; b != nil {
		fc.Breaker = forwarder.BreakerConfig{
			Disabled:    b.Off,
			Failures:    b.Failures,
			Ratio:       b.Ratio,
			Window:      time.Duration(b.Window),
			MinRequests: b.MinRequests,
			Cooldown:    time.Duration(b.Cooldown),
		}
		if b.Ratio > 0 && b.Failures == 0 {
			// Only the ratio was asked for: no consecutive-failure trigger.
			fc.Breaker.Failures = -1
		}
	}
	if dc.TLS != nil {
		if fc.TLS, err = dc.TLS.config(repl); err != nil {
			return forwarder.Config{}, err
		}
	}
	return fc, nil
}

// headers resolves the placeholders in the configured header values. An
// error names the header and the placeholder, never a resolved value.
func (dc *DestinationConfig) headers(repl *caddy.Replacer) (http.Header, error) {
	if len(dc.Headers) == 0 {
		return nil, nil
	}
	h := make(http.Header, len(dc.Headers))
	for name, vals := range dc.Headers {
		for _, v := range vals {
			resolved, err := repl.ReplaceOrErr(v, true, true)
			if err != nil {
				return nil, fmt.Errorf("header %s: value placeholder: %w", name, err)
			}
			h[name] = append(h[name], resolved)
		}
	}
	return h, nil
}

// config reads the files and returns the client TLS config.
func (t *DestinationTLS) config(repl *caddy.Replacer) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	file := func(what, name string) ([]byte, error) {
		path, err := repl.ReplaceOrErr(name, true, true)
		if err != nil {
			return nil, fmt.Errorf("%s %q: %w", what, name, err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		return b, nil
	}
	if len(t.CA) > 0 {
		c.RootCAs = x509.NewCertPool()
		for _, name := range t.CA {
			b, err := file("tls_ca", name)
			if err != nil {
				return nil, err
			}
			if !c.RootCAs.AppendCertsFromPEM(b) {
				return nil, fmt.Errorf("tls_ca %s: no PEM certificate in it", name)
			}
		}
	}
	if t.ClientCert != "" || t.ClientKey != "" {
		cert, err := file("tls_client_auth certificate", t.ClientCert)
		if err != nil {
			return nil, err
		}
		key, err := file("tls_client_auth key", t.ClientKey)
		if err != nil {
			return nil, err
		}
		pair, err := tls.X509KeyPair(cert, key)
		if err != nil {
			// X509KeyPair's error is about PEM blocks; name the files.
			return nil, fmt.Errorf("tls_client_auth %s %s: not a matching PEM certificate and key", t.ClientCert, t.ClientKey)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c, nil
}
