package forwarder

import (
	"testing"
	"unicode/utf8"
)

func TestRedactHeader(t *testing.T) {
	in := map[string][]string{
		"Authorization":         {"Bearer secret"},
		"Cookie":                {"a=b"},
		"Set-Cookie":            {"s=1", "t=2"},
		"X-Hub-Signature-256":   {"sha256=abc"},
		"Stripe-Signature":      {"t=1,v1=x"},
		"X-Shopify-Hmac-Sha256": {"xyz"},
		"X-Gitlab-Token":        {"tok"},
		"X-Api-Key":             {"k"},
		"Content-Type":          {"application/json"},
		"X-Github-Event":        {"push"},
	}
	out := RedactHeader(in)
	// The expected set is written out, not asked of IsCredentialHeader:
	// the test must fail if that function stops naming a credential.
	credentials := map[string]bool{"Authorization": true, "Cookie": true, "Set-Cookie": true,
		"X-Hub-Signature-256": true, "Stripe-Signature": true, "X-Shopify-Hmac-Sha256": true,
		"X-Gitlab-Token": true, "X-Api-Key": true}
	for k, vs := range out {
		redacted := vs[0] == Redacted
		if want := credentials[k]; redacted != want {
			t.Errorf("%s: redacted %v, want %v", k, redacted, want)
		}
		if len(vs) != len(in[k]) {
			t.Errorf("%s: %d values, want %d", k, len(vs), len(in[k]))
		}
	}
	if out["Content-Type"][0] != "application/json" || out["X-Github-Event"][0] != "push" || len(out) != len(in) {
		t.Errorf("kept headers changed: %v", out)
	}
	if in["Authorization"][0] != "Bearer secret" {
		t.Error("RedactHeader changed its input")
	}
}

func TestEncodeBody(t *testing.T) {
	if s, enc := EncodeBody([]byte(`{"a":"é"}`)); s != `{"a":"é"}` || enc != "" {
		t.Errorf("text: %q %q", s, enc)
	}
	s, enc := EncodeBody([]byte{0xff, 0x00, 0x10})
	if enc != "base64" || s != "/wAQ" || !utf8.ValidString(s) {
		t.Errorf("binary: %q %q", s, enc)
	}
}
