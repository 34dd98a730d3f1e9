package caddymodule

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
)

// TestRequestURL: the URL a scheme verifies is the public_url when set
// (with the request's query unless it has its own), else the request's own
// URL with its host and scheme.
func TestRequestURL(t *testing.T) {
	public, _ := url.Parse("https://hooks.example.com/webhooks/v1/twilio")
	withQuery, _ := url.Parse("https://hooks.example.com/webhooks/v1/twilio?fixed=1")
	for _, tc := range []struct {
		name, target string
		tls          bool
		public       *url.URL
		want         string
	}{
		{"plain", "http://gw.internal:8080/webhooks/v1/twilio?a=1", false, nil, "http://gw.internal:8080/webhooks/v1/twilio?a=1"},
		{"tls", "https://gw.internal/webhooks/v1/twilio", true, nil, "https://gw.internal/webhooks/v1/twilio"},
		{"public_url", "http://10.0.0.5/webhooks/v1/twilio?a=1", false, public, "https://hooks.example.com/webhooks/v1/twilio?a=1"},
		{"public_url with query", "http://10.0.0.5/webhooks/v1/twilio?a=1", false, withQuery, "https://hooks.example.com/webhooks/v1/twilio?fixed=1"},
	} {
		r := httptest.NewRequest(http.MethodPost, tc.target, nil)
		if tc.tls {
			r.TLS = &tls.ConnectionState{}
		} else {
			r.TLS = nil
		}
		got := (&source{publicURL: tc.public}).requestURL(r, new(url.URL)).String()
		if got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

// TestValidSegment: only [a-z0-9_-]{1,64} is a version or source name.
func TestValidSegment(t *testing.T) {
	for s, want := range map[string]bool{
		"v1": true, "github": true, "a_b-c9": true, "": false, "V1": false, "a.b": false,
		"a/b": false, "a b": false, "é": false,
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa":  true,
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa": false,
	} {
		if got := validSegment(s); got != want {
			t.Errorf("validSegment(%q) = %v, want %v", s, got, want)
		}
	}
}
