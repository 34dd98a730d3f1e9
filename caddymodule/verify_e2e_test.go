package caddymodule

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hookgate/hookgate/event"
	"github.com/hookgate/hookgate/verify"
)

// schemeCase is one source of the end-to-end signature test: the Caddyfile
// verify line and the same settings for the test's signer.
type schemeCase struct {
	secret  string
	options map[string]string
	// tamper makes the signed request invalid; nil flips a body byte.
	tamper func(hdr http.Header, body []byte) []byte
}

// ed25519Hex is a test-only Ed25519 private key (seed||public, hex), which
// both verifies and signs for the discord scheme.
const ed25519Hex = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60" +
	"d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"

var schemeCases = map[string]schemeCase{
	"github":            {secret: "It's a Secret to Everybody"},
	"stripe":            {secret: "whsec_test_secret"},
	"standard-webhooks": {secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
	"svix":              {secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
	"slack":             {secret: "8f742231b10e8888abcd99yyyzzz85a5"},
	"shopify":           {secret: "shopify-client-secret"},
	"twilio":            {secret: "twilio-auth-token"},
	"paddle":            {secret: "pdl_ntfset_secret"},
	"square":            {secret: "square-signature-key"},
	"hubspot":           {secret: "hubspot-client-secret"},
	"discord":           {secret: ed25519Hex},
	"hmac":              {secret: "generic-secret", options: map[string]string{"header": "X-Signature", "prefix": "sha256=", "timestamp_header": "X-Timestamp"}},
	"mailgun": {secret: "mailgun-signing-key", tamper: func(_ http.Header, body []byte) []byte {
		// Mailgun signs timestamp and token, not the event: tamper with
		// the signature it carries in the body.
		return bytes.Replace(body, []byte(`"signature":"`), []byte(`"signature":"0`), 1)
	}},
	"gitlab": {secret: "gitlab-token", tamper: func(h http.Header, body []byte) []byte {
		h.Set("X-Gitlab-Token", "wrong-token")
		return body
	}},
}

// TestSignedDeliveriesEndToEnd posts a delivery signed the provider's way to
// a real gateway for every scheme: 2xx and stored; the same delivery
// tampered with: 401, uniform body, nothing stored.
func TestSignedDeliveriesEndToEnd(t *testing.T) {
	var schemes []string
	var sources strings.Builder
	for _, scheme := range verify.Schemes() {
		if scheme == "none" {
			continue
		}
		sc, ok := schemeCases[scheme]
		if !ok {
			t.Errorf("scheme %q has no end-to-end case: add one to schemeCases", scheme)
			continue
		}
		schemes = append(schemes, scheme)
		name := strings.ReplaceAll(scheme, "-", "_")
		fmt.Fprintf(&sources, "\t\tsource %s {\n\t\t\tverify %s %q", name, scheme, sc.secret)
		if len(sc.options) > 0 {
			keys := make([]string, 0, len(sc.options))
			for k := range sc.options {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			sources.WriteString(" {\n")
			for _, k := range keys {
				fmt.Fprintf(&sources, "\t\t\t\t%s %s\n", k, sc.options[k])
			}
			sources.WriteString("\t\t\t}")
		}
		sources.WriteString("\n\t\t}\n")
	}
	g := startGateway(t, gatewayConfig{Sources: sources.String()})

	var invalidBody []byte
	for i, scheme := range schemes {
		t.Run(scheme, func(t *testing.T) {
			sc := schemeCases[scheme]
			path := "/webhooks/v1/" + strings.ReplaceAll(scheme, "-", "_")
			u, _ := url.Parse(g.url(path))
			body := fmt.Sprintf(`{"id":"evt_%[1]d","event_id":"ev%[1]d","type":"test.event","event":{"type":"test.event"},"event-data":{"id":"mg%[1]d","event":"delivered"},"objectId":%[1]d}`, i)
			req := &verify.Request{Method: "POST", URL: u, Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(body), Now: time.Now()}
			signer, err := verify.NewSigner(verify.Config{Scheme: scheme, Secrets: []string{sc.secret}, Options: sc.options})
			if err != nil {
				t.Fatalf("signer: %v", err)
			}
			if err := signer.Sign(req); err != nil {
				t.Fatalf("sign: %v", err)
			}
			before := len(g.stored(event.StreamName))

			status, b := postRaw(t, g, req.URL, req.Header, req.Body)
			if status != http.StatusOK {
				t.Fatalf("signed delivery: status %d %s", status, b)
			}
			stored := g.stored(event.StreamName)
			if len(stored) != before+1 {
				t.Fatalf("signed delivery: %d events stored, want %d", len(stored), before+1)
			}
			last := stored[len(stored)-1]
			if !bytes.Equal(last.Data, req.Body) || last.Header.Get(event.HeaderVerified) != scheme {
				t.Fatalf("stored %q verified by %q", last.Data, last.Header.Get(event.HeaderVerified))
			}

			hdr := req.Header.Clone()
			tampered := bytes.Clone(req.Body)
			if sc.tamper != nil {
				tampered = sc.tamper(hdr, tampered)
			} else {
				tampered[len(tampered)/2] ^= 1
			}
			// A new delivery id, so dedup cannot be what answers.
			for _, k := range []string{"X-Github-Delivery", "Webhook-Id", "Svix-Id", "X-Shopify-Webhook-Id"} {
				if hdr.Get(k) != "" {
					hdr.Set(k, hdr.Get(k)+"-tampered")
				}
			}
			status, b = postRaw(t, g, req.URL, hdr, tampered)
			if status != http.StatusUnauthorized {
				t.Fatalf("tampered delivery: status %d %s", status, b)
			}
			if invalidBody == nil {
				invalidBody = b
			} else if !bytes.Equal(b, invalidBody) {
				t.Fatalf("401 body %s differs from another scheme's %s", b, invalidBody)
			}
			if n := len(g.stored(event.StreamName)); n != before+1 {
				t.Fatalf("tampered delivery stored: %d events", n)
			}
		})
	}
}

func postRaw(t *testing.T, g *gateway, u *url.URL, hdr http.Header, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = hdr.Clone()
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.Bytes()
}

// TestDiscordPing: Discord's signed PING (its check of a Webhook Events URL)
// gets 204 and is not stored; a forged PING gets 401; a signed event is
// stored as usual.
func TestDiscordPing(t *testing.T) {
	g := startGateway(t, gatewayConfig{Sources: "\t\tsource discord {\n\t\t\tverify discord " + ed25519Hex + "\n\t\t}\n"})
	signer, err := verify.NewSigner(verify.Config{Scheme: "discord", Secrets: []string{ed25519Hex}})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(g.url("/webhooks/v1/discord"))
	post := func(body string, forge bool) (int, []byte) {
		req := &verify.Request{Method: "POST", URL: u, Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(body)}
		if err := signer.Sign(req); err != nil {
			t.Fatal(err)
		}
		if forge {
			req.Header.Set("X-Signature-Ed25519", strings.Repeat("0", 128))
		}
		return postRaw(t, g, u, req.Header, req.Body)
	}
	ping := `{"version":1,"application_id":"1","type":0}`
	if status, b := post(ping, false); status != http.StatusNoContent || len(b) != 0 {
		t.Fatalf("PING: status %d body %q, want 204 and no body", status, b)
	}
	if status, _ := post(ping, true); status != http.StatusUnauthorized {
		t.Fatalf("forged PING: status %d, want 401", status)
	}
	if n := len(g.stored(event.StreamName)); n != 0 {
		t.Fatalf("%d events stored by PINGs", n)
	}
	if status, b := post(`{"version":1,"application_id":"1","type":1,"event":{"type":"APPLICATION_AUTHORIZED","timestamp":"2026-11-28T12:00:00Z"}}`, false); status != http.StatusOK {
		t.Fatalf("event: status %d %s", status, b)
	}
	if msgs := g.stored(event.StreamName); len(msgs) != 1 || msgs[0].Subject != "webhooks.v1.discord.APPLICATION_AUTHORIZED" {
		t.Fatalf("stored %d events", len(msgs))
	}
}
