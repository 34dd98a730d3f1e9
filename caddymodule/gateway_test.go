package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/hookgate/hookgate/event"
	"github.com/hookgate/hookgate/internal/testgw"
	"github.com/hookgate/hookgate/internal/waitfor"
)

// gateway is a real Caddy, loaded in this process from a real Caddyfile,
// with the webhooks app and a webhook_ingest site on a loopback port.
type gateway struct {
	t     *testing.T
	store string
	addr  string // host:port of the site
	cfg   gatewayConfig
}

// gatewayConfig fills the test Caddyfile template.
type gatewayConfig struct {
	Store        string
	Addr         string
	Global       string // extra lines inside the webhooks block
	Sources      string // source blocks inside webhook_ingest
	Ingest       string // extra lines inside webhook_ingest
	Destinations string // destination blocks
	Admin        string // the admin API's address; "" turns it off
}

const gatewayTemplate = `{
	admin off
	persist_config off
	auto_https off
	storage file_system %[1]s/caddy
	webhooks {
		store %[1]s/store
		listen off
%[3]s
%[6]s
	}
}

http://%[2]s {
	webhook_ingest /webhooks/* {
%[5]s
%[4]s
	}
}
`

func (c gatewayConfig) caddyfile() string {
	text := fmt.Sprintf(gatewayTemplate, c.Store, c.Addr, c.Global, c.Sources, c.Ingest, c.Destinations)
	if c.Admin != "" {
		text = strings.Replace(text, "\tadmin off\n", "\tadmin "+c.Admin+"\n", 1)
	}
	return text
}

// demoSources is a source for tests that are not about signatures.
const demoSources = `
		source demo {
			verify none
			id_header X-Id
			type_header X-Type
		}`

// startGateway loads cfg into Caddy and stops Caddy when the test ends.
func startGateway(t *testing.T, cfg gatewayConfig) *gateway {
	t.Helper()
	if cfg.Store == "" {
		cfg.Store = t.TempDir()
	}
	if cfg.Addr == "" {
		cfg.Addr = freeAddr(t)
	}
	if cfg.Sources == "" {
		cfg.Sources = demoSources
	}
	g := &gateway{t: t, store: filepath.Join(cfg.Store, "store"), addr: cfg.Addr, cfg: cfg}
	g.load(cfg)
	t.Cleanup(func() {
		if err := caddy.Stop(); err != nil {
			t.Errorf("caddy stop: %v", err)
		}
	})
	return g
}

// load (re)loads cfg; a second call is a config reload.
func (g *gateway) load(cfg gatewayConfig) {
	g.t.Helper()
	if err := loadCaddyfile(cfg.caddyfile()); err != nil {
		g.t.Fatalf("load config: %v", err)
	}
}

func loadCaddyfile(text string) error {
	out, _, err := caddyconfigAdapt(text)
	if err != nil {
		return err
	}
	return caddy.Load(out, true)
}

func caddyconfigAdapt(text string) ([]byte, []string, error) {
	out, warnings, err := caddyconfigAdapter().Adapt([]byte(text), map[string]any{"filename": "Caddyfile"})
	ws := make([]string, len(warnings))
	for i, w := range warnings {
		ws[i] = w.String()
	}
	return out, ws, err
}

func (g *gateway) url(path string) string { return "http://" + g.addr + path }

// post sends one delivery and returns the status, headers and body.
func (g *gateway) post(path string, body []byte, hdr map[string]string) (int, http.Header, []byte) {
	g.t.Helper()
	req, err := http.NewRequest(http.MethodPost, g.url(path), bytes.NewReader(body))
	if err != nil {
		g.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := testClient.Do(req)
	if err != nil {
		g.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

var testClient = &http.Client{Timeout: 15 * time.Second}

// engine returns the running engine of the gateway's store.
func (g *gateway) engine() *engine {
	g.t.Helper()
	var e *engine
	engines.Range(func(key, value any) bool {
		if key == g.store {
			e = value.(*engine)
		}
		return true
	})
	if e == nil {
		g.t.Fatalf("no engine running for store %s", g.store)
	}
	return e
}

// stored returns every message in a stream, in order.
func (g *gateway) stored(stream string) []*jetstream.RawStreamMsg {
	g.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := g.engine().js.Stream(ctx, stream)
	if err != nil {
		g.t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		g.t.Fatal(err)
	}
	var msgs []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			continue // deleted
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// waitFor is waitfor.Until, kept for the test files that still call it
// by this name.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	waitfor.Until(t, d, what, cond)
}

// freeAddr is testgw.FreeAddr, failing t when no port is free.
func freeAddr(t testing.TB) string {
	t.Helper()
	addr, err := testgw.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// sink is an internal service stand-in that records what it receives and
// answers with the status its script says.
type sink struct {
	srv    *httptest.Server
	mu     sync.Mutex
	bodies [][]byte
	hdrs   []http.Header
	calls  atomic.Int64
	// status returns the answer for the n-th call (1-based).
	status func(n int64) int
}

func newSink(t *testing.T, status func(n int64) int) *sink {
	s := &sink{status: status}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.bodies = append(s.bodies, b)
		s.hdrs = append(s.hdrs, r.Header.Clone())
		s.mu.Unlock()
		// Counted once recorded: a test that waits for calls >= n then
		// finds n requests in received() (TestHeaderBounds read an empty
		// list in a CI run when the count came first).
		n := s.calls.Add(1)
		w.WriteHeader(s.status(n))
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *sink) received() ([][]byte, []http.Header) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.bodies...), append([]http.Header(nil), s.hdrs...)
}

func always(code int) func(int64) int { return func(int64) int { return code } }

func destination(name, url, extra string) string {
	return fmt.Sprintf(`
		destination %s {
			url %s
			subjects webhooks.>
			timeout 2s
			backoff 20ms 100ms
%s
		}`, name, url, extra)
}

func decodeAccept(t *testing.T, b []byte) acceptBody {
	t.Helper()
	var a acceptBody
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatalf("2xx body %q: %v", b, err)
	}
	return a
}

// TestIngestStoresAndForwards is the walking skeleton end to end: POST → 2xx
// → the message is in WEBHOOKS with the right subject and headers → the sink
// got the same bytes.
func TestIngestStoresAndForwards(t *testing.T) {
	sk := newSink(t, always(http.StatusOK))
	g := startGateway(t, gatewayConfig{Destinations: destination("sink", sk.srv.URL, "")})

	body := []byte(`{"order":42,"note":"caf\xc3\xa9 \xff not utf-8"}`)
	status, _, resp := g.post("/webhooks/v1/demo", body, map[string]string{
		"Content-Type":         "application/json; charset=utf-8",
		"X-Id":                 "delivery-1",
		"X-Type":               "order.created",
		"X-Provider-Header":    "kept",
		"Authorization":        "Bearer must-not-be-stored",
		"Nats-Expected-Stream": "OTHER",
		"Hookgate-Source":      "spoofed",
	})
	if status != http.StatusOK {
		t.Fatalf("status %d, body %s", status, resp)
	}
	acc := decodeAccept(t, resp)
	if acc.ID != "demo:delivery-1" || acc.Duplicate {
		t.Fatalf("answer %+v, want id demo:delivery-1, duplicate false", acc)
	}

	msgs := g.stored(event.StreamName)
	if len(msgs) != 1 {
		t.Fatalf("%d messages stored, want 1", len(msgs))
	}
	m := msgs[0]
	if m.Subject != "webhooks.v1.demo.order.created" {
		t.Errorf("subject %q", m.Subject)
	}
	if !bytes.Equal(m.Data, body) {
		t.Errorf("stored body %q differs from the posted %q", m.Data, body)
	}
	for k, want := range map[string]string{
		event.HeaderID:          "demo:delivery-1",
		event.HeaderMsgID:       "demo:delivery-1",
		event.HeaderSource:      "demo",
		event.HeaderVersion:     "v1",
		event.HeaderType:        "order.created",
		event.HeaderDeliveryID:  "delivery-1",
		event.HeaderContentType: "application/json; charset=utf-8",
		event.HeaderVerified:    "none",
		"X-Provider-Header":     "kept",
	} {
		if got := m.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if v := m.Header.Values("Authorization"); len(v) != 0 {
		t.Errorf("Authorization was stored: %q", v)
	}
	// The sender's Nats-* header never reaches JetStream (had it, the
	// publish would have failed: the stream is not OTHER).
	for _, v := range m.Header.Values("Nats-Expected-Stream") {
		if v != event.StreamName {
			t.Errorf("the sender's Nats-Expected-Stream %q was stored", v)
		}
	}
	if ts, err := time.Parse(time.RFC3339Nano, m.Header.Get(event.HeaderReceivedAt)); err != nil || time.Since(ts) > time.Minute {
		t.Errorf("received-at %q: %v", m.Header.Get(event.HeaderReceivedAt), err)
	}

	waitfor.Until(t, 10*time.Second, "the sink to receive the event", func() bool { return sk.calls.Load() >= 1 })
	bodies, hdrs := sk.received()
	if !bytes.Equal(bodies[0], body) {
		t.Errorf("sink got %q, want the posted bytes %q", bodies[0], body)
	}
	if got := hdrs[0].Get("Content-Type"); got != "application/json; charset=utf-8" {
		t.Errorf("sink Content-Type %q", got)
	}
	for _, k := range []string{"Webhook-Id", "Idempotency-Key"} {
		if got := hdrs[0].Get(k); got != "demo:delivery-1" {
			t.Errorf("sink %s = %q, want the event id", k, got)
		}
	}
}

// TestDuplicateDelivery: a provider retry of a stored delivery gets the same
// 2xx, marked duplicate, and is stored once.
func TestDuplicateDelivery(t *testing.T) {
	g := startGateway(t, gatewayConfig{})
	for i, wantDup := range []bool{false, true, true} {
		status, _, b := g.post("/webhooks/v1/demo", []byte(`{}`), map[string]string{"X-Id": "same"})
		if status != http.StatusOK {
			t.Fatalf("post %d: status %d", i, status)
		}
		if acc := decodeAccept(t, b); acc.Duplicate != wantDup || acc.ID != "demo:same" {
			t.Fatalf("post %d: %+v, want duplicate=%v", i, acc, wantDup)
		}
	}
	// Without an id, equal bodies are distinct events.
	for range 2 {
		if status, _, _ := g.post("/webhooks/v1/demo", []byte(`{}`), nil); status != http.StatusOK {
			t.Fatalf("status %d", status)
		}
	}
	if n := len(g.stored(event.StreamName)); n != 3 {
		t.Fatalf("%d events stored, want 3", n)
	}
}

// TestRequestHygiene: the answers that need no store.
func TestRequestHygiene(t *testing.T) {
	g := startGateway(t, gatewayConfig{Sources: demoSources + `
		source small {
			verify none
			max_body 16
		}`})
	tests := []struct {
		name, method, path string
		body               string
		hdr                map[string]string
		want               int
	}{
		{"unknown source", "POST", "/webhooks/v1/nosuch", "{}", nil, 404},
		{"unknown version", "POST", "/webhooks/v9/demo", "{}", nil, 404},
		{"extra segment", "POST", "/webhooks/v1/demo/x", "{}", nil, 404},
		{"trailing slash", "POST", "/webhooks/v1/demo/", "{}", nil, 404},
		{"no source", "POST", "/webhooks/v1", "{}", nil, 404},
		{"escaped slash", "POST", "/webhooks/v1%2Fdemo", "{}", nil, 404},
		{"GET", "GET", "/webhooks/v1/demo", "", nil, 405},
		{"PUT", "PUT", "/webhooks/v1/demo", "{}", nil, 405},
		{"too large declared", "POST", "/webhooks/v1/small", strings.Repeat("x", 17), nil, 413},
		{"gzip", "POST", "/webhooks/v1/demo", "{}", map[string]string{"Content-Encoding": "gzip"}, 415},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, g.url(tt.path), strings.NewReader(tt.body))
			for k, v := range tt.hdr {
				req.Header.Set(k, v)
			}
			resp, err := testClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d (body %s)", resp.StatusCode, tt.want, b)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type %q", ct)
			}
			var p struct {
				Type   string `json:"type"`
				Status int    `json:"status"`
			}
			if err := json.Unmarshal(b, &p); err != nil || p.Status != tt.want || !strings.HasPrefix(p.Type, "urn:hookgate:problem:") {
				t.Errorf("problem body %s: %v", b, err)
			}
			if tt.want == 405 && resp.Header.Get("Allow") != "POST" {
				t.Errorf("Allow %q", resp.Header.Get("Allow"))
			}
		})
	}
	// A chunked body above the limit is cut off while streaming.
	req, _ := http.NewRequest("POST", g.url("/webhooks/v1/small"), io.MultiReader(strings.NewReader(strings.Repeat("y", 64))))
	req.ContentLength = -1
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Fatalf("streamed oversize body: status %d, want 413", resp.StatusCode)
	}
	if n := len(g.stored(event.StreamName)); n != 0 {
		t.Fatalf("%d events stored by rejected requests", n)
	}
}

// TestStreamFull: once the stream is at max_store, every delivery gets 503
// with Retry-After, never a 2xx, and what was acknowledged stays stored.
func TestStreamFull(t *testing.T) {
	g := startGateway(t, gatewayConfig{Global: "\t\tmax_store 8KiB"})
	body := bytes.Repeat([]byte("z"), 1024)
	accepted, first503 := 0, -1
	for i := range 30 {
		status, hdr, b := g.post("/webhooks/v1/demo", body, map[string]string{"X-Id": fmt.Sprint("full-", i)})
		switch status {
		case http.StatusOK:
			if first503 >= 0 {
				t.Fatalf("post %d got 2xx after post %d got 503", i, first503)
			}
			accepted++
		case http.StatusServiceUnavailable:
			if first503 < 0 {
				first503 = i
			}
			if hdr.Get("Retry-After") == "" {
				t.Fatalf("503 without Retry-After: %s", b)
			}
		default:
			t.Fatalf("post %d: status %d %s", i, status, b)
		}
	}
	if first503 < 0 {
		t.Fatal("30 KiB went into an 8 KiB stream without a 503")
	}
	if n := len(g.stored(event.StreamName)); n != accepted {
		t.Fatalf("%d stored, %d acknowledged", n, accepted)
	}
}

// TestNotReady: until the app has its store, the handler answers 503 with
// Retry-After and stores nothing.
func TestNotReady(t *testing.T) {
	h := &Handler{Sources: []*Source{{Name: "demo", Verify: &VerifyConfig{Scheme: "none"}}}}
	if err := h.provision(); err != nil {
		t.Fatal(err)
	}
	h.app = &App{ready: make(chan struct{})} // provisioned, never started
	h.events = h.app
	h.logger = zapNop()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/webhooks/v1/demo", strings.NewReader("{}"))
	if err := h.ServeHTTP(rec, req, nil); err != nil {
		t.Fatal(err)
	}
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "5" {
		t.Fatalf("status %d Retry-After %q, want 503 and 5", rec.Code, rec.Header().Get("Retry-After"))
	}
}

func caddyconfigAdapter() caddyconfig.Adapter { return caddyconfig.GetAdapter("caddyfile") }

func zapNop() *zap.Logger { return zap.NewNop() }

// TestForwardRetriesThenSucceeds: a sink that fails twice and then succeeds
// is called exactly three times, with the same event each time.
func TestForwardRetriesThenSucceeds(t *testing.T) {
	sk := newSink(t, func(n int64) int {
		if n <= 2 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	g := startGateway(t, gatewayConfig{Destinations: destination("flaky", sk.srv.URL, "\t\t\tmax_attempts 5")})
	if status, _, b := g.post("/webhooks/v1/demo", []byte(`{"try":1}`), map[string]string{"X-Id": "retry-1"}); status != http.StatusOK {
		t.Fatalf("status %d %s", status, b)
	}
	waitfor.Until(t, 10*time.Second, "three calls", func() bool { return sk.calls.Load() >= 3 })
	time.Sleep(500 * time.Millisecond) // a fourth call would come within the 100ms backoff cap
	if n := sk.calls.Load(); n != 3 {
		t.Fatalf("sink called %d times, want exactly 3", n)
	}
	bodies, hdrs := sk.received()
	for i := range bodies {
		if string(bodies[i]) != `{"try":1}` || hdrs[i].Get("Webhook-Id") != "demo:retry-1" {
			t.Fatalf("call %d got %q id %q", i+1, bodies[i], hdrs[i].Get("Webhook-Id"))
		}
	}
	if n := len(g.stored(event.DLQStreamName)); n != 0 {
		t.Fatalf("%d dead letters for a delivered event", n)
	}
}

// TestForwardDeadLetters: a sink that always fails leaves the event in
// WEBHOOKS_DLQ after max_attempts, with the original body and id.
func TestForwardDeadLetters(t *testing.T) {
	sk := newSink(t, always(http.StatusServiceUnavailable))
	g := startGateway(t, gatewayConfig{Destinations: destination("down", sk.srv.URL, "\t\t\tmax_attempts 3")})
	if status, _, b := g.post("/webhooks/v1/demo", []byte(`{"dead":true}`), map[string]string{"X-Id": "dlq-1", "X-Type": "thing.happened"}); status != http.StatusOK {
		t.Fatalf("status %d %s", status, b)
	}
	var dlq []*jetstream.RawStreamMsg
	waitfor.Until(t, 10*time.Second, "a dead letter", func() bool {
		dlq = g.stored(event.DLQStreamName)
		return len(dlq) > 0
	})
	if len(dlq) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dlq))
	}
	d := dlq[0]
	if d.Subject != "webhooks_dlq.down.v1.demo.thing.happened" || string(d.Data) != `{"dead":true}` || d.Header.Get(event.HeaderID) != "demo:dlq-1" {
		t.Fatalf("dead letter %s %q id %q", d.Subject, d.Data, d.Header.Get(event.HeaderID))
	}
	if n := sk.calls.Load(); n != 3 {
		t.Fatalf("sink called %d times, want max_attempts 3", n)
	}
	// The event itself stays in WEBHOOKS for replay and audit.
	if n := len(g.stored(event.StreamName)); n != 1 {
		t.Fatalf("%d events in WEBHOOKS", n)
	}
}

// TestPublishTimeout: when the store's acknowledgement does not come within
// publish_timeout, the provider gets 503 with Retry-After, never a 2xx.
func TestPublishTimeout(t *testing.T) {
	g := startGateway(t, gatewayConfig{Ingest: "\t\tpublish_timeout 1ns\n\t\tretry_after 7s"})
	for i := range 3 {
		status, hdr, b := g.post("/webhooks/v1/demo", []byte(`{}`), map[string]string{"X-Id": fmt.Sprint("slow-", i)})
		if status != http.StatusServiceUnavailable || hdr.Get("Retry-After") != "7" {
			t.Fatalf("status %d Retry-After %q (%s), want 503 and 7", status, hdr.Get("Retry-After"), b)
		}
	}
}
