package verify

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/url"
	"strings"
	"time"
)

func init() { Register("mailgun", newMailgun) }

// Mailgun verifies Mailgun webhooks, which carry their signature in the
// body: "signature": {"timestamp", "token", "signature"} in JSON event
// webhooks, or timestamp, token and signature fields in form and multipart
// posts (routes, legacy webhooks). The signature is the hex HMAC-SHA256 of
// timestamp + token under the HTTP webhook signing key; the timestamp must
// be within the tolerance.
//
// Mailgun signs the timestamp and token only, not the event, and a retry
// resends the first attempt's body, signature included, for up to 8 hours
// (documentation.mailgun.com, "Webhooks"). So the default tolerance is
// SchemeTolerance("mailgun"), 8h, and the delivery id is the signed
// token: Mailgun makes one per delivery and keeps it across retries, so
// the gateway's dedup on it (dedup_window 8h or more) refuses a replayed
// signature even with another event in the body. The type is
// "event-data.event" (JSON) or the form's "event". No options.
func Mailgun(secrets ...string) (Verifier, error) {
	return newMailgun(Config{Scheme: "mailgun", Secrets: secrets})
}

type mailgun struct {
	ring keyring
	tol  time.Duration
}

func newMailgun(c Config) (Verifier, error) {
	ring, tol, err := rawRing(toleranceOr(c, SchemeTolerance("mailgun")), sha256.New)
	if err != nil {
		return nil, err
	}
	return &mailgun{ring, tol}, nil
}

// mailgunFields is what Mailgun's body says about itself.
type mailgunFields struct {
	timestamp, token, signature string
	typ                         string
}

// maxMailgunField bounds each multipart field read, so a huge part named
// "token" costs no more than a small one.
const maxMailgunField = 1 << 10

// parseMailgunBody finds the signature fields in a JSON, form or
// multipart body.
func parseMailgunBody(contentType string, body []byte) (mailgunFields, error) {
	mt, params, _ := mime.ParseMediaType(contentType)
	trimmed := bytes.TrimSpace(body)
	switch {
	case mt == "multipart/form-data":
		return parseMailgunMultipart(params["boundary"], body)
	case mt == "application/json" || (mt == "" && len(trimmed) > 0 && trimmed[0] == '{'):
		f := fields(trimmed, "signature", "event-data")
		if f[0] == nil && f[1] == nil && !eachField(trimmed, func(_, _ []byte) {}) {
			return mailgunFields{}, fail("mailgun", ErrMalformed, "the JSON body is not an object")
		}
		sig := fields(f[0], "timestamp", "token", "signature")
		event := fields(f[1], "event")
		return mailgunFields{
			timestamp: text(sig[0]), token: text(sig[1]), signature: text(sig[2]),
			typ: text(event[0]),
		}, nil
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return mailgunFields{}, fail("mailgun", ErrMalformed, "the form body does not parse: %v", err)
	}
	return mailgunFields{
		timestamp: form.Get("timestamp"), token: form.Get("token"), signature: form.Get("signature"),
		typ: form.Get("event"),
	}, nil
}

// parseMailgunMultipart reads only the small fields it needs from a
// multipart body and skips the rest (attachments), never touching disk.
func parseMailgunMultipart(boundary string, body []byte) (mailgunFields, error) {
	if boundary == "" {
		return mailgunFields{}, fail("mailgun", ErrMalformed, "multipart body without a boundary")
	}
	var f mailgunFields
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return f, nil
		}
		if err != nil {
			return mailgunFields{}, fail("mailgun", ErrMalformed, "the multipart body does not parse: %s", unquoted(err))
		}
		var dst *string
		switch p.FormName() {
		case "timestamp":
			dst = &f.timestamp
		case "token":
			dst = &f.token
		case "signature":
			dst = &f.signature
		case "event":
			dst = &f.typ
		}
		if dst != nil && p.FileName() == "" {
			b, _ := io.ReadAll(io.LimitReader(p, maxMailgunField))
			*dst = string(b)
		}
	}
}

// unquoted is err's text up to the first quoted value: mime/multipart and
// net/textproto quote the offending line of the body in full ("malformed
// MIME header: missing colon: \"...\""), and no body byte may reach the log.
func unquoted(err error) string {
	s, _, _ := strings.Cut(err.Error(), `"`)
	return strings.TrimRight(s, ": ")
}

// Verify implements Verifier.
func (m *mailgun) Verify(r *Request) (Result, error) {
	f, err := parseMailgunBody(r.Header.Get("Content-Type"), r.Body)
	if err != nil {
		return Result{}, err
	}
	switch {
	case f.signature == "":
		return Result{}, fail("mailgun", ErrMissing, "the body has no signature field")
	case f.token == "":
		return Result{}, fail("mailgun", ErrMissing, "the body has no token field")
	}
	sig, err := hex.DecodeString(f.signature)
	if err != nil || len(sig) == 0 {
		return Result{}, fail("mailgun", ErrMalformed, "the signature field is not hex")
	}
	if err := checkTimestamp("mailgun", "signature", f.timestamp, time.Second, r.now(), m.tol); err != nil {
		return Result{}, err
	}
	if !m.ring.match([][]byte{sig}, []byte(f.timestamp), []byte(f.token)) {
		return Result{}, m.ring.mismatch("mailgun", 1)
	}
	return Result{ID: f.token, Type: f.typ}, nil
}

// Sign implements Signer, rewriting r.Body as Mailgun would send it. A
// form body (by Content-Type) gets timestamp, token and signature fields
// appended. A JSON body is taken as the event-data object and wrapped in
// Mailgun's envelope; a body that already is an envelope (it has
// "event-data") has its signature replaced.
func (m *mailgun) Sign(r *Request) error {
	ts := unixText(r.now(), time.Second)
	token := randomHex(25)
	sig := hex.EncodeToString(m.ring.sign([]byte(ts), []byte(token)))
	h := headers(r)
	if mt, _, _ := mime.ParseMediaType(h.Get("Content-Type")); mt == "application/x-www-form-urlencoded" {
		fields := url.Values{"timestamp": {ts}, "token": {token}, "signature": {sig}}.Encode()
		if len(r.Body) > 0 {
			fields = "&" + fields
		}
		r.Body = append(append([]byte(nil), r.Body...), fields...)
		return nil
	}
	signature, _ := json.Marshal(map[string]string{"timestamp": ts, "token": token, "signature": sig})
	var envelope map[string]json.RawMessage
	if json.Unmarshal(r.Body, &envelope) == nil && envelope["event-data"] != nil {
		envelope["signature"] = signature
		body, err := json.Marshal(envelope)
		if err != nil {
			return fail("mailgun", ErrMalformed, "re-encoding the envelope: %v", err)
		}
		r.Body = body
	} else {
		eventData := bytes.TrimSpace(r.Body)
		if len(eventData) == 0 {
			eventData = []byte("{}")
		}
		if !json.Valid(eventData) {
			return fail("mailgun", ErrMalformed, "the body is neither a form (by Content-Type) nor JSON event data")
		}
		r.Body = []byte(`{"signature":` + string(signature) + `,"event-data":` + string(eventData) + `}`)
	}
	if !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
		h.Set("Content-Type", "application/json")
	}
	return nil
}

var (
	_ Verifier = (*mailgun)(nil)
	_ Signer   = (*mailgun)(nil)
)
