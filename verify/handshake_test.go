package verify

import (
	"net/http"
	"net/url"
	"testing"
)

// handshakeCase is one provider handshake, answered or refused. The
// expected answers were computed apart from this code (openssl dgst
// -hmac, see each case) or copied from the provider's documentation.
type handshakeCase struct {
	name    string
	scheme  string
	secrets []string
	options map[string]string
	method  string
	url     string
	header  map[string]string
	body    string
	// sign signs the request with the scheme's Signer first, and forge
	// then spoils the signature header named.
	sign  bool
	forge string
	// want is the answer; kind the error when refused.
	want     *Handshake
	wantType string
	kind     error
}

func jsonAnswer(body string) *Handshake {
	return &Handshake{Status: 200, Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(body)}
}

func textAnswer(body string) *Handshake {
	return &Handshake{Status: 200, Header: http.Header{"Content-Type": {"text/plain"}, "X-Content-Type-Options": {"nosniff"}}, Body: []byte(body)}
}

const (
	zoomSecret    = "zoom-secret-token"
	zoomPlain     = "qgg8vlvZRS6UYooatFL8Aw" // shaped like the plainToken of Zoom's "Validate your webhook endpoint" example
	zoomValidBody = `{"payload":{"plainToken":"` + zoomPlain + `"},"event_ts":1654503849680,"event":"endpoint.url_validation"}`
	// printf '%s' qgg8vlvZRS6UYooatFL8Aw | openssl dgst -sha256 -hmac zoom-secret-token
	zoomEncrypted = "d9e0d764a78494688ba3f2d5c0ed4ca311394b4834d959759213424d2df961e3"
	xSecret       = "x-consumer-secret"
	xCRC          = "d2VsY29tZSB0byBob29rZ2F0ZQ"
	// printf '%s' d2VsY29tZSB0byBob29rZ2F0ZQ | openssl dgst -sha256 -hmac x-consumer-secret -binary | base64
	xResponse = "sha256=N5sKW/ifoi/zvWMsT7gKt9lG4TNvACJhmbU2gH9nm/Y="
	// Shaped like the validationToken of Microsoft Graph's documentation
	// (learn.microsoft.com/graph/change-notifications-delivery-webhooks,
	// "Notification endpoint validation"); the request id is made up.
	graphToken = "Validation: Testing client application reachability for subscription Request-Id: 9b7a8ec4-6a19-4d4a-b4b6-ed6a0c2d2f10"
)

var handshakeCases = []handshakeCase{
	{name: "zoom url_validation", scheme: "zoom", secrets: []string{zoomSecret, "older"}, body: zoomValidBody, sign: true,
		want: jsonAnswer(`{"encryptedToken":"` + zoomEncrypted + `","plainToken":"` + zoomPlain + `"}`), wantType: "endpoint.url_validation"},
	{name: "zoom forged url_validation", scheme: "zoom", secrets: []string{zoomSecret}, body: zoomValidBody, sign: true, forge: "x-zm-signature", kind: ErrMismatch},
	{name: "zoom url_validation without plainToken", scheme: "zoom", secrets: []string{zoomSecret}, body: `{"event":"endpoint.url_validation","payload":{}}`, sign: true, kind: ErrMalformed},
	{name: "zoom unsigned url_validation", scheme: "zoom", secrets: []string{zoomSecret}, body: zoomValidBody, kind: ErrMissing},
	{name: "x crc", scheme: "x", secrets: []string{xSecret}, method: "GET", url: "https://h.example/webhooks/v1/x?crc_token=" + xCRC + "&nonce=MTY2",
		want: jsonAnswer(`{"response_token":"` + xResponse + `"}`), wantType: "crc"},
	{name: "twitter crc", scheme: "twitter", secrets: []string{xSecret}, method: "GET", url: "https://h.example/t?crc_token=" + xCRC,
		want: jsonAnswer(`{"response_token":"` + xResponse + `"}`), wantType: "crc"},
	{name: "x crc_token shaped like JSON", scheme: "x", secrets: []string{xSecret}, method: "GET", url: "https://h.example/t?crc_token=" + url.QueryEscape(`{"a":1}`), kind: ErrMalformed},
	{name: "x GET without crc_token", scheme: "x", secrets: []string{xSecret}, method: "GET", url: "https://h.example/t", kind: ErrMissing},
	{name: "meta verification", scheme: "meta", secrets: []string{"app-secret"}, options: map[string]string{"verify_token": "my-verify-token"}, method: "GET",
		url: "https://h.example/m?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=my-verify-token", want: textAnswer("1158201444"), wantType: "subscribe"},
	{name: "whatsapp verification", scheme: "whatsapp", secrets: []string{"app-secret"}, options: map[string]string{"verify_token": "t"}, method: "GET",
		url: "https://h.example/m?hub.mode=subscribe&hub.challenge=abc&hub.verify_token=t", want: textAnswer("abc"), wantType: "subscribe"},
	{name: "meta wrong verify_token", scheme: "meta", secrets: []string{"app-secret"}, options: map[string]string{"verify_token": "my-verify-token"}, method: "GET",
		url: "https://h.example/m?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=guess", kind: ErrMismatch},
	{name: "meta without verify_token option", scheme: "meta", secrets: []string{"app-secret"}, method: "GET",
		url: "https://h.example/m?hub.mode=subscribe&hub.challenge=1&hub.verify_token=x", kind: ErrConfig},
	{name: "meta GET that is no verification", scheme: "meta", secrets: []string{"app-secret"}, options: map[string]string{"verify_token": "t"}, method: "GET", url: "https://h.example/m", kind: ErrMissing},
	{name: "dropbox challenge", scheme: "dropbox", secrets: []string{"app-secret"}, method: "GET", url: "https://h.example/d?challenge=AkXtPsH1XK7pk2e8", want: textAnswer("AkXtPsH1XK7pk2e8"), wantType: "challenge"},
	{name: "dropbox GET without challenge", scheme: "dropbox", secrets: []string{"app-secret"}, method: "GET", url: "https://h.example/d", kind: ErrMissing},
	{name: "msgraph validation", scheme: "msgraph", secrets: []string{"client-state"}, url: "https://h.example/g?validationToken=" + url.QueryEscape(graphToken),
		header: map[string]string{"Content-Type": "text/plain; charset=utf-8"}, want: textAnswer(graphToken), wantType: "validation"},
	{name: "okta verification", scheme: "okta", secrets: []string{"Bearer okta-hook-secret"}, method: "GET",
		header: map[string]string{"Authorization": "Bearer okta-hook-secret", "X-Okta-Verification-Challenge": "baBcahc2MA8gqz7yj14FcW0KP7u1r5R0KNGoYz64"},
		want:   jsonAnswer(`{"verification":"baBcahc2MA8gqz7yj14FcW0KP7u1r5R0KNGoYz64"}`), wantType: "verification"},
	{name: "okta forged verification", scheme: "okta", secrets: []string{"Bearer okta-hook-secret"}, method: "GET",
		header: map[string]string{"Authorization": "Bearer guess", "X-Okta-Verification-Challenge": "x"}, kind: ErrMismatch},
	{name: "okta verification header custom", scheme: "okta", secrets: []string{"s3cret"}, options: map[string]string{"header": "X-Hook-Key"}, method: "GET",
		header: map[string]string{"X-Hook-Key": "s3cret", "X-Okta-Verification-Challenge": "c"}, want: jsonAnswer(`{"verification":"c"}`), wantType: "verification"},
	{name: "okta GET without challenge", scheme: "okta", secrets: []string{"s"}, method: "GET", header: map[string]string{"Authorization": "s"}, kind: ErrMissing},
	{name: "slack url_verification", scheme: "slack", secrets: []string{slackSecret}, body: `{"token":"x","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}`, sign: true,
		want: jsonAnswer(`{"challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}`), wantType: "url_verification"},
	{name: "slack forged url_verification", scheme: "slack", secrets: []string{slackSecret}, body: `{"challenge":"c","type":"url_verification"}`, sign: true, forge: "X-Slack-Signature", kind: ErrMismatch},
	{name: "discord webhook events PING", scheme: "discord", secrets: []string{discordSeed + discordPublic}, body: `{"version":1,"application_id":"11","type":0}`, sign: true,
		want: &Handshake{Status: 204, Header: http.Header{}}, wantType: "PING"},
	{name: "discord interaction PING", scheme: "discord", secrets: []string{discordSeed + discordPublic}, body: `{"id":"5","type":1,"token":"t","version":1}`, sign: true,
		want: jsonAnswer(`{"type":1}`), wantType: "PING"},
}

// request builds the case's request at signedAt, signed when asked.
func (c handshakeCase) request(t testing.TB) *Request {
	t.Helper()
	r := &Request{Method: c.method, Header: http.Header{}, Body: []byte(c.body), Now: signedAt}
	if r.Method == "" {
		r.Method = http.MethodPost
	}
	for k, v := range c.header {
		r.Header.Set(k, v)
	}
	if c.url != "" {
		r.URL, _ = url.Parse(c.url)
	}
	if c.sign {
		s, err := NewSigner(Config{Scheme: c.scheme, Secrets: c.secrets, Options: c.options})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Sign(r); err != nil {
			t.Fatal(err)
		}
	}
	if c.forge != "" {
		r.Header.Set(c.forge, "v0=00"+r.Header.Get(c.forge)[5:])
	}
	return r
}

// TestHandshakes answers every provider handshake exactly as the provider
// expects, and refuses a forged or malformed one.
func TestHandshakes(t *testing.T) {
	for _, c := range handshakeCases {
		t.Run(c.name, func(t *testing.T) {
			v := mustNew(t, Config{Scheme: c.scheme, Secrets: c.secrets, Options: c.options})
			r := c.request(t)
			if c.kind != nil {
				reject(t, v, r, c.kind)
				return
			}
			res, err := v.Verify(r)
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !sameHandshake(res.Handshake, c.want) || res.Type != c.wantType {
				t.Fatalf("got %q %s, want %q %s", res.Type, showHandshake(res.Handshake), c.wantType, showHandshake(c.want))
			}
		})
	}
}

// TestGetHandshakers: exactly the schemes whose handshake is a GET say so,
// and each refuses a GET that is not its handshake.
func TestGetHandshakers(t *testing.T) {
	want := map[string]bool{"twitter": true, "x": true, "meta": true, "whatsapp": true, "instagram": true, "dropbox": true, "okta": true}
	for _, c := range schemeCases {
		v := mustNew(t, c.config(c.newS))
		g, ok := v.(GetHandshaker)
		if got := ok && g.HandshakeGET(); got != want[c.scheme] {
			t.Errorf("%s: HandshakeGET %v, want %v", c.scheme, got, want[c.scheme])
		}
		if !want[c.scheme] {
			continue
		}
		r := c.signed(t, c.newS, signedAt)
		r.Method = http.MethodGet
		res, err := v.Verify(r)
		if err == nil || res.Handshake != nil {
			t.Errorf("%s: a signed GET that is no handshake got %+v, %v", c.scheme, res, err)
		}
	}
}

// TestNoHandshakeOnEvents: ordinary events carry no handshake answer.
func TestNoHandshakeOnEvents(t *testing.T) {
	for _, c := range schemeCases {
		r := c.signed(t, c.newS, signedAt)
		res, err := mustNew(t, c.config(c.newS)).Verify(r)
		if err != nil || res.Handshake != nil {
			t.Errorf("%s: %v, handshake %s", c.name(), err, showHandshake(res.Handshake))
		}
	}
}
