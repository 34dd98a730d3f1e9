package caddymodule

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// withReady is cfg's Caddyfile with "webhook_ready /ready" in the site,
// next to a webhook_ingest without a matcher (the README's shape): the
// directive order must put the readiness check first.
func withReady(cfg gatewayConfig) string {
	text := strings.Replace(cfg.caddyfile(), "\twebhook_ingest /webhooks/* {", "\twebhook_ingest {", 1)
	return strings.TrimSuffix(text, "\t}\n}\n") + "\t}\n\twebhook_ready /ready\n}\n"
}

// startReadyGateway starts a gateway whose site also mounts webhook_ready
// on /ready.
func startReadyGateway(t *testing.T, cfg gatewayConfig) *gateway {
	t.Helper()
	g := startGateway(t, cfg)
	if err := loadCaddyfile(withReady(g.cfg)); err != nil {
		t.Fatalf("load config with webhook_ready: %v", err)
	}
	// The load replaced the running config: connections to the old server
	// may be reset (the reload race the README describes), so the test
	// starts once the new one answers.
	testClient.CloseIdleConnections()
	waitFor(t, 10*time.Second, "the reloaded server answers /ready", func() bool {
		resp, err := testClient.Get(g.url("/ready"))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
	return g
}

// readiness asks the gateway's /ready with method and returns the status,
// headers and body.
func (g *gateway) readiness(method string) (int, http.Header, []byte) {
	g.t.Helper()
	req, _ := http.NewRequest(method, g.url("/ready"), nil)
	resp, err := testClient.Do(req)
	if err != nil {
		g.t.Fatalf("%s /ready: %v", method, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// assertNotReady checks a 503 readiness answer: Retry-After and an RFC 9457
// problem body of the given type.
func assertNotReady(t *testing.T, status int, hdr http.Header, body []byte, slug string) {
	t.Helper()
	var p struct {
		Type   string `json:"type"`
		Status int    `json:"status"`
	}
	switch {
	case status != http.StatusServiceUnavailable:
		t.Fatalf("readiness answered %d %s, want 503", status, body)
	case hdr.Get("Retry-After") == "":
		t.Fatal("a 503 readiness answer without Retry-After")
	case hdr.Get("Content-Type") != "application/problem+json":
		t.Fatalf("503 readiness Content-Type %q", hdr.Get("Content-Type"))
	case json.Unmarshal(body, &p) != nil || p.Status != 503 || p.Type != "urn:hookgate:problem:"+slug:
		t.Fatalf("503 readiness body %s, want problem %s", body, slug)
	}
}

// TestReadyEndpoint: webhook_ready, mounted from a Caddyfile, answers 200
// {"status":"ready"} to GET and HEAD while the store takes events, and 405
// to other methods.
func TestReadyEndpoint(t *testing.T) {
	g := startReadyGateway(t, gatewayConfig{})
	status, hdr, body := g.readiness(http.MethodGet)
	if status != 200 || string(body) != `{"status":"ready"}` || hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /ready: %d %q %s", status, hdr.Get("Content-Type"), body)
	}
	if status, _, body := g.readiness(http.MethodHead); status != 200 || len(body) != 0 {
		t.Fatalf("HEAD /ready: %d %q", status, body)
	}
	if status, hdr, _ := g.readiness(http.MethodPost); status != http.StatusMethodNotAllowed || hdr.Get("Allow") != "GET, HEAD" {
		t.Fatalf("POST /ready: %d Allow %q", status, hdr.Get("Allow"))
	}
	// The webhook endpoint next to it is unchanged.
	if status, _, b := g.post("/webhooks/v1/demo", []byte(`{}`), map[string]string{"X-Id": "r1"}); status != 200 {
		t.Fatalf("POST /webhooks/v1/demo: %d %s", status, b)
	}
}

// TestReadyBeforeStart: a readiness check provisioned against an app that
// has not started (apps start in random order) says 503, not ready.
func TestReadyBeforeStart(t *testing.T) {
	h := &Ready{app: &App{ready: make(chan struct{})}, retryAfter: "5"}
	rec := httptest.NewRecorder()
	if err := h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ready", nil), nil); err != nil {
		t.Fatal(err)
	}
	assertNotReady(t, rec.Code, rec.Header(), rec.Body.Bytes(), "not-ready")
}
