package caddymodule

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// fuzzHandler is the handler the fuzz targets drive: every kind of source
// and version the router knows.
func fuzzHandler() *Handler {
	return &Handler{
		Versions:   []string{"v1", "v2"},
		Retired:    []string{"v0"},
		Deprecated: []*Deprecation{{Version: "v1", Sunset: "2027-06-30"}},
		RatePerIP:  &RateLimit{Events: 1000, Burst: 1000},
		Sources: []*Source{
			{Name: "demo", Verify: &VerifyConfig{Scheme: "none"}, IDHeader: "X-Id", TypeHeader: "X-Type"},
			{Name: "github", Verify: &VerifyConfig{Scheme: "github", Secrets: []string{"fuzz-secret"}}, Versions: []string{"v2"}},
			{Name: "slack", Verify: &VerifyConfig{Scheme: "slack", Secrets: []string{"fuzz-secret"}}},
			{Name: "zipped", Verify: &VerifyConfig{Scheme: "none"}, AcceptEncoding: []string{"gzip"}, MaxBody: 4096, MaxRatio: 10},
			{Name: "small", Verify: &VerifyConfig{Scheme: "none"}, MaxBody: 16},
			{Name: "limited", Verify: &VerifyConfig{Scheme: "none"}, Rate: &RateLimit{Events: 5, Burst: 5}},
			{Name: "fenced", Verify: &VerifyConfig{Scheme: "none"}, AllowIPs: []string{"10.0.0.0/24"}},
		},
	}
}

// FuzzRoute: the router never panics, and whatever it accepts is the
// prefix, a valid version and a valid source name, and nothing else.
func FuzzRoute(f *testing.F) {
	for _, p := range []string{
		"/webhooks/v1/demo", "/webhooks/v0/demo", "/webhooks/v1/github", "/webhooks/v2/github",
		"/webhooks/v1/demo/", "/webhooks//demo", "/webhooks/v1//demo", "/webhooks/v1/../demo",
		"/webhooks/v1%2Fdemo", "/webhooks/v1/de%6Do", "/webhooks", "/webhooks/", "/", "",
		"/webhooksv1/demo", "/webhooks/v1/demo\x00", "/webhooks/\xff/demo",
	} {
		f.Add(p)
	}
	h := newTestHandler(f, fuzzHandler(), nil)
	f.Fuzz(func(t *testing.T, path string) {
		version, src := h.route(path)
		if src == nil {
			if version != "" {
				t.Fatalf("route(%q): version %q without a source", path, version)
			}
			return
		}
		if !validSegment(version) || !validSegment(src.name) {
			t.Fatalf("route(%q) = %q, %q: not valid segments", path, version, src.name)
		}
		if want := h.prefix + "/" + version + "/" + src.name; path != want {
			t.Fatalf("route(%q) accepted it as %q", path, want)
		}
		switch {
		case h.retired[version]:
		case !h.versions[version]:
			t.Fatalf("route(%q): version %q is neither accepted nor retired", path, version)
		case src.versions != nil && !src.versions[version]:
			t.Fatalf("route(%q): source %q does not take %q", path, src.name, version)
		}
	})
}

// frontDoorStatuses are every answer the handler may give.
var frontDoorStatuses = map[int]bool{
	200: true, 400: true, 401: true, 403: true, 404: true, 405: true, 408: true,
	410: true, 413: true, 415: true, 429: true, 431: true, 503: true,
}

// FuzzFrontDoor drives ServeHTTP with requests as Go's HTTP parser reads
// them from arbitrary bytes, on a handler with a started store: it never
// panics or redirects, every refusal is a well-formed problem, and only a
// POST to a known endpoint is ever accepted.
func FuzzFrontDoor(f *testing.F) {
	f.Add("POST", "/webhooks/v1/demo", "X-Id: 1\nX-Type: a.b", []byte(`{"a":1}`))
	f.Add("GET", "/webhooks/v1/demo", "", []byte(nil))
	f.Add("POST", "/webhooks/v0/demo", "", []byte(`{}`))
	f.Add("POST", "/webhooks/v2/github", "X-Hub-Signature-256: sha256=00", []byte(`{}`))
	f.Add("POST", "/webhooks/v1/slack", "X-Slack-Request-Timestamp: 1\nX-Slack-Signature: v0=00", []byte(`{"type":"url_verification","challenge":"x"}`))
	f.Add("POST", "/webhooks/v1/zipped", "Content-Encoding: gzip", gz(bytes.Repeat([]byte("a"), 5000)))
	f.Add("POST", "/webhooks/v1/zipped", "Content-Encoding: gzip", []byte("\x1f\x8b\x08\x00"))
	f.Add("POST", "/webhooks/v1/small", "", bytes.Repeat([]byte("b"), 17))
	f.Add("POST", "/webhooks/v1/demo", "Content-Encoding: br", []byte(`{}`))
	f.Add("POST", "/webhooks/v1/fenced", "", []byte(`{}`))
	f.Add("PUT", "/webhooks/v1/limited", "Expect: 100-continue", []byte(`{}`))
	f.Add("POST", "/webhooks/v1/demo?x=%zz", "Hookgate-Id: spoofed\nNats-Msg-Id: x", []byte("\xff\xfe"))

	h := newTestHandler(f, fuzzHandler(), startApp(f, "1s"))
	f.Fuzz(func(t *testing.T, method, target, headers string, body []byte) {
		var raw bytes.Buffer
		fmt.Fprintf(&raw, "%s %s HTTP/1.1\r\nHost: hooks.example.com\r\n", method, target)
		for line := range strings.SplitSeq(headers, "\n") {
			if line != "" {
				raw.WriteString(strings.TrimRight(line, "\r") + "\r\n")
			}
		}
		fmt.Fprintf(&raw, "Content-Length: %d\r\n\r\n", len(body))
		raw.Write(body)
		r, err := http.ReadRequest(bufio.NewReader(&raw))
		if err != nil {
			return // Go's server answers 400 before any handler
		}
		r.RemoteAddr = "192.0.2.1:1234"
		r = withClientIP(r, fmt.Sprintf("10.0.%d.%d", len(target)&1, len(body)&255))
		w := httptest.NewRecorder()
		if err := h.ServeHTTP(w, r, nil); err != nil {
			t.Fatalf("ServeHTTP: %v", err)
		}
		checkAnswer(t, h, r, w)
	})
}

// checkAnswer asserts what holds for every answer of the handler.
func checkAnswer(t *testing.T, h *Handler, r *http.Request, w *httptest.ResponseRecorder) {
	t.Helper()
	status, hdr, b := w.Code, w.Header(), w.Body.Bytes()
	if !frontDoorStatuses[status] {
		t.Fatalf("%s %s: status %d", r.Method, r.URL, status)
	}
	path := r.URL.Path
	if r.URL.RawPath != "" {
		path = r.URL.RawPath
	}
	_, src := h.route(path)
	if status == http.StatusOK {
		if r.Method != http.MethodPost || src == nil {
			t.Fatalf("%s %s accepted", r.Method, r.URL)
		}
		var ok map[string]any
		if err := json.Unmarshal(b, &ok); err != nil || (ok["id"] == nil && ok["challenge"] == nil) {
			t.Fatalf("2xx body %q: %v", b, err)
		}
		return
	}
	if src == nil && status != http.StatusNotFound && status != http.StatusTooManyRequests {
		t.Fatalf("%s %s: no endpoint, yet status %d", r.Method, r.URL, status)
	}
	if hdr.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("status %d with Content-Type %q", status, hdr.Get("Content-Type"))
	}
	var p struct {
		Type   string `json:"type"`
		Status int    `json:"status"`
	}
	if err := json.Unmarshal(b, &p); err != nil || p.Status != status || !strings.HasPrefix(p.Type, "urn:hookgate:problem:") {
		t.Fatalf("status %d problem %q: %v", status, b, err)
	}
	switch status {
	case http.StatusMethodNotAllowed:
		if hdr.Get("Allow") != http.MethodPost {
			t.Fatalf("405 with Allow %q", hdr.Get("Allow"))
		}
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		if s, err := strconv.Atoi(hdr.Get("Retry-After")); err != nil || s < 1 {
			t.Fatalf("%d with Retry-After %q", status, hdr.Get("Retry-After"))
		}
	}
}
