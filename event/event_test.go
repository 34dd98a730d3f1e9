package event

import (
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
)

func TestSubject(t *testing.T) {
	tests := []struct{ typ, want string }{
		{"invoice.paid", "webhooks.v1.stripe.invoice.paid"},
		{"pull_request", "webhooks.v1.stripe.pull_request"},
		{"", "webhooks.v1.stripe.unknown"},
		{"a..b", "webhooks.v1.stripe.a._.b"},
		{".", "webhooks.v1.stripe._._"},
		{"orders/create", "webhooks.v1.stripe.orders_create"},
		{"a b*>", "webhooks.v1.stripe.a_b__"},
		{"x.", "webhooks.v1.stripe.x._"},
		{"é", "webhooks.v1.stripe.__"},
		{"1.2.3.4.5.6.7.8.9.10", "webhooks.v1.stripe.1.2.3.4.5.6.7.8"},
		{strings.Repeat("a", 300), "webhooks.v1.stripe." + strings.Repeat("a", maxTypeLen)},
	}
	for _, tt := range tests {
		if got := Subject("v1", "stripe", tt.typ); got != tt.want {
			t.Errorf("Subject(%q) = %q, want %q", tt.typ, got, tt.want)
		}
	}
	if got := DLQSubject("orders", "webhooks.v1.stripe.invoice.paid"); got != "webhooks_dlq.orders.v1.stripe.invoice.paid" {
		t.Errorf("DLQSubject = %q", got)
	}
}

// FuzzSubject: whatever type a provider sends, the subject is a valid,
// wildcard-free NATS subject of bounded depth under webhooks.v1.src.
func FuzzSubject(f *testing.F) {
	for _, s := range []string{"invoice.paid", "", ".", "a..b", "*", ">", "a b", "\x00", strings.Repeat(".", 20)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, typ string) {
		s := Subject("v1", "src", typ)
		if !strings.HasPrefix(s, "webhooks.v1.src.") {
			t.Fatalf("subject %q escapes its prefix", s)
		}
		tokens := strings.Split(s, ".")
		if len(tokens) > 3+maxTypeTokens {
			t.Fatalf("subject %q has %d tokens", s, len(tokens))
		}
		for _, tok := range tokens {
			if tok == "" || strings.ContainsAny(tok, "*> \t\r\n") {
				t.Fatalf("subject %q has an invalid token %q", s, tok)
			}
		}
	})
}

func TestDecodeRejectsForeignMessages(t *testing.T) {
	if _, err := Decode(&nats.Msg{Subject: "webhooks.v1.a.b", Header: nats.Header{}}); err != ErrNotEvent {
		t.Fatalf("err %v, want ErrNotEvent", err)
	}
	h := nats.Header{}
	h.Set(HeaderID, "a:1")
	h.Set(HeaderReceivedAt, "yesterday")
	if _, err := Decode(&nats.Msg{Subject: "webhooks.v1.a.b", Header: h}); err == nil {
		t.Fatal("a bad received-at was accepted")
	}
}

func TestProviderHeaderDropsReserved(t *testing.T) {
	h := nats.Header{"Nats-Msg-Id": {"x"}, "Hookgate-Id": {"y"}, "X-GitHub-Event": {"push"}, "hookgate-lower": {"z"}}
	got := ProviderHeader(h)
	if len(got) != 1 || got.Get("X-GitHub-Event") != "push" {
		t.Fatalf("ProviderHeader = %v", got)
	}
}

// TestDecodeFieldsIsDecodeWithoutHeader: DecodeFields reads what Decode
// reads but the header map, and ProviderHeaders yields that map's entries
// (canonical names, reserved ones dropped) from the message itself.
func TestDecodeFieldsIsDecodeWithoutHeader(t *testing.T) {
	h := providerHeaderFixture()
	h["x-lower-case"] = []string{"kept"}
	msg := &nats.Msg{Subject: "webhooks.v1.github.push", Header: h, Data: []byte(`{}`)}
	full, err := Decode(msg)
	if err != nil {
		t.Fatal(err)
	}
	lean, err := DecodeFields(msg.Subject, msg.Header, msg.Data)
	if err != nil {
		t.Fatal(err)
	}
	if lean.Header != nil {
		t.Fatalf("DecodeFields made a header map: %v", lean.Header)
	}
	withMap := lean
	withMap.Header = full.Header
	if !reflect.DeepEqual(&withMap, full) {
		t.Fatalf("DecodeFields = %+v,\nDecode = %+v", lean, full)
	}
	got := http.Header{}
	for k, v := range ProviderHeaders(h) {
		got[k] = append(got[k], v...)
	}
	if !reflect.DeepEqual(got, full.Header) || got.Get("X-Lower-Case") != "kept" || got.Get(HeaderID) != "" {
		t.Fatalf("ProviderHeaders yielded %v, ProviderHeader made %v", got, full.Header)
	}
	if _, err := DecodeFields("webhooks.v1.a.b", nats.Header{}, nil); err != ErrNotEvent {
		t.Fatalf("a foreign message: %v, want ErrNotEvent", err)
	}
}

// TestIsHopByHop: connection and framing headers are hop-by-hop; the
// message's own headers are not.
func TestIsHopByHop(t *testing.T) {
	for name, want := range map[string]bool{
		"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Te": true, "Upgrade": true,
		"Content-Length": true, "Transfer-Encoding": true, "Trailer": true, "Expect": true,
		"Content-Type": false, "X-Github-Event": false, "Authorization": false, "Host": false,
	} {
		if got := IsHopByHop(name); got != want {
			t.Errorf("IsHopByHop(%q) = %v, want %v", name, got, want)
		}
	}
}

// providerHeaderFixture is a stored message's headers as the gateway
// writes them: Hookgate's metadata and a GitHub delivery's own headers.
func providerHeaderFixture() nats.Header {
	h := nats.Header{}
	for k, v := range map[string]string{
		HeaderID: "github:1", HeaderSource: "github", HeaderReceivedAt: "2026-11-30T10:00:00Z", "Nats-Msg-Id": "github:1",
		"X-Github-Event": "push", "X-Github-Delivery": "1", "X-Github-Hook-Id": "42", "User-Agent": "GitHub-Hookshot/1",
		"X-Hub-Signature-256": "sha256=00", "Content-Type": "application/json", "Accept": "*/*", "X-Github-Hook-Installation-Target-Type": "repository",
	} {
		h.Set(k, v)
	}
	return h
}

// TestProviderHeaderSharesValuesSafely: ProviderHeader makes one map and
// no slice per header (the forwarder decodes a filtered or transformed
// destination's every delivery with it), and
// sharing the stored message's value slices stays safe: appending to a
// value of the result leaves the message's headers as they were, and two
// names that canonicalize to one are merged into a new slice.
func TestProviderHeaderSharesValuesSafely(t *testing.T) {
	h := providerHeaderFixture()
	got := ProviderHeader(h)
	if len(got) != 8 || got.Get("X-Github-Event") != "push" || got.Get(HeaderID) != "" {
		t.Fatalf("ProviderHeader = %v", got)
	}
	got["X-Github-Event"] = append(got["X-Github-Event"], "pull")
	got.Add("Accept", "text/plain")
	if v := h.Values("X-Github-Event"); len(v) != 1 || v[0] != "push" || len(h.Values("Accept")) != 1 {
		t.Fatalf("appending to the result changed the message's headers: %v", h)
	}
	mixed := nats.Header{"X-Custom": {"a"}, "x-custom": {"b"}}
	m := ProviderHeader(mixed)
	if v := m.Values("X-Custom"); len(v) != 2 || len(mixed["X-Custom"]) != 1 || len(mixed["x-custom"]) != 1 {
		t.Fatalf("merged %v from %v", v, mixed)
	}
	mapOnly := testing.AllocsPerRun(100, func() {
		m := make(http.Header, len(h))
		for k, v := range got {
			m[k] = v
		}
		headerSink = m // escapes, as ProviderHeader's result does
	})
	allocs := testing.AllocsPerRun(100, func() { _ = ProviderHeader(h) })
	if allocs > mapOnly {
		t.Fatalf("ProviderHeader of 8 provider headers: %.0f allocations, want the map's alone (%.0f)", allocs, mapOnly)
	}
}

// headerSink keeps a test's map on the heap.
var headerSink http.Header

// BenchmarkProviderHeader: the provider's headers of one stored GitHub
// delivery, as the forwarder decodes them for every attempt to a
// destination with filters or a transformation.
func BenchmarkProviderHeader(b *testing.B) {
	h := providerHeaderFixture()
	b.ReportAllocs()
	for b.Loop() {
		_ = ProviderHeader(h)
	}
}
