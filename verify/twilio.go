package verify

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"mime"
	"net"
	"net/url"
	"sort"
	"strings"
)

func init() { Register("twilio", newTwilio) }

// Twilio verifies Twilio webhooks: X-Twilio-Signature is the base64
// HMAC-SHA1, under the account's auth token, of the full URL Twilio called
// followed by each form parameter's name and value, sorted by name. When
// the URL carries a bodySHA256 query parameter (JSON bodies), the body's
// hex SHA-256 must equal it and only the URL is signed. The URL is
// Request.URL, so a source behind a proxy must set its public_url; like
// Twilio's libraries, the URL is tried with and without its port.
//
// The delivery id is the I-Twilio-Idempotency-Token header when present.
// No timestamp is signed. No options.
func Twilio(secrets ...string) (Verifier, error) {
	return newTwilio(Config{Scheme: "twilio", Secrets: secrets})
}

type twilio struct{ ring keyring }

func newTwilio(c Config) (Verifier, error) {
	ring, _, err := rawRing(c, sha1.New)
	if err != nil {
		return nil, err
	}
	return &twilio{ring}, nil
}

// twilioContent builds what Twilio signs after the URL: the sorted form
// parameters, or nothing when the body is bound through bodySHA256.
func twilioContent(u *url.URL, body []byte) ([]byte, error) {
	if want := u.Query().Get("bodySHA256"); want != "" {
		got := sha256.Sum256(body)
		w, err := hex.DecodeString(want)
		if err != nil || !hmac.Equal(got[:], w) {
			return nil, fail("twilio", ErrMismatch, "the body's SHA-256 is not the URL's bodySHA256")
		}
		return nil, nil
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, fail("twilio", ErrMalformed, "the body is not a form and the URL has no bodySHA256: %v", err)
	}
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		// Twilio's libraries sign each distinct value once, sorted.
		vals := form[k]
		sort.Strings(vals)
		for i, v := range vals {
			if i > 0 && v == vals[i-1] {
				continue
			}
			b.WriteString(k)
			b.WriteString(v)
		}
	}
	return []byte(b.String()), nil
}

// twilioURLs returns the URL as Twilio may have signed it: with and
// without the port (the default port added when none is given).
func twilioURLs(u *url.URL) [2][]byte {
	with, without := *u, *u
	host := u.Hostname()
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	without.Host = host
	if u.Port() == "" {
		port := "443"
		if u.Scheme == "http" {
			port = "80"
		}
		with.Host = net.JoinHostPort(u.Hostname(), port)
	}
	return [2][]byte{[]byte(with.String()), []byte(without.String())}
}

// Verify implements Verifier.
func (t *twilio) Verify(r *Request) (Result, error) {
	if r.URL == nil {
		return Result{}, fail("twilio", ErrConfig, "the URL Twilio called is unknown: set the source's public_url")
	}
	sig, err := decodeOne("twilio", "X-Twilio-Signature", r.Header.Get("X-Twilio-Signature"), "", base64.StdEncoding.DecodeString)
	if err != nil {
		return Result{}, err
	}
	content, err := twilioContent(r.URL, r.Body)
	if err != nil {
		return Result{}, err
	}
	sigs := [][]byte{sig}
	for _, u := range twilioURLs(r.URL) {
		if t.ring.match(sigs, u, content) {
			return Result{ID: r.Header.Get("I-Twilio-Idempotency-Token")}, nil
		}
	}
	return Result{}, t.ring.mismatch("twilio", 1)
}

// Sign implements Signer. A body that is not a form (by Content-Type, or
// any non-empty body without one that does not parse as a form) is bound
// the way Twilio binds JSON: its SHA-256 goes into r.URL as bodySHA256.
func (t *twilio) Sign(r *Request) error {
	if r.URL == nil {
		return fail("twilio", ErrConfig, "signing needs the URL")
	}
	h := headers(r)
	if len(r.Body) > 0 && !isForm(h.Get("Content-Type"), r.Body) {
		u := *r.URL
		q := u.Query()
		sum := sha256.Sum256(r.Body)
		q.Set("bodySHA256", hex.EncodeToString(sum[:]))
		u.RawQuery = q.Encode()
		r.URL = &u
	}
	content, err := twilioContent(r.URL, r.Body)
	if err != nil {
		return err
	}
	setDefault(h, "I-Twilio-Idempotency-Token", uuid4())
	h.Set("X-Twilio-Signature", base64.StdEncoding.EncodeToString(t.ring.sign([]byte(r.URL.String()), content)))
	return nil
}

// isForm tells whether a body is application/x-www-form-urlencoded: by its
// Content-Type when there is one, else by whether it parses as a form.
func isForm(contentType string, body []byte) bool {
	if contentType != "" {
		mt, _, _ := mime.ParseMediaType(contentType)
		return mt == "application/x-www-form-urlencoded"
	}
	_, err := url.ParseQuery(string(body))
	return err == nil && !strings.HasPrefix(strings.TrimSpace(string(body)), "{")
}

var (
	_ Verifier = (*twilio)(nil)
	_ Signer   = (*twilio)(nil)
)
