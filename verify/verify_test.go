package verify

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// schemeCase describes how to exercise one scheme in the shared tests.
type schemeCase struct {
	scheme string
	// secrets are the newest and an older active secret; signer secrets
	// are the same, as every scheme also accepts its private keys.
	newS, oldS, wrongS string
	options            map[string]string
	url                string
	body               string
	contentType        string
	// bodyBound is false where the provider signs no body (Mailgun signs
	// its timestamp and token, GitLab sends a token).
	bodyBound bool
	// timed is true where a timestamp is signed.
	timed bool
	// sigHeaders are the headers a missing-header test removes.
	sigHeaders []string
}

const (
	edPriv1 = discordSeed + discordPublic
	// RFC 8032 TEST 2 key pair, seed and public key.
	edPriv2 = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb" + "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"
	// RFC 8032 TEST 3 key pair.
	edPriv3 = "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7" + "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025"
)

var schemeCases = []schemeCase{
	{scheme: "github", newS: "new", oldS: "old", wrongS: "wrong", body: `{"action":"opened"}`, bodyBound: true, sigHeaders: []string{"X-Hub-Signature-256"}},
	{scheme: "stripe", newS: "whsec_new", oldS: "whsec_old", wrongS: "whsec_wrong", body: `{"id":"evt_1","type":"charge.succeeded"}`, bodyBound: true, timed: true, sigHeaders: []string{"Stripe-Signature"}},
	{scheme: "standard-webhooks", newS: "whsec_bmV3IHNlY3JldCBrZXkgMzIgYnl0ZXMgbG9uZyEh", oldS: "whsec_b2xkIHNlY3JldA==", wrongS: "whsec_d3Jvbmc=", body: `{"type":"user.created"}`, bodyBound: true, timed: true, sigHeaders: []string{"webhook-signature"}},
	{scheme: "standard-webhooks", newS: "whsk_" + swSeed, oldS: "whsk_T0xEU0lHTklOR0tFWURPTk9UVVNFVEhJU0ZPUkFOWSE=", wrongS: "whsk_V1JPTkdTSUdOSU5HS0VZRE9OT1RVU0VUSElTRk9SQSE=", body: `{"type":"user.created"}`, bodyBound: true, timed: true, sigHeaders: []string{"webhook-signature"}},
	{scheme: "svix", newS: "whsec_bmV3IHNlY3JldCBrZXkgMzIgYnl0ZXMgbG9uZyEh", oldS: "whsec_b2xkIHNlY3JldA==", wrongS: "whsec_d3Jvbmc=", body: `{"type":"email.sent"}`, bodyBound: true, timed: true, sigHeaders: []string{"svix-signature"}},
	{scheme: "slack", newS: "new", oldS: "old", wrongS: "wrong", body: `{"type":"event_callback","event_id":"Ev1","event":{"type":"message"}}`, bodyBound: true, timed: true, sigHeaders: []string{"X-Slack-Signature"}},
	{scheme: "shopify", newS: "new", oldS: "old", wrongS: "wrong", body: `{"id":1}`, bodyBound: true, sigHeaders: []string{"X-Shopify-Hmac-Sha256"}},
	{scheme: "twilio", newS: "new", oldS: "old", wrongS: "wrong", url: "https://hooks.example.com/webhooks/v1/twilio?x=1", body: "MessageSid=SM1&Body=hi+there", contentType: "application/x-www-form-urlencoded", bodyBound: true, sigHeaders: []string{"X-Twilio-Signature"}},
	{scheme: "twilio", newS: "new", oldS: "old", wrongS: "wrong", url: "https://hooks.example.com/webhooks/v1/twilio", body: `{"a":"b"}`, contentType: "application/json", bodyBound: true, sigHeaders: []string{"X-Twilio-Signature"}},
	{scheme: "paddle", newS: "pdl_new", oldS: "pdl_old", wrongS: "pdl_wrong", body: `{"event_id":"evt_1","event_type":"transaction.paid"}`, bodyBound: true, timed: true, sigHeaders: []string{"Paddle-Signature"}},
	{scheme: "square", newS: "new", oldS: "old", wrongS: "wrong", url: "https://hooks.example.com/webhooks/v1/square", body: `{"event_id":"e1","type":"payment.created"}`, bodyBound: true, sigHeaders: []string{"X-Square-Hmacsha256-Signature"}},
	{scheme: "hubspot", newS: "new", oldS: "old", wrongS: "wrong", url: "https://hooks.example.com/webhooks/v1/hubspot", body: `[{"eventId":1,"subscriptionType":"contact.creation"}]`, bodyBound: true, timed: true, sigHeaders: []string{"X-HubSpot-Signature-v3"}},
	{scheme: "hubspot", newS: "new", oldS: "old", wrongS: "wrong", options: map[string]string{"version": "v2"}, url: "https://hooks.example.com/webhooks/v1/hubspot", body: `[]`, bodyBound: true, sigHeaders: []string{"X-HubSpot-Signature"}},
	{scheme: "hubspot", newS: "new", oldS: "old", wrongS: "wrong", options: map[string]string{"version": "v1"}, body: `[]`, bodyBound: true, sigHeaders: []string{"X-HubSpot-Signature"}},
	{scheme: "mailgun", newS: "new", oldS: "old", wrongS: "wrong", body: `{"event":"delivered","id":"m1"}`, contentType: "application/json", timed: true},
	{scheme: "mailgun", newS: "new", oldS: "old", wrongS: "wrong", body: `event=delivered`, contentType: "application/x-www-form-urlencoded", timed: true},
	{scheme: "discord", newS: edPriv1, oldS: edPriv2, wrongS: edPriv3, body: `{"id":"1","type":2,"token":"t"}`, bodyBound: true, timed: true, sigHeaders: []string{"X-Signature-Ed25519"}},
	{scheme: "gitlab", newS: "new", oldS: "old", wrongS: "wrong", body: `{"object_kind":"push"}`, sigHeaders: []string{"X-Gitlab-Token"}},
	{scheme: "hmac", newS: "new", oldS: "old", wrongS: "wrong", options: map[string]string{"header": "X-Signature", "prefix": "sha256="}, body: "anything", bodyBound: true, sigHeaders: []string{"X-Signature"}},
	{scheme: "hmac", newS: "new", oldS: "old", wrongS: "wrong", options: map[string]string{"header": "X-Signature", "algorithm": "sha512", "encoding": "base64", "timestamp_header": "X-Timestamp"}, body: "anything", bodyBound: true, timed: true, sigHeaders: []string{"X-Signature"}},
}

var signedAt = unix(1750000000)

func (c schemeCase) name() string {
	n := c.scheme
	for _, k := range []string{"version", "algorithm"} {
		if v := c.options[k]; v != "" {
			n += "-" + v
		}
	}
	if strings.HasPrefix(c.newS, "whsk_") {
		n += "-v1a"
	}
	if c.contentType != "" {
		n += "-" + c.contentType[strings.IndexByte(c.contentType, '/')+1:]
	}
	return n
}

func (c schemeCase) config(secrets ...string) Config {
	return Config{Scheme: c.scheme, Secrets: secrets, Options: c.options}
}

// signed returns a request signed with secret at now.
func (c schemeCase) signed(t testing.TB, secret string, now time.Time) *Request {
	t.Helper()
	r, err := c.trySigned(secret, now)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// trySigned returns a request signed with secret at now, or why not.
func (c schemeCase) trySigned(secret string, now time.Time) (*Request, error) {
	s, err := NewSigner(c.config(secret))
	if err != nil {
		return nil, err
	}
	r := &Request{Method: http.MethodPost, Header: http.Header{}, Body: []byte(c.body), Now: now}
	if c.contentType != "" {
		r.Header.Set("Content-Type", c.contentType)
	}
	if c.url != "" {
		r.URL, _ = url.Parse(c.url)
	}
	return r, s.Sign(r)
}

func TestSchemesRegistered(t *testing.T) {
	want := []string{"bitbucket", "brex", "calendly", "clerk", "coinbase-commerce", "discord", "dropbox", "gitea", "github", "gitlab",
		"gocardless", "hmac", "hubspot", "instagram", "intercom", "jira", "lemon-squeezy", "linear", "mailgun", "meta", "msgraph", "mux",
		"none", "okta", "openai", "paddle", "pagerduty", "plaid", "postmark", "razorpay", "replicate", "resend", "segment", "sendgrid", "sentry",
		"shopify", "slack", "square", "standard-webhooks", "stripe", "svix", "twilio", "twitter", "typeform", "vercel", "whatsapp",
		"woocommerce", "x", "zoom"}
	if got := Schemes(); !slices.Equal(got, want) {
		t.Fatalf("Schemes() = %v, want %v", got, want)
	}
	for _, c := range schemeCases {
		want = slices.DeleteFunc(want, func(s string) bool { return s == c.scheme })
	}
	if len(want) != 1 || want[0] != "none" {
		t.Fatalf("schemes without a shared test case: %v", want)
	}
}

func TestRoundTripAndRotation(t *testing.T) {
	for _, c := range schemeCases {
		t.Run(c.name(), func(t *testing.T) {
			v := mustNew(t, c.config(c.newS, c.oldS))
			for _, secret := range []string{c.newS, c.oldS} {
				r := c.signed(t, secret, signedAt)
				if _, err := v.Verify(r); err != nil {
					t.Fatalf("signed with secret %d: %v", slices.Index([]string{c.newS, c.oldS}, secret)+1, err)
				}
				// Verify must not change the request.
				before := r.Header.Clone()
				_, _ = v.Verify(r)
				if !headersEqual(before, r.Header) {
					t.Fatal("Verify changed the headers")
				}
			}
			// Rotated out: the old secret alone no longer verifies the new signature.
			reject(t, mustNew(t, c.config(c.oldS)), c.signed(t, c.newS, signedAt), ErrMismatch)
		})
	}
}

func headersEqual(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

func TestNegatives(t *testing.T) {
	for _, c := range schemeCases {
		t.Run(c.name(), func(t *testing.T) {
			v := mustNew(t, c.config(c.newS, c.oldS))
			secrets := []string{c.newS, c.oldS, c.wrongS}

			err := reject(t, v, c.signed(t, c.wrongS, signedAt), ErrMismatch)
			noSecretIn(t, err, secrets...)

			if c.bodyBound {
				r := c.signed(t, c.newS, signedAt)
				r.Body = append([]byte(nil), r.Body...)
				r.Body[len(r.Body)/2] ^= 1
				err := reject(t, v, r, ErrMismatch)
				noSecretIn(t, err, secrets...)
			}

			if c.timed {
				tol := SchemeTolerance(c.scheme)
				r := c.signed(t, c.newS, signedAt)
				r.Now = signedAt.Add(tol + time.Second)
				err := reject(t, v, r, ErrExpired)
				if !strings.Contains(err.Error(), "in the past") {
					t.Errorf("stale: %v", err)
				}
				r.Now = signedAt.Add(-tol - time.Second)
				err = reject(t, v, r, ErrExpired)
				if !strings.Contains(err.Error(), "in the future") {
					t.Errorf("future: %v", err)
				}
				r.Now = signedAt.Add(tol - time.Second)
				if _, err := v.Verify(r); err != nil {
					t.Errorf("inside the tolerance: %v", err)
				}
				// A wider tolerance admits what the default refuses.
				wide := c.config(c.newS)
				wide.Tolerance = time.Hour
				r.Now = signedAt.Add(30 * time.Minute)
				if _, err := mustNew(t, wide).Verify(r); err != nil {
					t.Errorf("tolerance 1h: %v", err)
				}
			}

			r := c.signed(t, c.newS, signedAt)
			for _, h := range c.sigHeaders {
				r.Header.Del(h)
			}
			if len(c.sigHeaders) == 0 {
				r.Body = []byte(c.body) // the signature or token is in the body
			}
			reject(t, v, r, ErrMissing)

			r = c.signed(t, c.newS, signedAt)
			r.Header, r.Body = nil, nil
			if _, err := v.Verify(r); err == nil {
				t.Fatal("empty request accepted")
			}
		})
	}
}

func TestMalformedHeaders(t *testing.T) {
	for _, c := range schemeCases {
		if len(c.sigHeaders) == 0 {
			continue
		}
		t.Run(c.name(), func(t *testing.T) {
			v := mustNew(t, c.config(c.newS))
			for _, junk := range []string{"%%%", "=", ",,,", "sha256=", "v1,", "ts=;h1=", "t=1,v1=zz", strings.Repeat("a,", 10000)} {
				r := c.signed(t, c.newS, signedAt)
				r.Header.Set(c.sigHeaders[0], junk)
				_, err := v.Verify(r)
				if err == nil {
					t.Fatalf("header %q accepted", junk)
				}
				if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrMismatch) && !errors.Is(err, ErrExpired) {
					t.Fatalf("header %q: %v wraps none of ErrMalformed, ErrMismatch, ErrExpired", junk, err)
				}
				if len(err.Error()) > 300 {
					t.Fatalf("error text of %d bytes: %.100s...", len(err.Error()), err)
				}
			}
		})
	}
}

func TestCrossScheme(t *testing.T) {
	// A delivery signed for one scheme never verifies under another, even
	// with the same secret and body. Svix reads the webhook-* headers of
	// the Standard Webhooks scheme on purpose, so that pair is left out.
	tried := 0
	for _, a := range schemeCases {
		for _, b := range schemeCases {
			if a.scheme == b.scheme || a.newS != b.newS || a.scheme+b.scheme == "standard-webhookssvix" {
				continue
			}
			mixed := a
			mixed.body, mixed.contentType = b.body, b.contentType
			if mixed.url == "" {
				mixed.url = b.url
			}
			r, err := mixed.trySigned(a.newS, signedAt)
			if err != nil {
				continue // a cannot sign b's body (Mailgun needs JSON or a form)
			}
			if res, err := mustNew(t, b.config(b.newS)).Verify(r); err == nil {
				t.Errorf("signed for %s, verified by %s (%+v)", a.name(), b.name(), res)
			}
			tried++
		}
	}
	if tried < 150 {
		t.Fatalf("only %d pairs tried", tried)
	}
}

func TestErrorTexts(t *testing.T) {
	// What an operator reads: scheme, sentinel, then which check and why.
	v := Must(Stripe("whsec_x"))
	_, err := v.Verify(request("{}", unix(0)))
	if got, want := err.Error(), "stripe: signature missing: no Stripe-Signature header"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	_, err = v.Verify(request("{}", unix(0), "Stripe-Signature", "t=0,v1=00"))
	if got, want := err.Error(), "stripe: signature mismatch: 1 signature match none of 1 secret(s)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	_, err = v.Verify(request("{}", unix(0), "Stripe-Signature", "t=12a,v1=00"))
	if got, want := err.Error(), `stripe: signature malformed: Stripe-Signature t= timestamp "12a" is not a Unix time`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestConfigErrors(t *testing.T) {
	many := make([]string, MaxSecrets+1)
	for i := range many {
		many[i] = "s"
	}
	for _, scheme := range Schemes() {
		if scheme == "none" {
			continue
		}
		for name, c := range map[string]Config{
			"no secret":          {},
			"empty secret":       {Secrets: []string{"s", ""}},
			"too many secrets":   {Secrets: many},
			"unknown option":     {Secrets: []string{"s"}, Options: map[string]string{"colour": "blue"}},
			"negative tolerance": {Secrets: []string{"s"}, Tolerance: -time.Second},
		} {
			c.Scheme = scheme
			if scheme == "hmac" && c.Options == nil {
				c.Options = map[string]string{"header": "X"}
			}
			if _, err := New(c); !errors.Is(err, ErrConfig) {
				t.Errorf("%s, %s: error %v, want ErrConfig", scheme, name, err)
			}
		}
	}
	if _, err := New(Config{Scheme: "nope"}); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "stripe") {
		t.Errorf("unknown scheme: %v", err)
	}
	if _, err := New(Config{Scheme: "none", Secrets: []string{"s"}}); !errors.Is(err, ErrConfig) {
		t.Errorf("none with a secret: %v", err)
	}
}

func TestNoneSigns(t *testing.T) {
	s, err := NewSigner(Config{Scheme: "none"})
	if err != nil {
		t.Fatal(err)
	}
	r := request("x", unix(0))
	if err := s.Sign(r); err != nil || len(r.Header) != 0 {
		t.Fatalf("none signed: %v %v", err, r.Header)
	}
	accept(t, None(), r, Result{})
}

func TestMustPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("Must did not panic")
		}
	}()
	Must(Stripe())
}

func TestSignerKeepsCallerIDs(t *testing.T) {
	for scheme, h := range map[string]string{"github": "X-GitHub-Delivery", "standard-webhooks": "webhook-id", "shopify": "X-Shopify-Webhook-Id", "gitlab": "X-Gitlab-Event-UUID"} {
		secret := "s"
		if scheme == "standard-webhooks" {
			secret = swSecret
		}
		s, err := NewSigner(Config{Scheme: scheme, Secrets: []string{secret}})
		if err != nil {
			t.Fatal(err)
		}
		r := request("{}", signedAt, h, "mine")
		if err := s.Sign(r); err != nil {
			t.Fatal(err)
		}
		res, err := mustNew(t, Config{Scheme: scheme, Secrets: []string{secret}}).Verify(r)
		if err != nil || res.ID != "mine" {
			t.Errorf("%s: id %q, err %v", scheme, res.ID, err)
		}
		r = request("{}", signedAt)
		_ = s.Sign(r)
		if r.Header.Get(h) == "" {
			t.Errorf("%s: no %s made", scheme, h)
		}
	}
}
