package caddymodule

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
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
		})
	}
}

// BenchmarkFrontDoorReject is the cost of turning a request away before
// the store: an unknown path (404) and a source over its rate (429).
func BenchmarkFrontDoorReject(b *testing.B) {
	for _, tc := range []struct {
		name, path string
		want       int
	}{
		{"404", "/webhooks/v1/nosuch", http.StatusNotFound},
		{"405", "/webhooks/v1/demo", http.StatusMethodNotAllowed},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h := newTestHandler(b, &Handler{Sources: []*Source{{
				Name: "demo", Verify: &VerifyConfig{Scheme: "none"},
			}}}, nil)
			method := http.MethodPost
			if tc.want == http.StatusMethodNotAllowed {
				method = http.MethodGet
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r := withClientIP(httptest.NewRequest(method, tc.path, nil), "192.0.2.1")
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
