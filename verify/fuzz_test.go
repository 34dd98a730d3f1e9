package verify

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// The seeds of every fuzz target live in testdata/fuzz/<target>, so plain
// `go test` runs them. They are written by
//
//	go test -run TestWriteFuzzSeeds ./verify/ -args -write-seeds
//
// from the tables below; fuzzing adds its finds beside them.
var writeSeeds = flag.Bool("write-seeds", false, "rewrite testdata/fuzz seed corpora")

var headerSeeds = []string{
	"", "=", ",", ";", " ", "t=", "v1=", "t=1", "t=1,v1=", "t=1,v1=00", "t=01,v1=00", "t=1,t=2,v1=00",
	"t=1686089970,v1=" + stripeSig, "t=1686089970,v1=" + stripeSig + ",v1=bad,v0=00",
	"ts=1710929255;h1=6c05", paddleSig, paddleSig + ";h1=00;h1=zz", "ts=;h1=", "h1=00;ts=1",
	"v1,", "v1a,", swSig, "v2,abc " + swSig + " v1a,AAAA", swSigV1a, "v1," + strings.Repeat("A", 100),
	"sha256=" + rfcSHA256, "sha256=" + rfcSHA256 + ", sha256=00", "a,b c\td", "=====", "\x00=\xff",
	strings.Repeat("v1=00,", 20), strings.Repeat("v1,AAAA ", 20),
}

var timestampSeeds = []string{"", "0", "00", "1", "1614265330", "15000000", "1700000000000", "999999999999999", "9999999999999999", "-1", "+1", "1.5", " 1", "1e9", "0x10"}

var jsonSeeds = []string{
	"", "{}", "[]", "[1,2,3]", `{"id":"a","type":"b"}`, `{"id":1.5e3,"type":null}`, `{"id":"a\"b\\","id":"c"}`,
	`{"\u0069d":"\u00e9\/"}`, `{"event":{"type":"message","x":[{"y":"}"}]}}`, `  {"a" : [ "]" , {} ] , "id" : -0 }  `,
	`{"id":`, `{"id":"x"`, `{"id":"x",}`, `{"id" "x"}`, `[{"eventId":1},{"eventId":2}]`, `{"a":"\\\""}`, `"str"`, `nul`,
	stripeBody, mailgunJSON(mailgunSig), paddleBody, squareBody,
}

var templateSeeds = []string{"", "{body}", "{http.request.method} {http.request.header.X-Id} {body}", "{http.request.body}", "{timestamp}.{body}", "{header.webhook-id}.{timestamp}.{body}", "{method} {url}\n{body}", "{", "}", "{}", "{header.}", "{{body}}", "a{body}b{timestamp}c"}

// fuzzConfigs covers every scheme, with the secrets of the known-answer
// tests so their requests are valid seeds; verifySeeds index it.
var fuzzConfigs = []struct {
	c         Config
	bodyBound bool
}{
	{Config{Scheme: "github", Secrets: []string{githubDocSecret, "new"}}, true},
	{Config{Scheme: "stripe", Secrets: []string{stripeSecret}}, true},
	{Config{Scheme: "standard-webhooks", Secrets: []string{swSecret, "whsk_" + swSeed}}, true},
	{Config{Scheme: "svix", Secrets: []string{swSecret}}, true},
	{Config{Scheme: "slack", Secrets: []string{slackSecret}}, true},
	{Config{Scheme: "shopify", Secrets: []string{shopifySecret}}, true},
	{Config{Scheme: "twilio", Secrets: []string{twilioToken}}, true},
	{Config{Scheme: "paddle", Secrets: []string{paddleSecret}}, true},
	{Config{Scheme: "square", Secrets: []string{squareKey}}, true},
	{Config{Scheme: "hubspot", Secrets: []string{hubspotSecret}}, true},
	{Config{Scheme: "hubspot", Secrets: []string{hubspotSecret}, Options: map[string]string{"version": "v1"}}, true},
	{Config{Scheme: "hubspot", Secrets: []string{hubspotSecret}, Options: map[string]string{"version": "v2"}}, true},
	{Config{Scheme: "mailgun", Secrets: []string{mailgunKey}}, false},
	{Config{Scheme: "discord", Secrets: []string{discordPublic}}, true},
	{Config{Scheme: "gitlab", Secrets: []string{"s3cr3t"}}, false},
	{Config{Scheme: "hmac", Secrets: []string{rfcKey}, Options: map[string]string{"header": "X-Sig", "prefix": "sha256="}}, true},
	{Config{Scheme: "hmac", Secrets: []string{strings.TrimPrefix(swSecret, "whsec_")}, Options: map[string]string{
		"header": "webhook-signature", "prefix": "v1,", "encoding": "base64", "secret_encoding": "base64",
		"timestamp_header": "webhook-timestamp", "template": "{header.webhook-id}.{timestamp}.{body}", "type_field": "a.b"}}, true},
	// Issue 16's providers, from index 17 on.
	{Config{Scheme: "sendgrid", Secrets: []string{sendgridDocPublic}}, true},
	{Config{Scheme: "zoom", Secrets: []string{zoomSecret}}, true},
	{Config{Scheme: "x", Secrets: []string{xSecret}}, true},
	{Config{Scheme: "meta", Secrets: []string{"app-secret"}, Options: map[string]string{"verify_token": "t"}}, true},
	{Config{Scheme: "dropbox", Secrets: []string{"app-secret"}}, true},
	{Config{Scheme: "msgraph", Secrets: []string{"client-state"}}, false},
	{Config{Scheme: "okta", Secrets: []string{"Bearer okta-hook-secret"}}, false},
	{Config{Scheme: "postmark", Secrets: []string{"hook:new"}}, false},
	{Config{Scheme: "pagerduty", Secrets: []string{"new"}}, true},
	{Config{Scheme: "mux", Secrets: []string{"mux-new"}}, true},
	{Config{Scheme: "typeform", Secrets: []string{"new"}}, true},
	{Config{Scheme: "clerk", Secrets: []string{swSecret}}, true},
	{Config{Scheme: "gocardless", Secrets: []string{"new"}}, true},
	{Config{Scheme: "razorpay", Secrets: []string{"key_secret", "chosen_webhook_secret"}}, true},
	{Config{Scheme: "plaid", Secrets: []string{"k1:" + p256Priv2}}, true},
	{Config{Scheme: "resend", Secrets: []string{swSecret}}, true},
	{Config{Scheme: "brex", Secrets: []string{swSecret}}, true},
	{Config{Scheme: "openai", Secrets: []string{swSecret}}, true},
	{Config{Scheme: "replicate", Secrets: []string{swSecret}}, true},
}

// fuzzVerifiers are the verifiers of fuzzConfigs.
var fuzzVerifiers = sync.OnceValue(func() []struct {
	v         Verifier
	bodyBound bool
} {
	cfgs := fuzzConfigs
	out := make([]struct {
		v         Verifier
		bodyBound bool
	}, len(cfgs))
	for i, c := range cfgs {
		v, err := New(c.c)
		if err != nil {
			panic(err)
		}
		out[i].v, out[i].bodyBound = v, c.bodyBound
	}
	return out
})

// verifySeed is one FuzzVerify input.
type verifySeed struct {
	scheme uint8
	header string
	body   string
	url    string
	now    int64
}

// verifySeeds are the known-answer requests, valid under fuzzVerifiers
// (TestVerifySeeds checks), then a few broken ones from invalidSeed on.
var verifySeeds = []verifySeed{
	{0, "X-Hub-Signature-256: " + githubDocSig256 + "\nX-GitHub-Event: ping", githubDocBody, "", 0},
	{1, "Stripe-Signature: t=1686089970,v1=" + stripeSig, stripeBody, "", stripeTS},
	{2, "webhook-id: " + swID + "\nwebhook-timestamp: 1614265330\nwebhook-signature: " + swSig + " " + swSigV1a, swBody, "", swTS},
	{3, "svix-id: " + swID + "\nsvix-timestamp: 1614265330\nsvix-signature: " + swSig, swBody, "", swTS},
	{4, "X-Slack-Request-Timestamp: 1531420618\nX-Slack-Signature: " + slackSig, slackBody, "", slackTS},
	{5, "X-Shopify-Hmac-Sha256: " + shopifySig, shopifyBody, "", 0},
	{6, "X-Twilio-Signature: " + twilioSig, twilioForm, twilioURL, 0},
	{6, "X-Twilio-Signature: a9nBmqA0ju/hNViExpshrM61xv4=", twilioJSON, twilioURL + "&bodySHA256=" + twilioBodyHash, 0},
	{7, "Paddle-Signature: " + paddleSig, paddleBody, "", paddleTS},
	{8, "X-Square-Hmacsha256-Signature: " + squareSig, squareBody, squareURL, 0},
	{9, "X-HubSpot-Signature-v3: HPW73RUtKmcYoEDADG0s6MmGFWUzWJKAW07r8RDgcQw=\nX-HubSpot-Request-Timestamp: 15000000", hubspotBody, hubspotURL, 15000},
	{10, "X-HubSpot-Signature: 69fc6631a867edd4f9e9e627fc5c1148e3fbdd8b21837b6d2b8901c1fa57f750", hubspotBody, "", 0},
	{11, "X-HubSpot-Signature: 4fe4e3a7d3cf09db53be39d0a58130e2aaba074ec123a9e355b876a689a1c383", hubspotBody, hubspotURL, 0},
	{12, "Content-Type: application/json", mailgunJSON(mailgunSig), "", mailgunTS},
	{13, "X-Signature-Ed25519: " + discordSig + "\nX-Signature-Timestamp: 1700000000", discordBody, "", discordTS},
	{14, "X-Gitlab-Token: s3cr3t\nX-Gitlab-Event: Push Hook", "{}", "", 0},
	{15, "X-Sig: sha256=" + rfcSHA256, rfcData, "", 0},
	{16, "webhook-id: " + swID + "\nwebhook-timestamp: 1614265330\nwebhook-signature: " + swSig, swBody, "", swTS},
	{17, "X-Twilio-Email-Event-Webhook-Signature: " + sendgridDocSig + "\nX-Twilio-Email-Event-Webhook-Timestamp: 1588788367", sendgridDocBody, "", sendgridDocTS},
	{30, "X-Razorpay-Signature: " + razorpayDocSig + "\nX-Razorpay-Event-Id: evt_1", razorpayDocBody, "", 0},
	{30, "X-Razorpay-Signature: " + razorpayRubySig, razorpayDocBody, "", 0},
	{28, "svix-id: " + swID + "\nsvix-timestamp: 1614265330\nsvix-signature: " + swSig, swBody, "", swTS},
	{32, "svix-id: " + swID + "\nsvix-timestamp: 1614265330\nsvix-signature: " + swSig, swBody, "", swTS},
	{33, "webhook-id: " + swID + "\nwebhook-timestamp: 1614265330\nwebhook-signature: " + swSig, swBody, "", swTS},
	{34, "webhook-id: " + swID + "\nwebhook-timestamp: 1614265330\nwebhook-signature: " + swSig, swBody, "", swTS},
	{35, "webhook-id: " + swID + "\nwebhook-timestamp: 1614265330\nwebhook-signature: " + swSig, swBody, "", swTS},
	{12, "Content-Type: multipart/form-data; boundary=XyZ", "--XyZ\r\nContent-Disposition: form-data; name=\"token\"\r\n\r\nabc\r\n--XyZ--\r\n", "", mailgunTS},
	{1, "Stripe-Signature: t=9999999999999,v1=00", "", "", -1 << 62},
	{2, "webhook-id: x\nwebhook-timestamp: 1\nwebhook-signature: v1a,AAAA v1,=", "", "", 1},
	{6, "X-Twilio-Signature: AAAA", "a=%zz;b", "http://[::1]:80/x?bodySHA256=zz", 0},
}

// invalidSeed is the index of the first seed that must not verify.
const invalidSeed = 26

func TestVerifySeeds(t *testing.T) {
	vs := fuzzVerifiers()
	for i, s := range verifySeeds {
		_, err := vs[s.scheme].v.Verify(fuzzRequest(s.header, []byte(s.body), s.url, s.now))
		if (err == nil) != (i < invalidSeed) {
			t.Errorf("seed %d (scheme %d): %v", i, s.scheme, err)
		}
	}
}

// fuzzRequest turns fuzz input into a Request.
func fuzzRequest(header string, body []byte, rawURL string, now int64) *Request {
	h := make(http.Header)
	for _, line := range strings.Split(header, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
		}
	}
	r := &Request{Method: http.MethodPost, Header: h, Body: body, Now: time.Unix(now, 0)}
	if rawURL != "" {
		r.URL, _ = url.Parse(rawURL)
	}
	return r
}

// FuzzVerify feeds random requests to every scheme: none may panic, every
// error wraps a sentinel, and a request that verifies stops verifying
// when one byte of a signed body changes.
func FuzzVerify(f *testing.F) {
	vs := fuzzVerifiers()
	f.Fuzz(func(t *testing.T, scheme uint8, header string, body []byte, rawURL string, now int64) {
		c := vs[int(scheme)%len(vs)]
		r := fuzzRequest(header, body, rawURL, now)
		res, err := c.v.Verify(r)
		if err != nil {
			if !errors.Is(err, ErrMissing) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrMismatch) &&
				!errors.Is(err, ErrExpired) && !errors.Is(err, ErrConfig) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			if res != (Result{}) {
				t.Fatalf("result %+v with error %v", res, err)
			}
			if len(err.Error()) > 400 {
				t.Fatalf("error of %d bytes", len(err.Error()))
			}
			return
		}
		if c.bodyBound && len(body) > 0 {
			r.Body = bytes.Clone(body)
			r.Body[len(r.Body)-1] ^= 0x20
			if _, err := c.v.Verify(r); err == nil {
				t.Fatalf("scheme %d verified a body with a changed byte", int(scheme)%len(vs))
			}
		}
	})
}

// FuzzStripeSignature parses Stripe-Signature headers.
func FuzzStripeSignature(f *testing.F) {
	f.Fuzz(func(t *testing.T, value string) {
		ts, sigs, err := parseStripeSignature(value)
		checkKeyValues(t, ts, sigs, err)
	})
}

// FuzzPaddleSignature parses Paddle-Signature headers.
func FuzzPaddleSignature(f *testing.F) {
	f.Fuzz(func(t *testing.T, value string) {
		ts, sigs, err := parsePaddleSignature(value)
		checkKeyValues(t, ts, sigs, err)
	})
}

func checkKeyValues(t *testing.T, ts string, sigs [][]byte, err error) {
	if err != nil {
		if ts != "" || sigs != nil || !(errors.Is(err, ErrMissing) || errors.Is(err, ErrMalformed)) {
			t.Fatalf("error %v with ts %q, %d sigs", err, ts, len(sigs))
		}
		return
	}
	if ts == "" || len(sigs) > MaxSignatures {
		t.Fatalf("ts %q, %d sigs", ts, len(sigs))
	}
}

// FuzzStandardSignatures parses webhook-signature headers.
func FuzzStandardSignatures(f *testing.F) {
	f.Fuzz(func(t *testing.T, value string) {
		s := parseStdSignatures(value)
		if n := len(s.v1) + len(s.v1a); n > MaxSignatures {
			t.Fatalf("%d signatures kept", n)
		}
		for _, b := range append(s.v1, s.v1a...) {
			if len(b) == 0 {
				t.Fatal("empty signature kept")
			}
		}
	})
}

// FuzzGenericSignatures parses the generic scheme's signature header in
// each encoding.
func FuzzGenericSignatures(f *testing.F) {
	names := []string{"hex", "base64", "base64url"}
	f.Fuzz(func(t *testing.T, value, prefix string, enc uint8) {
		e := encodings[names[int(enc)%len(names)]]
		sigs := parseSignatures(value, prefix, e.decode)
		if len(sigs) > MaxSignatures {
			t.Fatalf("%d signatures kept", len(sigs))
		}
		for _, b := range sigs {
			if len(b) == 0 {
				t.Fatal("empty signature kept")
			}
		}
	})
}

// FuzzTimestamp parses timestamps: what parses is canonical decimal.
func FuzzTimestamp(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string, now int64) {
		n, ok := parseUnix(s)
		if ok && strconv.FormatInt(n, 10) != s {
			t.Fatalf("parseUnix(%q) = %d, not canonical", s, n)
		}
		for _, unit := range []time.Duration{time.Second, time.Millisecond} {
			err := checkTimestamp("fuzz", "T", s, unit, time.Unix(now, 0), DefaultTolerance)
			if err != nil && ok && !errors.Is(err, ErrExpired) {
				t.Fatalf("%q parsed but %v", s, err)
			}
			if err == nil && !ok {
				t.Fatalf("%q accepted without parsing", s)
			}
		}
	})
}

// FuzzTemplate parses generic templates: what parses reassembles to the
// same text.
func FuzzTemplate(f *testing.F) {
	f.Fuzz(func(t *testing.T, tmpl string) {
		segs, err := parseTemplate(tmpl)
		if err != nil {
			return
		}
		var b strings.Builder
		for _, s := range segs {
			if s.placeholder == "" {
				b.WriteString(s.literal)
			} else {
				b.WriteString(s.raw)
			}
		}
		if b.String() != tmpl {
			t.Fatalf("%q reassembles to %q", tmpl, b.String())
		}
	})
}

// FuzzMailgunBody parses Mailgun bodies of every content type.
func FuzzMailgunBody(f *testing.F) {
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		fields, err := parseMailgunBody(contentType, body)
		if err != nil && fields != (mailgunFields{}) {
			t.Fatalf("fields %+v with error %v", fields, err)
		}
	})
}

// FuzzJSONFields checks the field scanner against encoding/json: on any
// valid JSON it finds what encoding/json finds, and it never panics on
// anything else.
func FuzzJSONFields(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		_ = fields(body, "id", "type")
		_ = field(body, "event.type")
		n := 0
		isArray := eachElement(body, func([]byte) { n++ })
		if !json.Valid(body) || !utf8.Valid(body) {
			return
		}
		var arr []json.RawMessage
		if json.Unmarshal(body, &arr) == nil {
			if !isArray || n != len(arr) {
				t.Fatalf("array of %d elements read as %v, %d", len(arr), isArray, n)
			}
		}
		var m map[string]json.RawMessage
		if json.Unmarshal(body, &m) != nil {
			if fields(body, "x")[0] != nil {
				t.Fatal("a field found in a non-object")
			}
			return
		}
		for k, raw := range m {
			got := fields(body, k)[0]
			if got == nil {
				t.Fatalf("key %q not found", k)
			}
			var want any
			d := json.NewDecoder(bytes.NewReader(raw))
			d.UseNumber()
			if err := d.Decode(&want); err != nil {
				t.Fatal(err)
			}
			w := ""
			switch v := want.(type) {
			case string:
				w = v
			case json.Number:
				w = string(v)
			}
			if text(got) != w {
				t.Fatalf("key %q: text %q, encoding/json %q", k, text(got), w)
			}
		}
	})
}

// FuzzTwilioContent builds Twilio's signed content from URLs and bodies.
func FuzzTwilioContent(f *testing.F) {
	f.Fuzz(func(t *testing.T, rawURL string, body []byte) {
		u, err := url.Parse(rawURL)
		if err != nil {
			return
		}
		_, _ = twilioContent(u, body)
		_ = twilioURLs(u)
	})
}

// TestWriteFuzzSeeds writes the seed corpora when -write-seeds is given.
func TestWriteFuzzSeeds(t *testing.T) {
	if !*writeSeeds {
		t.Skip("run with -args -write-seeds to rewrite testdata/fuzz")
	}
	corpora := map[string][][]any{}
	for _, h := range headerSeeds {
		corpora["FuzzStripeSignature"] = append(corpora["FuzzStripeSignature"], []any{h})
		corpora["FuzzPaddleSignature"] = append(corpora["FuzzPaddleSignature"], []any{h})
		corpora["FuzzStandardSignatures"] = append(corpora["FuzzStandardSignatures"], []any{h})
		for i, p := range []string{"", "sha256=", "v1,"} {
			corpora["FuzzGenericSignatures"] = append(corpora["FuzzGenericSignatures"], []any{h, p, uint8(i)})
		}
	}
	for _, s := range timestampSeeds {
		corpora["FuzzTimestamp"] = append(corpora["FuzzTimestamp"], []any{s, int64(1614265330)})
	}
	for _, s := range templateSeeds {
		corpora["FuzzTemplate"] = append(corpora["FuzzTemplate"], []any{s})
	}
	for _, s := range verifySeeds {
		corpora["FuzzVerify"] = append(corpora["FuzzVerify"], []any{s.scheme, s.header, []byte(s.body), s.url, s.now})
		if s.scheme == 12 {
			ct, _, _ := strings.Cut(strings.TrimPrefix(s.header, "Content-Type: "), "\n")
			corpora["FuzzMailgunBody"] = append(corpora["FuzzMailgunBody"], []any{ct, []byte(s.body)})
		}
		if s.url != "" {
			corpora["FuzzTwilioContent"] = append(corpora["FuzzTwilioContent"], []any{s.url, []byte(s.body)})
		}
	}
	for _, b := range jsonSeeds {
		corpora["FuzzJSONFields"] = append(corpora["FuzzJSONFields"], []any{[]byte(b)})
	}
	corpora["FuzzMailgunBody"] = append(corpora["FuzzMailgunBody"],
		[]any{"application/x-www-form-urlencoded", []byte("timestamp=1&token=t&signature=00")}, []any{"", []byte("")}, []any{"multipart/form-data; boundary=", []byte("--")})

	for target, seeds := range corpora {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, args := range seeds {
			var b strings.Builder
			b.WriteString("go test fuzz v1\n")
			for _, a := range args {
				switch v := a.(type) {
				case string:
					fmt.Fprintf(&b, "string(%q)\n", v)
				case []byte:
					fmt.Fprintf(&b, "[]byte(%q)\n", v)
				case uint8:
					fmt.Fprintf(&b, "byte(%q)\n", rune(v))
				case int64:
					fmt.Fprintf(&b, "int64(%d)\n", v)
				}
			}
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed%02d", i)), []byte(b.String()), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
