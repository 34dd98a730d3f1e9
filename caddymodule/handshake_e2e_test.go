package caddymodule

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hookgate/hookgate/event"
	"github.com/hookgate/hookgate/verify"
)

// Secrets of the providers added for issue 16, for the end-to-end tests.
// sendgridPrivate is the P-256 test key of sendgrid-go's
// helpers/eventwebhook/eventwebhook_test.go (base64 SEC 1 DER): a private
// key also verifies, so one verify line serves the signer and the gateway.
const sendgridPrivate = "MHcCAQEEIEQmZgBEh9DcU9zMl34czK3xov4AYvm9P3r7rNB2dNXtoAoGCCqGSM49AwEHoUQDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA=="

// tokenTamper spoils the token a token scheme sends in header name.
func tokenTamper(name string) func(http.Header, []byte) []byte {
	return func(h http.Header, body []byte) []byte {
		h.Set(name, h.Get(name)+"-wrong")
		return body
	}
}

// The signed-delivery test (verify_e2e_test.go) wants a case per scheme;
// these are the cases of issue 16's providers.
func init() {
	whsec := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	for scheme, c := range map[string]schemeCase{
		"zoom": {secret: "zoom-secret"}, "twitter": {secret: "x-secret"}, "x": {secret: "x-secret"},
		"meta": {secret: "meta-app-secret"}, "whatsapp": {secret: "meta-app-secret"}, "instagram": {secret: "meta-app-secret"},
		"dropbox": {secret: "dropbox-app-secret"}, "linear": {secret: "linear-secret"}, "intercom": {secret: "intercom-secret"},
		"typeform": {secret: "typeform-secret"}, "pagerduty": {secret: "pd-secret"}, "razorpay": {secret: "rzp-secret"},
		"gocardless": {secret: "gc-secret"}, "coinbase-commerce": {secret: "cc-secret"}, "vercel": {secret: "vercel-secret"},
		"sentry": {secret: "sentry-secret"}, "bitbucket": {secret: "bb-secret"}, "jira": {secret: "jira-secret"},
		"segment": {secret: "segment-secret"}, "lemon-squeezy": {secret: "ls-secret"}, "gitea": {secret: "gitea-secret"},
		"woocommerce": {secret: "wc-secret"}, "mux": {secret: "mux-secret"}, "calendly": {secret: "calendly-secret"},
		"sendgrid": {secret: sendgridPrivate}, "plaid": {secret: "k1:" + sendgridPrivate},
		"clerk": {secret: whsec}, "resend": {secret: whsec}, "brex": {secret: whsec}, "openai": {secret: whsec}, "replicate": {secret: whsec},
		"okta":     {secret: "Bearer okta-secret", tamper: tokenTamper("Authorization")},
		"postmark": {secret: "hook:pass", tamper: tokenTamper("Authorization")},
		"msgraph": {secret: "graph-client-state", tamper: func(_ http.Header, body []byte) []byte {
			return bytes.Replace(body, []byte(`"clientState":"graph-client-state"`), []byte(`"clientState":"guess"`), 1)
		}},
	} {
		schemeCases[scheme] = c
	}
}

// handshakeSources are the sources of the handshake test, one per
// provider handshake.
const handshakeSources = `
		source zoom {
			verify zoom zoom-secret
		}
		source x {
			verify x x-secret
		}
		source meta {
			verify meta meta-app-secret {
				verify_token my-verify-token
			}
		}
		source dropbox {
			verify dropbox dropbox-app-secret
		}
		source msgraph {
			verify msgraph graph-client-state
		}
		source okta {
			verify okta "Bearer okta-secret"
		}
		source slack {
			verify slack slack-secret
		}
		source discord {
			verify discord ` + ed25519Hex + `
		}
		source github {
			verify github gh-secret
		}`

// handshakeE2E is one request of the handshake test and the answer the
// provider expects (or 401 for a forged one).
type handshakeE2E struct {
	name   string
	method string
	source string
	query  string
	header map[string]string
	body   string
	// sign signs with the source's scheme and secret; forge then spoils
	// the named signature header.
	sign   *verify.Config
	forge  string
	status int
	ctype  string
	// nosniff wants X-Content-Type-Options: nosniff.
	nosniff bool
	answer  string
}

const (
	// printf '%s' qgg8vlvZRS6UYooatFL8Aw | openssl dgst -sha256 -hmac zoom-secret
	zoomE2EEncrypted = "b17f0320a1322a509340a1a835b3d9edbc491f0b0790ed2d20d0604d39dfe922"
	// printf '%s' Y3JjLXRva2Vu | openssl dgst -sha256 -hmac x-secret -binary | base64
	xE2EResponse = "sha256=kaLV3v3BiKOyNURwpyGAdVXKDC7r6i9v5gnvr0w9rvc="
)

var handshakeE2ECases = []handshakeE2E{
	{name: "zoom url_validation", method: "POST", source: "zoom", body: `{"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event_ts":1654503849680,"event":"endpoint.url_validation"}`,
		sign: &verify.Config{Scheme: "zoom", Secrets: []string{"zoom-secret"}}, status: 200, ctype: "application/json",
		answer: `{"encryptedToken":"` + zoomE2EEncrypted + `","plainToken":"qgg8vlvZRS6UYooatFL8Aw"}`},
	{name: "zoom forged url_validation", method: "POST", source: "zoom", body: `{"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event":"endpoint.url_validation"}`,
		sign: &verify.Config{Scheme: "zoom", Secrets: []string{"zoom-secret"}}, forge: "x-zm-signature", status: 401},
	{name: "x crc", method: "GET", source: "x", query: "crc_token=Y3JjLXRva2Vu&nonce=MTY2", status: 200, ctype: "application/json",
		answer: `{"response_token":"` + xE2EResponse + `"}`},
	{name: "x crc shaped like a body", method: "GET", source: "x", query: "crc_token=" + url.QueryEscape(`{"a":1}`), status: 401},
	{name: "meta verification", method: "GET", source: "meta", query: "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=my-verify-token",
		status: 200, ctype: "text/plain", nosniff: true, answer: "1158201444"},
	{name: "meta wrong verify_token", method: "GET", source: "meta", query: "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=guess", status: 401},
	{name: "dropbox challenge", method: "GET", source: "dropbox", query: "challenge=AkXtPsH1XK7pk2e8", status: 200, ctype: "text/plain", nosniff: true, answer: "AkXtPsH1XK7pk2e8"},
	{name: "msgraph validation", method: "POST", source: "msgraph", query: "validationToken=" + url.QueryEscape("Validation: Testing client application reachability"),
		header: map[string]string{"Content-Type": "text/plain; charset=utf-8"}, status: 200, ctype: "text/plain", nosniff: true, answer: "Validation: Testing client application reachability"},
	{name: "okta verification", method: "GET", source: "okta", header: map[string]string{"Authorization": "Bearer okta-secret", "X-Okta-Verification-Challenge": "baBcahc2MA8gqz7yj14FcW0KP7u1r5R0KNGoYz64"},
		status: 200, ctype: "application/json", answer: `{"verification":"baBcahc2MA8gqz7yj14FcW0KP7u1r5R0KNGoYz64"}`},
	{name: "okta forged verification", method: "GET", source: "okta", header: map[string]string{"Authorization": "Bearer guess", "X-Okta-Verification-Challenge": "x"}, status: 401},
	{name: "slack url_verification", method: "POST", source: "slack", body: `{"token":"t","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}`,
		sign: &verify.Config{Scheme: "slack", Secrets: []string{"slack-secret"}}, status: 200, ctype: "application/json",
		answer: `{"challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}`},
	{name: "slack forged url_verification", method: "POST", source: "slack", body: `{"challenge":"c","type":"url_verification"}`,
		sign: &verify.Config{Scheme: "slack", Secrets: []string{"slack-secret"}}, forge: "X-Slack-Signature", status: 401},
	{name: "discord webhook events PING", method: "POST", source: "discord", body: `{"version":1,"application_id":"1","type":0}`,
		sign: &verify.Config{Scheme: "discord", Secrets: []string{ed25519Hex}}, status: 204},
	{name: "discord interaction PING", method: "POST", source: "discord", body: `{"id":"9","type":1,"token":"t","version":1}`,
		sign: &verify.Config{Scheme: "discord", Secrets: []string{ed25519Hex}}, status: 200, ctype: "application/json", answer: `{"type":1}`},
	{name: "discord forged PING", method: "POST", source: "discord", body: `{"version":1,"application_id":"1","type":0}`,
		sign: &verify.Config{Scheme: "discord", Secrets: []string{ed25519Hex}}, forge: "X-Signature-Ed25519", status: 401},
	// A GET to a source whose scheme has no GET handshake stays 405.
	{name: "GET on github", method: "GET", source: "github", query: "challenge=x", status: 405},
	{name: "GET on zoom", method: "GET", source: "zoom", query: "challenge=x", status: 405},
}

// request builds the case's HTTP request against g.
func (c handshakeE2E) request(t *testing.T, g *gateway) *http.Request {
	t.Helper()
	u, err := url.Parse(g.url("/webhooks/v1/" + c.source))
	if err != nil {
		t.Fatal(err)
	}
	u.RawQuery = c.query
	hdr := http.Header{}
	for k, v := range c.header {
		hdr.Set(k, v)
	}
	body := []byte(c.body)
	if c.sign != nil {
		s, err := verify.NewSigner(*c.sign)
		if err != nil {
			t.Fatal(err)
		}
		vr := &verify.Request{Method: c.method, URL: u, Header: hdr, Body: body, Now: time.Now()}
		if err := s.Sign(vr); err != nil {
			t.Fatal(err)
		}
		body = vr.Body
	}
	if c.forge != "" {
		v := hdr.Get(c.forge)
		hdr.Set(c.forge, v[:len(v)-8]+"00000000")
	}
	req, err := http.NewRequest(c.method, u.String(), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = hdr
	return req
}

// TestHandshakesEndToEnd sends every provider handshake to a real Caddy
// loaded from a Caddyfile: the exact status, Content-Type and body the
// provider expects; a forged handshake gets 401; a GET on a scheme without
// a GET handshake gets 405; nothing is ever stored.
func TestHandshakesEndToEnd(t *testing.T) {
	g := startGateway(t, gatewayConfig{Sources: handshakeSources})
	for _, c := range handshakeE2ECases {
		t.Run(c.name, func(t *testing.T) {
			resp, err := testClient.Do(c.request(t, g))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var b bytes.Buffer
			_, _ = b.ReadFrom(resp.Body)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d (body %s)", resp.StatusCode, c.status, b.Bytes())
			}
			if c.status >= 300 {
				return
			}
			if ct := resp.Header.Get("Content-Type"); c.ctype != "" && ct != c.ctype {
				t.Errorf("Content-Type %q, want %q", ct, c.ctype)
			}
			if c.nosniff && resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("X-Content-Type-Options %q, want nosniff", resp.Header.Get("X-Content-Type-Options"))
			}
			if got := b.String(); got != c.answer {
				t.Errorf("answer %q, want %q", got, c.answer)
			}
		})
	}
	if n := len(g.stored(event.StreamName)); n != 0 {
		t.Fatalf("%d events stored by handshakes", n)
	}
	// A signed event on a handshake source is still stored.
	s, err := verify.NewSigner(verify.Config{Scheme: "meta", Secrets: []string{"meta-app-secret"}})
	if err != nil {
		t.Fatal(err)
	}
	vr := &verify.Request{Method: "POST", Header: http.Header{}, Body: []byte(`{"object":"page","entry":[]}`)}
	if err := s.Sign(vr); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(g.url("/webhooks/v1/meta"))
	if status, b := postRaw(t, g, u, vr.Header, vr.Body); status != http.StatusOK {
		t.Fatalf("meta event: status %d %s", status, b)
	}
	if msgs := g.stored(event.StreamName); len(msgs) != 1 || !strings.HasSuffix(msgs[0].Subject, ".page") {
		t.Fatalf("stored %d events", len(msgs))
	}
}
