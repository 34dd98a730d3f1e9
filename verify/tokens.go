package verify

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// Providers that sign nothing but send a shared token the receiver set up
// (a header value, HTTP basic credentials, a clientState) are verified by
// comparing that token, in constant time, with every active secret.

func init() {
	Register("okta", newOkta)
	Register("msgraph", newMSGraph)
	Register("postmark", newPostmark)
}

// tokenRing holds the accepted tokens.
type tokenRing [][]byte

// match reports whether got equals any token.
func (t tokenRing) match(got string) bool {
	ok := false
	for _, want := range t {
		ok = tokenEqual(got, want) || ok
	}
	return ok
}

// --- Okta -------------------------------------------------------------------

// okta verifies Okta event hooks
// (developer.okta.com/docs/concepts/event-hooks): Okta signs nothing; it
// sends the header the hook was set up with (option header, default
// Authorization) holding the configured secret value, which is the secret
// here. The one-time verification is a GET with
// X-Okta-Verification-Challenge, answered {"verification": <its value>}
// (200, application/json), and refused when the header secret is wrong.
// The delivery id is the body's "eventId", the type the first event's
// "eventType" (user.session.start...).
//
// Option header: the authentication header name set on the hook.
type okta struct {
	tokens tokenRing
	header string
}

func newOkta(c Config) (Verifier, error) {
	if _, err := checkConfig(c, "header"); err != nil {
		return nil, err
	}
	return &okta{rawKeys(c.Secrets), orDefault(c.Options["header"], "Authorization")}, nil
}

// HandshakeGET implements GetHandshaker.
func (o *okta) HandshakeGET() bool { return true }

// Verify implements Verifier.
func (o *okta) Verify(r *Request) (Result, error) {
	got := r.Header.Get(o.header)
	switch {
	case got == "":
		return Result{}, fail("okta", ErrMissing, "no %s header", o.header)
	case !o.tokens.match(got):
		return Result{}, fail("okta", ErrMismatch, "%s matches none of %d secret(s)", o.header, len(o.tokens))
	}
	if r.Method != http.MethodGet {
		return Result{ID: text(field(r.Body, "eventId")), Type: text(field(r.Body, "data.events.0.eventType"))}, nil
	}
	challenge := r.Header.Get("X-Okta-Verification-Challenge")
	switch {
	case challenge == "":
		return Result{}, fail("okta", ErrMissing, "GET without X-Okta-Verification-Challenge: only Okta's verification may GET this source")
	case len(challenge) > maxChallenge:
		return Result{}, fail("okta", ErrMalformed, "X-Okta-Verification-Challenge is over %d bytes", maxChallenge)
	}
	return Result{Type: "verification", Handshake: jsonHandshake(http.StatusOK, map[string]string{"verification": challenge})}, nil
}

// Sign implements Signer: it sets the authentication header.
func (o *okta) Sign(r *Request) error {
	headers(r).Set(o.header, string(o.tokens[0]))
	return nil
}

// --- Microsoft Graph ----------------------------------------------------------

// msgraph verifies Microsoft Graph change notifications
// (learn.microsoft.com/graph/change-notifications-delivery-webhooks): Graph
// signs nothing; each notification in the body's "value" array carries the
// clientState given when the subscription was made, which is the secret
// here; every one must match. The validation request is a POST with
// ?validationToken=...: the answer echoes the token as text/plain (200),
// which Graph wants within 10 seconds. The type is the first
// notification's changeType (or lifecycleEvent), the id its "id" when
// Graph sends one (rich notifications). No options.
type msgraph struct{ tokens tokenRing }

func newMSGraph(c Config) (Verifier, error) {
	if _, err := checkConfig(c); err != nil {
		return nil, err
	}
	return &msgraph{rawKeys(c.Secrets)}, nil
}

// Verify implements Verifier.
func (m *msgraph) Verify(r *Request) (Result, error) {
	if token := query(r).Get("validationToken"); token != "" {
		if len(token) > maxChallenge {
			return Result{}, fail("msgraph", ErrMalformed, "validationToken is over %d bytes", maxChallenge)
		}
		return Result{Type: "validation", Handshake: textHandshake(token)}, nil
	}
	value := fields(r.Body, "value")[0]
	n, bad := 0, 0
	if !eachElement(value, func(v []byte) {
		n++
		if state := text(fields(v, "clientState")[0]); state == "" || !m.tokens.match(state) {
			bad++
		}
	}) || n == 0 {
		return Result{}, fail("msgraph", ErrMissing, "the body has no \"value\" array of notifications")
	}
	if bad > 0 {
		return Result{}, fail("msgraph", ErrMismatch, "%d of %d notifications carry a clientState matching none of %d secret(s)", bad, n, len(m.tokens))
	}
	first := field(r.Body, "value.0")
	f := fields(first, "id", "changeType", "lifecycleEvent")
	res := Result{ID: text(f[0]), Type: text(f[1])}
	if res.Type == "" {
		res.Type = text(f[2])
	}
	return res, nil
}

// Sign implements Signer, rewriting r.Body as Graph would send it: a body
// with a "value" array gets the clientState set in each notification; any
// other JSON object becomes the one notification of a new "value" array.
func (m *msgraph) Sign(r *Request) error {
	var envelope map[string]json.RawMessage
	var notes []map[string]any
	if json.Unmarshal(r.Body, &envelope) == nil && envelope["value"] != nil {
		if err := json.Unmarshal(envelope["value"], &notes); err != nil {
			return fail("msgraph", ErrMalformed, "\"value\" is not an array of objects: %v", err)
		}
	} else {
		var one map[string]any
		if err := json.Unmarshal(r.Body, &one); err != nil {
			return fail("msgraph", ErrMalformed, "the body is not a JSON object: %v", err)
		}
		envelope, notes = map[string]json.RawMessage{}, []map[string]any{one}
	}
	for _, n := range notes {
		n["clientState"] = string(m.tokens[0])
	}
	envelope["value"], _ = json.Marshal(notes)
	body, err := json.Marshal(envelope)
	if err != nil {
		return fail("msgraph", ErrMalformed, "re-encoding the body: %v", err)
	}
	r.Body = body
	headers(r).Set("Content-Type", "application/json")
	return nil
}

// --- Postmark -------------------------------------------------------------------

// postmark verifies Postmark webhooks (postmarkapp.com/developer/webhooks):
// Postmark signs nothing. Protect the URL with HTTP basic credentials
// (https://user:password@host/... as the webhook URL in Postmark): the
// secret is "user:password" and the Authorization header must carry it.
// Postmark also documents the IP addresses it sends from: add them to the
// source's allow_ips. The delivery id is the body's "MessageID", the type
// its "RecordType" (Delivery, Bounce, Open...). No options.
type postmark struct{ tokens tokenRing }

func newPostmark(c Config) (Verifier, error) {
	if _, err := checkConfig(c); err != nil {
		return nil, err
	}
	for i, s := range c.Secrets {
		if !strings.Contains(s, ":") {
			return nil, fmt.Errorf("%w: scheme postmark: secret %d is not user:password (the basic credentials in the webhook URL)", ErrConfig, i+1)
		}
	}
	return &postmark{rawKeys(c.Secrets)}, nil
}

// Verify implements Verifier.
func (p *postmark) Verify(r *Request) (Result, error) {
	auth := r.Header.Get("Authorization")
	scheme, cred, ok := strings.Cut(auth, " ")
	switch {
	case auth == "":
		return Result{}, fail("postmark", ErrMissing, "no Authorization header: put user:password@ in the webhook URL set in Postmark")
	case !ok || !strings.EqualFold(scheme, "Basic"):
		return Result{}, fail("postmark", ErrMalformed, "Authorization is not Basic credentials")
	}
	plain, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
	if err != nil {
		return Result{}, fail("postmark", ErrMalformed, "Authorization Basic credentials are not base64")
	}
	if !p.tokens.match(string(plain)) {
		return Result{}, fail("postmark", ErrMismatch, "basic credentials match none of %d secret(s)", len(p.tokens))
	}
	f := fields(r.Body, "MessageID", "RecordType")
	return Result{ID: text(f[0]), Type: text(f[1])}, nil
}

// Sign implements Signer: it sets the basic credentials.
func (p *postmark) Sign(r *Request) error {
	headers(r).Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString(p.tokens[0]))
	return nil
}

var (
	_ Verifier      = (*okta)(nil)
	_ Signer        = (*okta)(nil)
	_ GetHandshaker = (*okta)(nil)
	_ Verifier      = (*msgraph)(nil)
	_ Signer        = (*msgraph)(nil)
	_ Verifier      = (*postmark)(nil)
	_ Signer        = (*postmark)(nil)
)
