package forwarder

import (
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/hookgate/hookgate/event"
)

// TestPreviewRedactsCredentials: the event log's "body sent" view shows
// transform_headers' changes; a credential set there must not show,
// whether its name says so (X-Auth, X-Password, X-Access-Key) or it copies
// a provider header the event log redacts (a signature under another name).
func TestPreviewRedactsCredentials(t *testing.T) {
	rt, err := compileRouting(&Config{TransformHeaders: `{
		"X-Auth": "s1", "X-Auth-Key": "s2", "X-Password": "s3", "X-Access-Key": "s4",
		"X-Api_Key": "s5", "X-Session-Id": "s6", "X-Credential": "s7",
		"X-Forwarded-Sig": headers["X-Hub-Signature-256"],
		"X-Kind": type, "X-Removed-Token": null}`})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := event.Decode(&nats.Msg{Subject: "webhooks.v1.gh.push", Header: nats.Header{
		event.HeaderID: {"gh:1"}, event.HeaderType: {"push"}, "X-Hub-Signature-256": {"sha256=abc"},
	}, Data: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	p, err := (&Forwarder{routing: rt}).Preview(ev)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"X-Auth", "X-Auth-Key", "X-Password", "X-Access-Key", "X-Api_key", "X-Session-Id", "X-Credential", "X-Forwarded-Sig"} {
		if p.Headers[h] != Redacted {
			t.Errorf("%s shows %q, want %s", h, p.Headers[h], Redacted)
		}
	}
	if p.Headers["X-Kind"] != "push" || p.Headers["X-Removed-Token"] != "" {
		t.Errorf("plain headers changed: %v", p.Headers)
	}
}
