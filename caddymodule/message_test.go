package caddymodule

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hookgate/hookgate/event"
	"github.com/hookgate/hookgate/verify"
)

// TestEventID: a short printable delivery id is kept; a long or
// unprintable one is hashed to a fixed-size safe value.
func TestEventID(t *testing.T) {
	long := strings.Repeat("x", maxDeliveryID+1)
	for _, tc := range []struct {
		id, want string
	}{
		{"abc-123", "demo:abc-123"},
		{strings.Repeat("x", maxDeliveryID), "demo:" + strings.Repeat("x", maxDeliveryID)},
		{long, "demo:sha256:"},
		{"has space", "demo:sha256:"},
		{"new\nline", "demo:sha256:"},
		{"é", "demo:sha256:"},
	} {
		got := string(appendEventID(nil, "demo", tc.id))
		if strings.HasSuffix(tc.want, ":sha256:") {
			if !strings.HasPrefix(got, tc.want) || len(got) != len(tc.want)+32 {
				t.Errorf("appendEventID(%q) = %q, want a hash", tc.id, got)
			}
			continue
		}
		if got != tc.want {
			t.Errorf("appendEventID(%q) = %q, want %q", tc.id, got, tc.want)
		}
	}
}

// TestMessage: the stored message keeps the provider's headers but not
// credentials, framing or reserved names, and adds Hookgate's own.
func TestMessage(t *testing.T) {
	h := &Handler{}
	received := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	m := new(eventMsg)
	for _, tc := range []struct {
		name    string
		src     *source
		res     verify.Result
		hdr     map[string]string
		gz      bool
		id      string
		subject string
		absent  []string
	}{
		{
			name: "provider id and type", src: &source{name: "gh", scheme: "github"},
			res: verify.Result{ID: "d1", Type: "push"},
			hdr: map[string]string{"X-Custom": "1", "Authorization": "Bearer x", "Cookie": "c", "Hookgate-Verified": "forged"},
			id:  "gh:d1", subject: "webhooks.v1.gh.push", absent: []string{"Authorization", "Cookie"},
		},
		{
			name: "id and type headers", src: &source{name: "demo", scheme: "none", idHeader: "X-Id", typeHeader: "X-Type"},
			hdr: map[string]string{"X-Id": "7", "X-Type": "order.created"},
			id:  "demo:7", subject: "webhooks.v1.demo.order.created",
		},
		{
			name: "gzip drops Content-Encoding", src: &source{name: "demo", scheme: "none"},
			hdr: map[string]string{"Content-Encoding": "gzip"}, gz: true,
			id: "demo:", subject: "webhooks.v1.demo", absent: []string{"Content-Encoding"},
		},
		{
			// RFC 9110 section 7.6.1: a field the Connection header names
			// belongs to the provider's connection; Hookgate's own stay.
			name: "Connection names hop-by-hop fields", src: &source{name: "demo", scheme: "none", idHeader: "X-Id"},
			hdr: map[string]string{"X-Id": "8", "Connection": "keep-alive, x-hop ,Hookgate-Id,,X-Other", "X-Hop": "1", "X-Other": "2"},
			id:  "demo:8", subject: "webhooks.v1.demo", absent: []string{"X-Hop", "X-Other", "Connection"},
		},
		{
			name: "dedup body", src: &source{name: "demo", scheme: "none", dedupBody: true},
			id: "demo:body:", subject: "webhooks.v1.demo",
		},
	} {
		r := httptest.NewRequest(http.MethodPost, "/webhooks/v1/x", nil)
		for k, v := range tc.hdr {
			r.Header.Set(k, v)
		}
		// One message for every case, reset between them as the pool
		// does: nothing of an earlier request may be stored again.
		m.reset(maxPooledHeaders)
		id := h.message(m, r, "v1", tc.src, tc.res, []byte("{}"), received, tc.gz)
		msg := &m.msg
		if !strings.HasPrefix(id, tc.id) || msg.Header.Get(event.HeaderID) != id {
			t.Errorf("%s: id %q (header %q), want prefix %q", tc.name, id, msg.Header.Get(event.HeaderID), tc.id)
		}
		if !strings.HasPrefix(msg.Subject, tc.subject) {
			t.Errorf("%s: subject %q, want %q", tc.name, msg.Subject, tc.subject)
		}
		if got := msg.Header.Get(event.HeaderVerified); got != tc.src.scheme {
			t.Errorf("%s: %s %q, want %q", tc.name, event.HeaderVerified, got, tc.src.scheme)
		}
		if got := msg.Header.Get(event.HeaderReceivedAt); got != "2026-01-02T03:04:05Z" {
			t.Errorf("%s: received at %q", tc.name, got)
		}
		for _, k := range tc.absent {
			if msg.Header.Get(k) != "" {
				t.Errorf("%s: %s stored", tc.name, k)
			}
		}
		if _, ok := tc.hdr["X-Custom"]; !ok && msg.Header.Get("X-Custom") != "" {
			t.Errorf("%s: an earlier request's X-Custom is stored with this one", tc.name)
		}
	}
}
