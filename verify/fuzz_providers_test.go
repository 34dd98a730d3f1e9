package verify

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// FuzzSendGridSignature parses SendGrid signature headers: what parses is
// DER-shaped and of bounded size, nothing panics.
func FuzzSendGridSignature(f *testing.F) {
	for _, s := range []string{"", sendgridDocSig, sendgridDocSig + "x", "MEUCIQ==", "AAAA", "=", strings.Repeat("M", 200)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		sig, err := parseSendGridSignature(value)
		if err != nil {
			if !errors.Is(err, ErrMissing) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("%q: %v wraps neither ErrMissing nor ErrMalformed", value, err)
			}
			return
		}
		if len(sig) > 72 || sig[0] != 0x30 {
			t.Fatalf("%q parsed to %x", value, sig)
		}
	})
}

// FuzzHandshakeQueries drives the GET and query handshakes (X's CRC,
// Meta's hub.challenge, Dropbox's challenge, Graph's validationToken,
// Okta's challenge) with any query and header: nothing panics, an answer
// is bounded, a JSON answer is valid JSON, and X never answers a token
// that could be a JSON body (the CRC answer is an HMAC under the event
// key).
func FuzzHandshakeQueries(f *testing.F) {
	vs := []Verifier{
		Must(New(Config{Scheme: "x", Secrets: []string{xSecret}})),
		Must(New(Config{Scheme: "meta", Secrets: []string{"s"}, Options: map[string]string{"verify_token": "tok"}})),
		Must(New(Config{Scheme: "dropbox", Secrets: []string{"s"}})),
		Must(New(Config{Scheme: "msgraph", Secrets: []string{"state"}})),
		Must(New(Config{Scheme: "okta", Secrets: []string{"auth"}})),
	}
	for _, q := range []string{"crc_token=" + xCRC, "crc_token=%7B%7D", "hub.mode=subscribe&hub.challenge=1&hub.verify_token=tok",
		"challenge=abc", "validationToken=Validation%3A+x", "", "a=%zz", "crc_token=" + strings.Repeat("A", 300)} {
		for i := range vs {
			f.Add(uint8(i), q, "auth", "challenge", true)
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, rawQuery, auth, challenge string, get bool) {
		r := &Request{Method: http.MethodPost, Header: http.Header{}, URL: &url.URL{Scheme: "https", Host: "h", Path: "/p", RawQuery: rawQuery}}
		if get {
			r.Method = http.MethodGet
		}
		r.Header.Set("Authorization", auth)
		r.Header.Set("X-Okta-Verification-Challenge", challenge)
		n := int(which) % len(vs)
		res, err := vs[n].Verify(r)
		if err != nil {
			if Reason(err) == "" || res.Handshake != nil {
				t.Fatalf("error %v with %+v", err, res)
			}
			return
		}
		h := res.Handshake
		if h == nil {
			if r.Method == http.MethodGet {
				t.Fatalf("a GET verified without a handshake answer: %+v", res)
			}
			return
		}
		// JSON may escape each byte of a challenge into six (\u0026).
		if len(h.Body) > 6*maxChallenge+64 {
			t.Fatalf("answer of %d bytes", len(h.Body))
		}
		if h.Header.Get("Content-Type") == "application/json" && !json.Valid(h.Body) {
			t.Fatalf("invalid JSON answer %q", h.Body)
		}
		if tok := r.URL.Query().Get("crc_token"); n == 0 && strings.ContainsAny(tok, "{}\"") {
			t.Fatalf("answered crc_token %q", tok)
		}
	})
}

// FuzzTokenBodies drives the token schemes (Graph's clientState in the
// body, Postmark's basic credentials, Okta's header): nothing panics, and
// what verifies carries the secret where the scheme wants it.
func FuzzTokenBodies(f *testing.F) {
	graph := Must(New(Config{Scheme: "msgraph", Secrets: []string{"state"}}))
	postmark := Must(New(Config{Scheme: "postmark", Secrets: []string{"u:p"}}))
	for _, b := range []string{`{"value":[{"clientState":"state","changeType":"created"}]}`, `{"value":[{"clientState":"state"},{"clientState":"x"}]}`,
		`{"value":[]}`, `{"value":{}}`, `[]`, ``, `{"value":[{"clientState":"st\u0061te"}]}`} {
		f.Add([]byte(b), "Basic dTpw")
	}
	f.Fuzz(func(t *testing.T, body []byte, auth string) {
		r := &Request{Method: http.MethodPost, Header: http.Header{"Authorization": {auth}}, Body: body}
		if _, err := graph.Verify(r); err == nil {
			var env struct {
				Value []struct {
					ClientState string `json:"clientState"`
				} `json:"value"`
			}
			if json.Unmarshal(body, &env) == nil {
				for _, v := range env.Value {
					if v.ClientState != "state" {
						t.Fatalf("accepted clientState %q", v.ClientState)
					}
				}
			}
		}
		if _, err := postmark.Verify(r); err == nil && auth != "Basic dTpw" && !strings.HasPrefix(strings.ToLower(auth), "basic ") {
			t.Fatalf("accepted Authorization %q", auth)
		}
	})
}

// FuzzPlaidJWT feeds any Plaid-Verification header and body to the plaid
// scheme: nothing panics, every error wraps a sentinel, and nothing but
// the header and claims the test key signed, over that very body, verify.
func FuzzPlaidJWT(f *testing.F) {
	v := Must(New(Config{Scheme: "plaid", Secrets: []string{"k1:" + p256Priv2}}))
	signed := plaidSigned(f, plaidBody, signedAt)
	// ECDSA signatures are randomised, and each fuzz worker signs anew:
	// what must match is the signed header and claims.
	jwt := signed.Header.Get("Plaid-Verification")
	content := jwt[:strings.LastIndexByte(jwt, '.')+1]
	for _, h := range []string{signed.Header.Get("Plaid-Verification"), "", "a.b.c", plaidJWT(`{"alg":"none","kid":"k1"}`, `{}`),
		plaidJWT(`{"alg":"ES256","kid":"k1"}`, `{"iat":1750000000,"request_body_sha256":"00"}`), strings.Repeat("A.", 5000)} {
		f.Add(h, []byte(plaidBody))
	}
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		r := &Request{Method: http.MethodPost, Header: http.Header{"Plaid-Verification": {header}}, Body: body, Now: signedAt}
		res, err := v.Verify(r)
		if err != nil {
			if Reason(err) == "" || res != (Result{}) {
				t.Fatalf("%v with %+v", err, res)
			}
			return
		}
		if !strings.HasPrefix(strings.TrimSpace(header), content) || string(body) != plaidBody {
			t.Fatalf("verified a JWT the test did not sign: %q over %q", header, body)
		}
	})
}
