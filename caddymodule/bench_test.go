package caddymodule

import (
	"bytes"
	"context"
	"fmt"
	"io"
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
	"github.com/hookgate/hookgate/verify"
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
// waits for a group commit's fsync; "1s" shows the cost without it.
// cpu-ns/op is the process's CPU time per event, the server's (nats-server
// in-process) included.
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
	cpu := startCPU()
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
	b.StopTimer()
	cpu.report(b)
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

// BenchmarkHandlerHotPath is ServeHTTP on the accepted path without the
// store (issue 12's "handler hot path"): route, admit, read a 2 KiB JSON
// body, verify it, build the event and answer 2xx. The handler's publisher
// seam is answered by memPublisher, which records the event and
// acknowledges it at once, so no NATS and no disk are measured.
//
// The request plumbing is made once and reused: one *http.Request whose
// body is a resettable reader, and a ResponseWriter that discards the body
// and keeps the status. So allocs/op and ns/op are the handler's own, not
// httptest's. Each iteration carries a fresh delivery id (made before the
// timer starts). "github" signs the body with a real HMAC-SHA256 in
// GitHub's header shapes (X-Hub-Signature-256, X-GitHub-Delivery,
// X-GitHub-Event); "none" is the same request unverified. cpu-ns/op is
// the process's CPU time (user + system, GC included) per request: on a
// shared machine ns/op, wall time, also counts the time other jobs held
// the core.
func BenchmarkHandlerHotPath(b *testing.B) {
	body := benchBody(2048)
	for _, scheme := range []string{"github", "none"} {
		b.Run("verify="+scheme, func(b *testing.B) {
			src := &Source{Name: "demo", Verify: &VerifyConfig{Scheme: scheme}}
			if scheme == "none" {
				src.IDHeader, src.TypeHeader = "X-GitHub-Delivery", "X-GitHub-Event"
			} else {
				src.Verify.Secrets = []string{testSecret}
			}
			h := newTestHandler(b, &Handler{Sources: []*Source{src}}, nil)
			pub := &memPublisher{}
			h.events = pub
			r, w, setID := hotPathRequest(b, scheme, body)
			ids := make([]string, b.N)
			for i := range ids {
				ids[i] = "72d3162e-cc78-11e3-81ab-" + fmt.Sprintf("%012d", i)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			cpu := startCPU()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				setID(ids[i])
				w.reset()
				if err := h.ServeHTTP(w, r, nil); err != nil || w.status != http.StatusOK {
					b.Fatalf("status %d: %v", w.status, err)
				}
			}
			b.StopTimer()
			cpu.report(b)
			if want := "demo:" + ids[b.N-1]; pub.lastID != want || pub.n != b.N || pub.lastSubject != "webhooks.v1.demo.push" {
				b.Fatalf("last event %q on %q (%d events), want %q on webhooks.v1.demo.push (%d)", pub.lastID, pub.lastSubject, pub.n, want, b.N)
			}
			if want := `{"id":"demo:` + ids[b.N-1] + `","duplicate":false}`; string(w.body) != want {
				b.Fatalf("answer %s, want %s", w.body, want)
			}
		})
	}
}

// benchBody is a JSON object of n bytes, shaped like a provider's event.
func benchBody(n int) []byte {
	head := `{"action":"opened","number":42,"repository":{"full_name":"hookgate/hookgate"},"padding":"`
	tail := `"}`
	return []byte(head + strings.Repeat("x", n-len(head)-len(tail)) + tail)
}

// hotPathRequest makes the one request BenchmarkHandlerHotPath reuses, its
// writer, and a function that gives it the next delivery id and rewinds
// its body.
func hotPathRequest(tb testing.TB, scheme string, body []byte) (*http.Request, *discardWriter, func(id string)) {
	tb.Helper()
	hdr := http.Header{}
	hdr.Set("Content-Type", "application/json")
	hdr.Set("User-Agent", "GitHub-Hookshot/044aadd")
	hdr.Set("X-GitHub-Event", "push")
	hdr.Set("X-GitHub-Delivery", "placeholder")
	if scheme == "github" {
		s, err := verify.NewSigner(verify.Config{Scheme: "github", Secrets: []string{testSecret}})
		if err != nil {
			tb.Fatal(err)
		}
		if err := s.Sign(&verify.Request{Method: http.MethodPost, Header: hdr, Body: body, Now: time.Now()}); err != nil {
			tb.Fatal(err)
		}
	}
	rd := bytes.NewReader(body)
	r := httptest.NewRequest(http.MethodPost, "/webhooks/v1/demo", io.NopCloser(rd))
	r.ContentLength = int64(len(body))
	r.Header = hdr
	delivery := hdr["X-Github-Delivery"]
	return r, &discardWriter{hdr: http.Header{}}, func(id string) {
		delivery[0] = id
		rd.Reset(body)
	}
}

// discardWriter is a reusable ResponseWriter that keeps the status and the
// last body written.
type discardWriter struct {
	hdr    http.Header
	status int
	body   []byte
}

func (w *discardWriter) Header() http.Header { return w.hdr }

func (w *discardWriter) WriteHeader(status int) { w.status = status }

func (w *discardWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.body = append(w.body[:0], p...)
	return len(p), nil
}

// reset makes w ready for the next request, keeping its storage.
func (w *discardWriter) reset() {
	clear(w.hdr)
	w.status = 0
	w.body = w.body[:0]
}

// memPublisher is the store replaced for BenchmarkHandlerHotPath (issue
// 12 measures the handler "without the store"): it records each event's
// id and subject and acknowledges it at once.
type memPublisher struct {
	n                   int
	lastID, lastSubject string
	seq                 uint64
	ack                 jetstream.PubAck
}

func (p *memPublisher) publish(_ context.Context, msg *nats.Msg) (*jetstream.PubAck, error) {
	p.n++
	p.lastID, p.lastSubject = msg.Header.Get(event.HeaderID), msg.Subject
	p.seq++
	p.ack = jetstream.PubAck{Stream: event.StreamName, Sequence: p.seq}
	return &p.ack, nil
}

var _ publisher = (*memPublisher)(nil)

// cpuMark is the process's CPU time at the start of a measurement.
type cpuMark struct {
	at time.Duration
	ok bool
}

// startCPU marks the start of a measurement.
func startCPU() cpuMark {
	at, ok := processCPU()
	return cpuMark{at, ok}
}

// report adds the CPU time per operation since m to b's results as
// cpu-ns/op: on a shared machine, ns/op (wall time) counts the time other
// jobs held the cores too.
func (m cpuMark) report(b *testing.B) {
	if now, ok := processCPU(); ok && m.ok && b.N > 0 {
		b.ReportMetric(float64(now-m.at)/float64(b.N), "cpu-ns/op")
	}
}
