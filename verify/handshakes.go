package verify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
)

// The providers below answer a setup handshake before they send events.
// Each is a fixed form of the generic hmac scheme for its events, plus the
// handshake: the Result of a handshake request carries the answer
// (Result.Handshake) and the gateway stores nothing.

func init() {
	Register("zoom", newZoom)
	Register("twitter", newTwitter)
	Register("x", newTwitter)
	Register("meta", newMeta)
	Register("whatsapp", newMeta)
	Register("instagram", newMeta)
	Register("dropbox", newDropbox)
}

// maxChallenge bounds an echoed challenge or token: the providers' are
// under 100 bytes, and an echo must not turn the gateway into a reflector
// of arbitrary content.
const maxChallenge = 256

// --- Zoom ---------------------------------------------------------------

// zoom verifies Zoom webhooks (developers.zoom.us/docs/api/webhooks,
// "Verify webhook events"): x-zm-signature is "v0=" + hex HMAC-SHA256 of
// "v0:<x-zm-request-timestamp>:<body>" under the app's Secret Token; the
// type is the body's "event". Zoom's URL validation is a signed POST with
// event "endpoint.url_validation": its answer is {"plainToken": <the
// payload's plainToken>, "encryptedToken": hex HMAC-SHA256 of plainToken
// under the Secret Token} (200, application/json). No options.
type zoom struct{ *generic }

var zoomOptions = map[string]string{
	"header": "x-zm-signature", "prefix": "v0=", "timestamp_header": "x-zm-request-timestamp",
	"template": "v0:{timestamp}:{body}", "type_field": "event",
}

func newZoom(c Config) (Verifier, error) {
	tol, err := checkConfig(c)
	if err != nil {
		return nil, err
	}
	g, err := newGeneric("zoom", c.Secrets, tol, zoomOptions)
	return &zoom{g}, err
}

// Verify implements Verifier.
func (z *zoom) Verify(r *Request) (Result, error) {
	res, err := z.generic.Verify(r)
	if err != nil || res.Type != "endpoint.url_validation" {
		return res, err
	}
	plain := text(field(r.Body, "payload.plainToken"))
	if plain == "" || len(plain) > maxChallenge {
		return Result{}, fail("zoom", ErrMalformed, "endpoint.url_validation without a plainToken of 1-%d bytes", maxChallenge)
	}
	// Zoom's answer uses the newest secret, the one the app now has.
	enc := hex.EncodeToString(z.ring.mac(z.ring.keys[0], []byte(plain)))
	res.Handshake = jsonHandshake(http.StatusOK, map[string]string{"plainToken": plain, "encryptedToken": enc})
	return res, nil
}

// --- Twitter / X ----------------------------------------------------------

// twitter verifies X (Twitter) Account Activity webhooks
// (docs.x.com/x-api/webhooks/introduction, "Securing webhooks"):
// x-twitter-webhooks-signature is "sha256=" + base64 HMAC-SHA256 of the
// body under the app's consumer secret. The CRC check is a GET with
// crc_token (and nonce); its answer is {"response_token": "sha256=" +
// base64 HMAC-SHA256 of crc_token} (200, application/json). The type is
// the body's "..._events" key (tweet_create_events...). No options.
//
// X does not sign the CRC GET, and its answer is an HMAC under the same
// key that signs events, so it would be a signing oracle for any body an
// attacker passes as crc_token. Only tokens of 1-256 bytes of
// [A-Za-z0-9+/=_-] (X's are base64-like) are answered: no JSON body, which
// starts with '{', can be signed that way.
type twitter struct{ *generic }

var twitterOptions = map[string]string{"header": "x-twitter-webhooks-signature", "prefix": "sha256=", "encoding": "base64"}

func newTwitter(c Config) (Verifier, error) {
	tol, err := checkConfig(c)
	if err != nil {
		return nil, err
	}
	g, err := newGeneric("twitter", c.Secrets, tol, twitterOptions)
	return &twitter{g}, err
}

// HandshakeGET implements GetHandshaker: the CRC check is a GET.
func (t *twitter) HandshakeGET() bool { return true }

// Verify implements Verifier.
func (t *twitter) Verify(r *Request) (Result, error) {
	if r.Method == http.MethodGet {
		return t.crc(r)
	}
	res, err := t.generic.Verify(r)
	if err != nil {
		return res, err
	}
	eachField(r.Body, func(key, _ []byte) {
		if k := string(key); res.Type == "" && strings.HasSuffix(k, `_events"`) {
			res.Type = strings.Trim(k, `"`)
		}
	})
	return res, nil
}

// crc answers X's Challenge-Response Check.
func (t *twitter) crc(r *Request) (Result, error) {
	token := query(r).Get("crc_token")
	switch {
	case token == "":
		return Result{}, fail("twitter", ErrMissing, "GET without crc_token: only X's CRC check may GET this source")
	case !crcToken(token):
		return Result{}, fail("twitter", ErrMalformed, "crc_token %s is not 1-%d bytes of [A-Za-z0-9+/=_-]", quote(token), maxChallenge)
	}
	sig := base64.StdEncoding.EncodeToString(t.ring.mac(t.ring.keys[0], []byte(token)))
	return Result{Type: "crc", Handshake: jsonHandshake(http.StatusOK, map[string]string{"response_token": "sha256=" + sig})}, nil
}

// crcToken reports whether s has the shape of X's crc_token.
func crcToken(s string) bool {
	if len(s) > maxChallenge {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("+/=_-", c) >= 0) {
			return false
		}
	}
	return s != ""
}

// query returns the request's query parameters ("" values when the URL is
// unknown).
func query(r *Request) url.Values {
	if r.URL == nil {
		return url.Values{}
	}
	return r.URL.Query()
}

// --- Meta (Facebook, WhatsApp, Instagram, Messenger) ------------------------

// meta verifies Meta Graph API webhooks
// (developers.facebook.com/docs/graph-api/webhooks/getting-started):
// X-Hub-Signature-256 is "sha256=" + hex HMAC-SHA256 of the body under
// the App Secret; the type is the body's "object" (page,
// whatsapp_business_account, instagram...). The verification request is
// a GET with hub.mode=subscribe, hub.verify_token (the token typed in the
// App Dashboard) and hub.challenge: when the token matches option
// verify_token the answer is the challenge as text/plain (200); otherwise
// it is refused. Meta does not sign the GET.
//
// Option verify_token: the Verify Token set in the App Dashboard; without
// it every verification GET is refused.
type meta struct {
	*generic
	verifyToken []byte
}

var metaOptions = map[string]string{"header": "X-Hub-Signature-256", "prefix": "sha256=", "type_field": "object"}

func newMeta(c Config) (Verifier, error) {
	tol, err := checkConfig(c, "verify_token")
	if err != nil {
		return nil, err
	}
	g, err := newGeneric("meta", c.Secrets, tol, metaOptions)
	return &meta{g, []byte(c.Options["verify_token"])}, err
}

// HandshakeGET implements GetHandshaker.
func (m *meta) HandshakeGET() bool { return true }

// Verify implements Verifier.
func (m *meta) Verify(r *Request) (Result, error) {
	if r.Method != http.MethodGet {
		return m.generic.Verify(r)
	}
	q := query(r)
	challenge := q.Get("hub.challenge")
	switch {
	case q.Get("hub.mode") != "subscribe" || challenge == "":
		return Result{}, fail("meta", ErrMissing, "GET without hub.mode=subscribe and hub.challenge: only Meta's verification may GET this source")
	case len(m.verifyToken) == 0:
		return Result{}, fail("meta", ErrConfig, "a verification GET arrived but the source sets no verify_token option")
	case q.Get("hub.verify_token") == "":
		return Result{}, fail("meta", ErrMissing, "no hub.verify_token")
	case !tokenEqual(q.Get("hub.verify_token"), m.verifyToken):
		return Result{}, fail("meta", ErrMismatch, "hub.verify_token is not the configured verify_token")
	case len(challenge) > maxChallenge:
		return Result{}, fail("meta", ErrMalformed, "hub.challenge is over %d bytes", maxChallenge)
	}
	return Result{Type: "subscribe", Handshake: textHandshake(challenge)}, nil
}

// tokenEqual compares a received token with the expected one in constant
// time, lengths included (it compares their SHA-256 sums).
func tokenEqual(got string, want []byte) bool {
	a, b := sha256.Sum256([]byte(got)), sha256.Sum256(want)
	return hmac.Equal(a[:], b[:])
}

// --- Dropbox ----------------------------------------------------------------

// dropbox verifies Dropbox webhooks
// (dropbox.com/developers/reference/webhooks): X-Dropbox-Signature is the
// hex HMAC-SHA256 of the body under the app secret. The verification
// request is a GET with ?challenge=...: the answer echoes it as text/plain
// with X-Content-Type-Options: nosniff, as Dropbox documents. Dropbox does
// not sign the GET. Notifications carry no id; the type is "list_folder"
// when the body has that key. No options.
type dropbox struct{ *generic }

func newDropbox(c Config) (Verifier, error) {
	tol, err := checkConfig(c)
	if err != nil {
		return nil, err
	}
	g, err := newGeneric("dropbox", c.Secrets, tol, map[string]string{"header": "X-Dropbox-Signature"})
	return &dropbox{g}, err
}

// HandshakeGET implements GetHandshaker.
func (d *dropbox) HandshakeGET() bool { return true }

// Verify implements Verifier.
func (d *dropbox) Verify(r *Request) (Result, error) {
	if r.Method != http.MethodGet {
		res, err := d.generic.Verify(r)
		if err == nil && fields(r.Body, "list_folder")[0] != nil {
			res.Type = "list_folder"
		}
		return res, err
	}
	challenge := query(r).Get("challenge")
	switch {
	case challenge == "":
		return Result{}, fail("dropbox", ErrMissing, "GET without challenge: only Dropbox's verification may GET this source")
	case len(challenge) > maxChallenge:
		return Result{}, fail("dropbox", ErrMalformed, "challenge is over %d bytes", maxChallenge)
	}
	return Result{Type: "challenge", Handshake: textHandshake(challenge)}, nil
}

var (
	_ Verifier      = (*zoom)(nil)
	_ Signer        = (*zoom)(nil)
	_ Verifier      = (*twitter)(nil)
	_ Signer        = (*twitter)(nil)
	_ GetHandshaker = (*twitter)(nil)
	_ Verifier      = (*meta)(nil)
	_ Signer        = (*meta)(nil)
	_ GetHandshaker = (*meta)(nil)
	_ Verifier      = (*dropbox)(nil)
	_ Signer        = (*dropbox)(nil)
	_ GetHandshaker = (*dropbox)(nil)
)
