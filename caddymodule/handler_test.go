package caddymodule

import (
	"context"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestRoute: only <prefix>/<version>/<source> with a known version the
// source takes routes; a retired version routes (for its 410).
func TestRoute(t *testing.T) {
	h := &Handler{
		Prefix:   "/hooks",
		Versions: []string{"v1", "v2"},
		Retired:  []string{"v0"},
		Sources: []*Source{
			{Name: "demo", Verify: &VerifyConfig{Scheme: "none"}},
			{Name: "old", Verify: &VerifyConfig{Scheme: "none"}, Versions: []string{"v1"}},
		},
	}
	if err := h.provision(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path, version, source string
	}{
		{"/hooks/v1/demo", "v1", "demo"},
		{"/hooks/v2/demo", "v2", "demo"},
		{"/hooks/v0/demo", "v0", "demo"},
		{"/hooks/v1/old", "v1", "old"},
		{"/hooks/v2/old", "", ""},
		{"/hooks/v3/demo", "", ""},
		{"/hooks/v1/nosuch", "", ""},
		{"/hooks/v1/demo/extra", "", ""},
		{"/hooks/v1", "", ""},
		{"/hooks", "", ""},
		{"/webhooks/v1/demo", "", ""},
		{"/hooksv1/demo", "", ""},
		{"/hooks/v1%2Fdemo", "", ""},
	} {
		version, src := h.route(tc.path)
		if version != tc.version || src.nameOrEmpty() != tc.source {
			t.Errorf("route(%q) = %q, %q; want %q, %q", tc.path, version, src.nameOrEmpty(), tc.version, tc.source)
		}
	}
}

// faultyStore is a publisher whose disk fails mid-write: JetStream answers
// with a storage error, which no test can make a real disk do on demand.
type faultyStore struct{ calls atomic.Int32 }

func (f *faultyStore) publish(context.Context, *nats.Msg) (*jetstream.PubAck, error) {
	f.calls.Add(1)
	return nil, &jetstream.APIError{Code: http.StatusServiceUnavailable, ErrorCode: 10077, Description: "write error: input/output error"}
}

// TestStoreFaultIs503: whatever store is plugged in, a failed write is a
// 503 with Retry-After and a store-unavailable problem, never a 2xx.
func TestStoreFaultIs503(t *testing.T) {
	store := new(faultyStore)
	h := newTestHandler(t, &Handler{
		RetryAfter: caddy.Duration(9 * time.Second),
		Sources:    []*Source{{Name: "demo", Verify: &VerifyConfig{Scheme: "none"}}},
	}, nil)
	h.events = store
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodPost, "/webhooks/v1/demo", strings.NewReader(`{"a":1}`))
	if err := h.ServeHTTP(w, r, nil); err != nil {
		t.Fatal(err)
	}
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "9" {
		t.Fatalf("status %d Retry-After %q, want 503 and 9", w.Code, w.Header().Get("Retry-After"))
	}
	if p := problemOf(t, w.Header(), w.Body.Bytes()); p["type"] != "urn:hookgate:problem:store-unavailable" {
		t.Fatalf("problem %v", p)
	}
	if n := store.calls.Load(); n != 1 {
		t.Fatalf("%d writes, want 1", n)
	}
}

// TestWarnIfUnverified: a config with verify none gets one warning naming
// the unsigned paths; a fully signed one gets none.
func TestWarnIfUnverified(t *testing.T) {
	for _, tc := range []struct {
		sources []*Source
		want    []any
	}{
		{[]*Source{{Name: "gh", Verify: &VerifyConfig{Scheme: "github", Secrets: []string{"s"}}}}, nil},
		{[]*Source{
			{Name: "gh", Verify: &VerifyConfig{Scheme: "github", Secrets: []string{"s"}}},
			{Name: "a", Verify: &VerifyConfig{Scheme: "none"}},
			{Name: "b", Verify: &VerifyConfig{Scheme: "none"}},
		}, []any{"/webhooks/<version>/a", "/webhooks/<version>/b"}},
	} {
		core, logs := observer.New(zapcore.WarnLevel)
		h := &Handler{Sources: tc.sources}
		if err := h.provision(); err != nil {
			t.Fatal(err)
		}
		h.logger = zap.New(core)
		h.warnIfUnverified()
		entries := logs.All()
		if tc.want == nil {
			if len(entries) != 0 {
				t.Fatalf("warned about a signed config: %v", entries)
			}
			continue
		}
		if len(entries) != 1 || !strings.Contains(entries[0].Message, "verify none") {
			t.Fatalf("want one warning about verify none, got %v", entries)
		}
		if got := entries[0].ContextMap()["paths"]; !reflect.DeepEqual(got, tc.want) {
			t.Fatalf("paths %v, want %v", got, tc.want)
		}
	}
}

// TestWarnIfReplayOutlivesDedup: a source whose signature tolerance
// (given, or the scheme's default: mailgun resends for 8h) outlasts the
// dedup window is warned about, once, by name; others are not.
func TestWarnIfReplayOutlivesDedup(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	h := &Handler{logger: zap.New(core), Sources: []*Source{
		{Name: "gh", Verify: &VerifyConfig{Scheme: "github", Secrets: []string{"s"}}},
		{Name: "mg", Verify: &VerifyConfig{Scheme: "mailgun", Secrets: []string{"s"}}},
		{Name: "long", Verify: &VerifyConfig{Scheme: "stripe", Secrets: []string{"s"}}, Tolerance: caddy.Duration(7 * time.Hour)},
		{Name: "open", Verify: &VerifyConfig{Scheme: "none"}},
	}}
	h.warnIfReplayOutlivesDedup(6 * time.Hour)
	var warned []string
	for _, e := range logs.All() {
		warned = append(warned, e.ContextMap()["source"].(string))
	}
	if !reflect.DeepEqual(warned, []string{"mg", "long"}) {
		t.Fatalf("warned about %v, want [mg long]", warned)
	}
	logs.TakeAll()
	h.warnIfReplayOutlivesDedup(8 * time.Hour)
	if n := logs.Len(); n != 0 {
		t.Fatalf("%d warnings with an 8h dedup window", n)
	}
}

// TestDeadlineSlots: publishes starting within one slot share a context;
// its deadline is never later than publish_timeout after a publish started
// and at most one slot earlier; the next slot gets a new context.
func TestDeadlineSlots(t *testing.T) {
	const timeout = time.Second
	width := min(maxSlot, timeout/64)
	var d deadlineSlots
	t0 := time.Now()
	first := d.context(t0, timeout)
	for _, at := range []time.Duration{0, width / 2, width - 1} {
		ctx := d.context(t0.Add(at), timeout)
		if ctx != first {
			t.Errorf("a publish %s into the slot got a context of its own", at)
		}
		dl, _ := ctx.Deadline()
		if latest, earliest := t0.Add(at+timeout), t0.Add(at+timeout-width); dl.After(latest) || dl.Before(earliest) {
			t.Errorf("a publish %s into the slot: deadline %s, want within [%s, %s]", at, dl, earliest, latest)
		}
	}
	next := d.context(t0.Add(width), timeout)
	if next == first {
		t.Error("the next slot reuses the previous context")
	}
	if early := d.context(t0.Add(width-time.Millisecond), timeout); early == next {
		t.Error("a publish that started before the slot shares its later deadline")
	}
	select {
	case <-first.Done():
		t.Fatal("a slot's context ended before its deadline")
	default:
	}
	short := d.context(time.Now(), 10*time.Millisecond)
	select {
	case <-short.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("a slot's context did not end at its deadline")
	}
}

// deadlineWriter is a discardWriter that records the read deadlines the
// handler sets on its connection (as http.ResponseController finds them).
type deadlineWriter struct {
	discardWriter
	deadlines []time.Time
}

func (w *deadlineWriter) SetReadDeadline(t time.Time) error {
	w.deadlines = append(w.deadlines, t)
	return nil
}

// TestBodyDeadlineLift: the body is read under body_timeout; after it,
// the deadline is lifted when the store's wait (publish_timeout, plus
// liftMargin for the rest of the handler) could reach it, and left when
// it cannot (net/http replaces it before the connection's next read).
func TestBodyDeadlineLift(t *testing.T) {
	for _, tc := range []struct {
		bodyTimeout, publishTimeout time.Duration
		lifted                      bool
	}{
		{10 * time.Second, 5 * time.Second, false},
		{2 * time.Second, 5 * time.Second, true},
		{5*time.Second + liftMargin, 5 * time.Second, true},
	} {
		src := &Source{Name: "demo", Verify: &VerifyConfig{Scheme: "none"}, IDHeader: "X-GitHub-Delivery", TypeHeader: "X-GitHub-Event",
			BodyTimeout: caddy.Duration(tc.bodyTimeout)}
		h := newTestHandler(t, &Handler{Sources: []*Source{src}, PublishTimeout: caddy.Duration(tc.publishTimeout)}, nil)
		h.events = &memPublisher{}
		r, _, setID := hotPathRequest(t, "none", benchBody(512))
		setID("lift")
		w := &deadlineWriter{discardWriter: discardWriter{hdr: http.Header{}}}
		start := time.Now()
		if err := h.ServeHTTP(w, r, nil); err != nil || w.status != http.StatusOK {
			t.Fatalf("body_timeout %s: status %d: %v", tc.bodyTimeout, w.status, err)
		}
		end := time.Now()
		want := 1
		if tc.lifted {
			want = 2
		}
		if len(w.deadlines) != want {
			t.Fatalf("body_timeout %s, publish_timeout %s: read deadlines %v, want %d", tc.bodyTimeout, tc.publishTimeout, w.deadlines, want)
		}
		if d := w.deadlines[0]; d.Before(start.Add(tc.bodyTimeout)) || d.After(end.Add(tc.bodyTimeout)) {
			t.Errorf("body_timeout %s: the body's deadline is %s after the request", tc.bodyTimeout, d.Sub(start))
		}
		if tc.lifted && !w.deadlines[1].IsZero() {
			t.Errorf("body_timeout %s: lifted to %v, want no deadline", tc.bodyTimeout, w.deadlines[1])
		}
	}
}
