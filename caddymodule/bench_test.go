package caddymodule

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookgate/hookgate/event"
)

// startApp provisions and starts a webhooks app on a temporary store,
// outside any Caddy config, and stops it when the test ends. sync is the
// app's sync setting ("" for always).
func startApp(tb testing.TB, sync string) *App {
	tb.Helper()
	a := &App{Store: tb.TempDir(), Listen: "off", Sync: sync}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	tb.Cleanup(cancel)
	if err := a.Provision(ctx); err != nil {
		tb.Fatal(err)
	}
	a.logger = zapNop()
	if err := a.Validate(); err != nil {
		tb.Fatal(err)
	}
	if err := a.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = a.Stop() })
	return a
}

// newTestHandler provisions h as Caddy would, on app (nil: an app that is
// never ready, for paths that must not reach the store).
func newTestHandler(tb testing.TB, h *Handler, app *App) *Handler {
	tb.Helper()
	if err := h.provision(); err != nil {
		tb.Fatal(err)
	}
	if app == nil {
		app = &App{ready: make(chan struct{})}
	}
	h.app = app
	h.events = app
	h.logger = zapNop()
	if c, ok := any(h).(caddy.CleanerUpper); ok {
		tb.Cleanup(func() { _ = c.Cleanup() })
	}
	return h
}

// withClientIP gives r the client IP variable Caddy's server sets, as if
// trusted_proxies had resolved it.
func withClientIP(r *http.Request, ip string) *http.Request {
	vars := map[string]any{caddyhttp.ClientIPVarKey: ip}
	return r.WithContext(context.WithValue(r.Context(), caddyhttp.VarsCtxKey, vars))
}

// BenchmarkIngest is the whole accepted path through ServeHTTP: route,
// admit, read, verify (none), publish and wait for the PubAck. "always"
// pays one fsync per event; "1s" shows the cost without it.
func BenchmarkIngest(b *testing.B) {
	for _, sync := range []string{"always", "1s"} {
		b.Run("sync="+sync, func(b *testing.B) {
			app := startApp(b, sync)
			h := newTestHandler(b, &Handler{Sources: []*Source{{
				Name: "demo", Verify: &VerifyConfig{Scheme: "none"}, IDHeader: "X-Id",
			}}}, app)
			benchIngest(b, h)
		})
	}
}

// benchIngest posts a small order event to h's source "demo" (with its
// id in X-Id) from parallel goroutines, each accepted with a 200.
func benchIngest(b *testing.B, h *Handler) {
	body := `{"event":"order.created","id":12345,"amount":4200,"currency":"eur"}`
	var n atomic.Int64
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := httptest.NewRequest(http.MethodPost, "/webhooks/v1/demo", strings.NewReader(body))
			r.Header.Set("X-Id", strconv.FormatInt(n.Add(1), 10))
			r = withClientIP(r, "192.0.2.1")
			w := httptest.NewRecorder()
			if err := h.ServeHTTP(w, r, nil); err != nil || w.Code != http.StatusOK {
				b.Fatalf("status %d: %v %s", w.Code, err, w.Body)
			}
		}
	})
}

// BenchmarkFrontDoorReject is the cost of turning a request away before
// the store: an unknown path (404), a wrong method (405), a client over its
// per-IP budget and a source over its rate (429).
func BenchmarkFrontDoorReject(b *testing.B) {
	hour := caddy.Duration(time.Hour)
	for _, tc := range []struct {
		name, method, path string
		h                  Handler
		want               int
	}{
		{name: "404", method: http.MethodPost, path: "/webhooks/v1/nosuch", want: http.StatusNotFound},
		{name: "405", method: http.MethodGet, path: "/webhooks/v1/demo", want: http.StatusMethodNotAllowed},
		{name: "429-per-ip", method: http.MethodPost, path: "/webhooks/v1/demo", want: http.StatusTooManyRequests,
			h: Handler{RatePerIP: &RateLimit{Events: 1, Window: hour}}},
		{name: "429-source", method: http.MethodPost, path: "/webhooks/v1/demo", want: http.StatusTooManyRequests,
			h: Handler{Sources: []*Source{{Name: "demo", Verify: &VerifyConfig{Scheme: "none"}, Rate: &RateLimit{Events: 1, Window: hour}}}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h := tc.h
			if h.Sources == nil {
				h.Sources = []*Source{{Name: "demo", Verify: &VerifyConfig{Scheme: "none"}}}
			}
			newTestHandler(b, &h, nil)
			// Spend the one token of the 429 cases.
			_ = h.ServeHTTP(httptest.NewRecorder(), withClientIP(httptest.NewRequest(tc.method, tc.path, nil), "192.0.2.1"), nil)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r := withClientIP(httptest.NewRequest(tc.method, tc.path, nil), "192.0.2.1")
					w := httptest.NewRecorder()
					_ = h.ServeHTTP(w, r, nil)
					if w.Code != tc.want {
						b.Fatalf("status %d, want %d", w.Code, tc.want)
					}
				}
			})
		})
	}
}

// BenchmarkDedupWindowMemory measures what the dedup window costs: the
// embedded server keeps every Nats-Msg-Id of the window in memory. It
// publishes 100k distinct ids shaped like provider delivery ids into a
// stream with a 6h window, and the same number of messages without ids
// into another, and reports the difference in live heap per id.
func BenchmarkDedupWindowMemory(b *testing.B) {
	const n = 100_000
	grow := func(withIDs bool) float64 {
		e, err := newEngine(engineConfig{
			StoreDir: b.TempDir(), ServerName: "dedup-bench", SyncInterval: time.Minute,
			MaxStore: 1 << 30, MaxPayload: 1 << 20,
		}, zapNop())
		if err != nil {
			b.Fatal(err)
		}
		defer e.shutdown()
		ctx := context.Background()
		if _, err := e.js.CreateStream(ctx, jetstream.StreamConfig{
			Name: "DEDUP", Subjects: []string{"dedup.>"}, Storage: jetstream.FileStorage,
			Duplicates: 6 * time.Hour,
		}); err != nil {
			b.Fatal(err)
		}
		before := heapInUse()
		body := []byte(`{"id":"evt"}`)
		for i := range n {
			msg := &nats.Msg{Subject: "dedup.v1.github.push", Data: body, Header: nats.Header{}}
			if withIDs {
				msg.Header.Set(event.HeaderMsgID, fmt.Sprintf("github:%08x-cc78-11e3-81ab-4c9367dc0958", i))
			}
			if _, err := e.js.PublishMsgAsync(msg); err != nil {
				b.Fatal(err)
			}
		}
		select {
		case <-e.js.PublishAsyncComplete():
		case <-time.After(time.Minute):
			b.Fatal("publishes not acknowledged in a minute")
		}
		return float64(int64(heapInUse()) - int64(before))
	}
	for range b.N {
		with, without := grow(true), grow(false)
		b.ReportMetric((with-without)/n, "bytes/id")
		b.ReportMetric(with/(1<<20), "MiB-heap-with-ids")
		b.ReportMetric(without/(1<<20), "MiB-heap-without")
	}
}

// BenchmarkCountRequest is what counting one answered request in
// caddy_webhooks_requests_total adds to the request path.
func BenchmarkCountRequest(b *testing.B) {
	q := &request{now: time.Now()}
	for b.Loop() {
		countRequest(q, "github", "v1", "invalid-signature")
	}
}
