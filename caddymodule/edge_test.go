package caddymodule

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/hookgate/hookgate/event"
	"github.com/hookgate/hookgate/internal/waitfor"
	"github.com/hookgate/hookgate/verify"
)

// The tests in this file follow the attack table of
// research/reliability.md section 4: one test per row, each asserting the
// status code and that nothing was stored; the flood rows also bound
// memory and goroutines.

// edgeConfig is a gateway config with extra global options (server
// timeouts, trusted_proxies, logging) and extra site lines (access log).
type edgeConfig struct {
	gatewayConfig
	Options string
	Site    string
	// AllPaths drops the /webhooks/* matcher: the handler gets every
	// request of the site.
	AllPaths bool
}

// trustLoopback makes Caddy take the client IP from X-Forwarded-For when
// the peer is loopback, so tests can be many clients.
const trustLoopback = `
	servers {
		trusted_proxies static 127.0.0.1/8
	}`

func (c edgeConfig) caddyfile() string {
	text := c.gatewayConfig.caddyfile()
	text = strings.Replace(text, "\tadmin off\n", "\tadmin off\n"+c.Options+"\n", 1)
	directive := "webhook_ingest /webhooks/*"
	if c.AllPaths {
		directive = "webhook_ingest"
	}
	return strings.Replace(text, "\twebhook_ingest /webhooks/*", c.Site+"\n\t"+directive, 1)
}

// startEdge starts a gateway with cfg's extras. It loads the config once:
// starting plain and reloading would leave the old server shutting down
// while the test's first requests arrive.
func startEdge(t *testing.T, cfg edgeConfig) *gateway {
	t.Helper()
	cfg.Store = orDefault(cfg.Store, t.TempDir())
	cfg.Addr = orDefault(cfg.Addr, freeAddr(t))
	cfg.Sources = orDefault(cfg.Sources, demoSources)
	if err := loadCaddyfile(cfg.caddyfile()); err != nil {
		t.Fatalf("load config: %v\n%s", err, cfg.caddyfile())
	}
	t.Cleanup(func() {
		if err := caddy.Stop(); err != nil {
			t.Errorf("caddy stop: %v", err)
		}
	})
	return &gateway{t: t, store: filepath.Join(cfg.Store, "store"), addr: cfg.Addr, cfg: cfg.gatewayConfig}
}

// send posts with headers and returns status, headers and body, without
// failing the test on a transport error (status 0).
func (g *gateway) send(method, path string, body []byte, hdr map[string]string) (int, http.Header, []byte) {
	req, err := http.NewRequest(method, g.url(path), bytes.NewReader(body))
	if err != nil {
		g.t.Error(err)
		return 0, nil, nil
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := testClient.Do(req)
	if err != nil {
		return 0, nil, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// raw writes req on a new connection and reads the first response. "x" as
// a host in req stands for the gateway's address, which the site matches.
func (g *gateway) raw(req string) (*http.Response, []byte, error) {
	req = strings.ReplaceAll(req, "Host: x\r\n", "Host: "+g.addr+"\r\n")
	req = strings.ReplaceAll(req, "http://x/", "http://"+g.addr+"/")
	conn, err := net.DialTimeout("tcp", g.addr, 5*time.Second)
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		return nil, nil, err
	}
	method, _, _ := strings.Cut(req, " ")
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b, nil
}

// problemOf decodes an RFC 9457 body, failing the test when it is not one.
func problemOf(t *testing.T, hdr http.Header, b []byte) map[string]any {
	t.Helper()
	if ct := hdr.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, want application/problem+json (body %s)", ct, b)
	}
	var p map[string]any
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatalf("problem body %s: %v", b, err)
	}
	if typ, _ := p["type"].(string); !strings.HasPrefix(typ, "urn:hookgate:problem:") {
		t.Fatalf("problem type %v", p["type"])
	}
	return p
}

func (g *gateway) assertNothingStored() {
	g.t.Helper()
	if n := len(g.stored(event.StreamName)); n != 0 {
		g.t.Fatalf("%d events stored by rejected requests", n)
	}
}

// sign returns the headers a provider using scheme would send for body.
func sign(t *testing.T, scheme, secret string, body []byte, now time.Time, extra map[string]string) map[string]string {
	t.Helper()
	s, err := verify.NewSigner(verify.Config{Scheme: scheme, Secrets: []string{secret}})
	if err != nil {
		t.Fatal(err)
	}
	r := &verify.Request{Method: http.MethodPost, Header: http.Header{}, Body: body, Now: now}
	for k, v := range extra {
		r.Header.Set(k, v)
	}
	if err := s.Sign(r); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for k := range r.Header {
		out[k] = r.Header.Get(k)
	}
	return out
}

// testSecret must never appear in a log.
const testSecret = "whsec-test-DO-NOT-LOG-7f3a9c"

var signedSources = fmt.Sprintf(`
		source github {
			verify github %[1]s
		}
		source stripe {
			verify stripe %[1]s
			tolerance 5m
		}
		source slack {
			verify slack %[1]s
		}`, testSecret)

// Row: missing or bad signature, stale timestamp → 401, the same body
// whichever check failed; nothing persisted. (Also the timing/oracle row:
// the answer does not say which check failed.)
func TestAttackBadSignature(t *testing.T) {
	g := startGateway(t, gatewayConfig{Sources: signedSources})
	body := []byte(`{"action":"opened"}`)
	now := time.Now()
	good := sign(t, "github", testSecret, body, now, map[string]string{"X-GitHub-Delivery": "d-1"})
	otherKey := sign(t, "github", "another-secret", body, now, nil)
	stale := sign(t, "stripe", testSecret, body, now.Add(-time.Hour), nil)
	future := sign(t, "stripe", testSecret, body, now.Add(time.Hour), nil)
	cases := []struct {
		name, path string
		body       []byte
		hdr        map[string]string
	}{
		{"no signature", "/webhooks/v1/github", body, nil},
		{"malformed", "/webhooks/v1/github", body, map[string]string{"X-Hub-Signature-256": "sha256=zz"}},
		{"wrong prefix", "/webhooks/v1/github", body, map[string]string{"X-Hub-Signature-256": "md5=00"}},
		{"other secret", "/webhooks/v1/github", body, otherKey},
		{"other body", "/webhooks/v1/github", []byte(`{"action":"closed"}`), good},
		{"huge header", "/webhooks/v1/github", body, map[string]string{"X-Hub-Signature-256": "sha256=" + strings.Repeat("ab", 4000)}},
		{"stale timestamp", "/webhooks/v1/stripe", body, stale},
		{"future timestamp", "/webhooks/v1/stripe", body, future},
		{"github signature on stripe", "/webhooks/v1/stripe", body, good},
	}
	var first []byte
	for _, c := range cases {
		status, hdr, b := g.post(c.path, c.body, c.hdr)
		if status != http.StatusUnauthorized {
			t.Fatalf("%s: status %d, want 401 (%s)", c.name, status, b)
		}
		problemOf(t, hdr, b)
		if first == nil {
			first = b
		} else if !bytes.Equal(b, first) {
			t.Fatalf("%s: body %s differs from %s: the answer tells which check failed", c.name, b, first)
		}
	}
	g.assertNothingStored()
	if status, _, b := g.post("/webhooks/v1/github", body, good); status != http.StatusOK {
		t.Fatalf("the correctly signed delivery: status %d %s", status, b)
	}
}

// Row: replay of an id already stored → 2xx, not stored twice, downstream
// not notified again. The same delivery is sent 10 times one after another
// and 10 times at once.
func TestAttackReplayDedup(t *testing.T) {
	sk := newSink(t, always(http.StatusOK))
	g := startGateway(t, gatewayConfig{Destinations: destination("sink", sk.srv.URL, "")})
	body := []byte(`{"n":1}`)

	fresh := 0
	for i := range 10 {
		status, _, b := g.post("/webhooks/v1/demo", body, map[string]string{"X-Id": "seq-1"})
		if status != http.StatusOK {
			t.Fatalf("sequential %d: status %d %s", i, status, b)
		}
		if a := decodeAccept(t, b); a.ID != "demo:seq-1" || a.Duplicate != (i > 0) {
			t.Fatalf("sequential %d: %+v", i, a)
		}
		fresh++
	}

	var wg sync.WaitGroup
	var ok2xx, notDup atomic.Int64
	for range 10 {
		wg.Go(func() {
			status, _, b := g.send(http.MethodPost, "/webhooks/v1/demo", body, map[string]string{"X-Id": "conc-1"})
			if status != http.StatusOK {
				t.Errorf("concurrent: status %d %s", status, b)
				return
			}
			ok2xx.Add(1)
			var a acceptBody
			if json.Unmarshal(b, &a) == nil && !a.Duplicate {
				notDup.Add(1)
			}
		})
	}
	wg.Wait()
	if ok2xx.Load() != 10 || notDup.Load() != 1 {
		t.Fatalf("concurrent: %d 2xx, %d not flagged duplicate; want 10 and 1", ok2xx.Load(), notDup.Load())
	}

	if n := len(g.stored(event.StreamName)); n != 2 {
		t.Fatalf("%d events stored, want 2 (one per delivery id)", n)
	}
	waitfor.Until(t, 10*time.Second, "both events at the sink", func() bool { return sk.calls.Load() >= 2 })
	time.Sleep(500 * time.Millisecond) // a duplicate forward would follow within the backoff cap
	if n := sk.calls.Load(); n != 2 {
		t.Fatalf("sink called %d times, want 2: duplicates were forwarded", n)
	}
}

// Row: huge body → 413, from Content-Length or while reading, before the
// signature is computed (a correctly signed huge body still gets 413).
func TestAttackHugeBody(t *testing.T) {
	g := startGateway(t, gatewayConfig{Sources: `
		source small {
			verify github ` + testSecret + `
			max_body 1KiB
		}`})
	huge := bytes.Repeat([]byte("x"), 64<<10)
	signed := sign(t, "github", testSecret, huge, time.Now(), nil)

	status, hdr, b := g.post("/webhooks/v1/small", huge, signed)
	if status != http.StatusRequestEntityTooLarge {
		t.Fatalf("declared: status %d, want 413", status)
	}
	problemOf(t, hdr, b)

	// Chunked: no Content-Length; cut off once the limit is passed.
	req, _ := http.NewRequest(http.MethodPost, g.url("/webhooks/v1/small"), io.MultiReader(bytes.NewReader(huge)))
	req.ContentLength = -1
	for k, v := range signed {
		req.Header.Set(k, v)
	}
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("streamed: status %d, want 413", resp.StatusCode)
	}

	// Expect: 100-continue with a huge Content-Length: 413 at once, no
	// "100 Continue", so the client never sends the body.
	resp2, _, err := g.raw("POST /webhooks/v1/small HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\nExpect: 100-continue\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	if resp2.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("Expect: 100-continue: status %d, want 413", resp2.StatusCode)
	}
	g.assertNothingStored()
}

// gz compresses b.
func gz(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

// Row: Content-Encoding gzip → 415 unless the source accepts it; then the
// body is decompressed behind a size and a ratio cap (413 past them), the
// signature covers the decompressed bytes, and those are stored.
func TestAttackGzip(t *testing.T) {
	g := startGateway(t, gatewayConfig{Sources: `
		source plain {
			verify github ` + testSecret + `
		}
		source zipped {
			verify github ` + testSecret + `
			accept_encoding gzip
			max_body 64KiB
			id_header X-Id
		}
		source roomy {
			verify none
			accept_encoding gzip
			max_body 4KiB
			max_ratio 100000
		}`})
	body := []byte(`{"zipped":true,"note":"caf\xc3\xa9"}`)
	signed := sign(t, "github", testSecret, body, time.Now(), map[string]string{"Content-Encoding": "gzip", "X-Id": "z-1"})

	status, hdr, b := g.post("/webhooks/v1/plain", gz(body), signed)
	if status != http.StatusUnsupportedMediaType || hdr.Get("Accept-Encoding") != "identity" {
		t.Fatalf("gzip to a source without accept_encoding: status %d Accept-Encoding %q", status, hdr.Get("Accept-Encoding"))
	}
	problemOf(t, hdr, b)
	for _, ce := range []string{"br", "deflate", "gzip, gzip", "compress"} {
		h := map[string]string{"Content-Encoding": ce}
		if status, hdr, _ := g.post("/webhooks/v1/zipped", gz(body), h); status != http.StatusUnsupportedMediaType || hdr.Get("Accept-Encoding") != "gzip, identity" {
			t.Fatalf("Content-Encoding %q: status %d Accept-Encoding %q", ce, status, hdr.Get("Accept-Encoding"))
		}
	}

	// The signature over the compressed bytes is not the one providers
	// send, and is refused.
	overCompressed := sign(t, "github", testSecret, gz(body), time.Now(), map[string]string{"Content-Encoding": "gzip"})
	if status, _, _ := g.post("/webhooks/v1/zipped", gz(body), overCompressed); status != http.StatusUnauthorized {
		t.Fatalf("signature over the compressed bytes: status %d, want 401", status)
	}
	if status, _, _ := g.post("/webhooks/v1/zipped", []byte("\x1f\x8b\x08garbage"), signed); status != http.StatusBadRequest {
		t.Fatalf("corrupt gzip: status %d, want 400", status)
	}
	// A bomb: 10 MiB of zeros in about 10 KiB, far past max_ratio 100.
	bomb := gz(make([]byte, 10<<20))
	if status, _, _ := g.post("/webhooks/v1/zipped", bomb, map[string]string{"Content-Encoding": "gzip"}); status != http.StatusRequestEntityTooLarge {
		t.Fatalf("gzip bomb: status %d, want 413", status)
	}
	// Within the ratio but past max_body once decompressed.
	if status, _, _ := g.post("/webhooks/v1/roomy", gz(make([]byte, 8<<10)), map[string]string{"Content-Encoding": "gzip"}); status != http.StatusRequestEntityTooLarge {
		t.Fatalf("decompressed past max_body: status %d, want 413", status)
	}
	g.assertNothingStored()

	status, _, b = g.post("/webhooks/v1/zipped", gz(body), signed)
	if status != http.StatusOK {
		t.Fatalf("signed gzip delivery: status %d %s", status, b)
	}
	msgs := g.stored(event.StreamName)
	if len(msgs) != 1 || !bytes.Equal(msgs[0].Data, body) {
		t.Fatalf("stored %d events; want the decompressed body %q", len(msgs), body)
	}
	if ce := msgs[0].Header.Get("Content-Encoding"); ce != "" {
		t.Fatalf("stored Content-Encoding %q for a decompressed body", ce)
	}
}

// Row: header flood → 431 from Go/Caddy before the handler.
func TestAttackHeaderFlood(t *testing.T) {
	g := startGateway(t, gatewayConfig{})
	var b strings.Builder
	b.WriteString("POST /webhooks/v1/demo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n")
	for i := range 2000 {
		fmt.Fprintf(&b, "X-Flood-%d: %s\r\n", i, strings.Repeat("a", 1000))
	}
	b.WriteString("\r\n{}")
	resp, _, err := g.raw(b.String())
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("status %d, want 431", resp.StatusCode)
	}
	g.assertNothingStored()
}

// Row: slowloris and slow bodies → the connection is closed by the server
// timeouts (the example ships read_header 10s, read_body 30s; here
// shorter), nothing is stored, and ordinary deliveries go on meanwhile.
func TestAttackSlowClients(t *testing.T) {
	g := startEdge(t, edgeConfig{Options: `
	servers {
		timeouts {
			read_header 500ms
			read_body 1500ms
		}
	}`})
	goroutinesBefore := runtime.NumGoroutine()

	const slow = 50
	type outcome struct {
		answer  string
		elapsed time.Duration
	}
	results := make(chan outcome, 2*slow)
	slowClient := func(head string, drip string) {
		answer, elapsed := trickle(g.addr, head, drip, 200*time.Millisecond)
		results <- outcome{answer, elapsed}
	}
	for range slow {
		// Headers one short line at a time, never finished.
		go slowClient("POST /webhooks/v1/demo HTTP/1.1\r\nHost: "+g.addr+"\r\n", "X-Slow: 1\r\n")
		// Complete headers, then a body one byte at a time.
		go slowClient("POST /webhooks/v1/demo HTTP/1.1\r\nHost: "+g.addr+"\r\nX-Id: slow\r\nContent-Length: 100\r\n\r\n", "x")
	}

	// Meanwhile, normal deliveries keep succeeding.
	var lat []time.Duration
	for i := range 20 {
		start := time.Now()
		status, _, b := g.post("/webhooks/v1/demo", []byte(`{}`), map[string]string{"X-Id": fmt.Sprint("normal-", i)})
		lat = append(lat, time.Since(start))
		if status != http.StatusOK {
			t.Fatalf("normal delivery %d during the slow flood: status %d %s", i, status, b)
		}
		time.Sleep(50 * time.Millisecond)
	}

	var worst time.Duration
	answers := map[string]int{}
	for range 2 * slow {
		o := <-results
		answers[o.answer]++
		if strings.Contains(o.answer, " 2") {
			t.Fatalf("a slow client got %q", o.answer)
		}
		if o.answer != "closed" && !strings.Contains(o.answer, " 408 ") {
			t.Fatalf("a slow client got %q, want the connection closed or 408", o.answer)
		}
		worst = max(worst, o.elapsed)
	}
	if worst > 5*time.Second {
		t.Fatalf("a slow client held its connection %s", worst)
	}
	slowest := time.Duration(0)
	for _, l := range lat {
		slowest = max(slowest, l)
	}
	t.Logf("%d slow-header and %d slow-body clients cut off within %s (%v); 20 normal deliveries meanwhile, slowest %s", slow, slow, worst, answers, slowest)
	for _, m := range g.stored(event.StreamName) {
		if m.Header.Get(event.HeaderDeliveryID) == "slow" {
			t.Fatal("a slow body was stored")
		}
	}
	testClient.CloseIdleConnections()
	waitfor.Until(t, 5*time.Second, "goroutines back to their level before the slow clients", func() bool {
		return runtime.NumGoroutine() <= goroutinesBefore+10
	})
}

// rawCase is a request sent as raw bytes and the statuses it may get.
type rawCase struct {
	name, req string
	want      []int
}

// Row: request smuggling (CL.CL, TE.CL, odd Transfer-Encoding) → 400 or
// 501 from Go; nothing persisted.
func TestAttackSmuggling(t *testing.T) {
	g := startGateway(t, gatewayConfig{})
	smuggled := "POST /webhooks/v1/demo HTTP/1.1\r\nHost: x\r\nX-Id: smuggled\r\nContent-Length: 2\r\n\r\n{}"
	cases := []rawCase{
		{"CL.CL conflicting", "POST /webhooks/v1/demo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 80\r\n\r\n{}" + smuggled, []int{400}},
		{"CL list", "POST /webhooks/v1/demo HTTP/1.1\r\nHost: x\r\nContent-Length: 2, 80\r\n\r\n{}" + smuggled, []int{400}},
		{"TE gzip, chunked", "POST /webhooks/v1/demo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", []int{501}},
		{"TE xchunked", "POST /webhooks/v1/demo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\nContent-Length: 2\r\n\r\n{}", []int{501}},
		{"TE twice", "POST /webhooks/v1/demo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", []int{501}},
		{"TE with space before colon", "POST /webhooks/v1/demo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\nContent-Length: 2\r\n\r\n{}", []int{400}},
		{"bad chunk size", "POST /webhooks/v1/demo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n", []int{400}},
		{"negative CL", "POST /webhooks/v1/demo HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n{}", []int{400}},
		{"no Host", "POST /webhooks/v1/demo HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", []int{400}},
		{"NUL in header", "POST /webhooks/v1/demo HTTP/1.1\r\nHost: x\r\nX-Id: a\x00b\r\nContent-Length: 2\r\n\r\n{}", []int{400}},
		{"bare LF in header value", "POST /webhooks/v1/demo HTTP/1.1\r\nHost: x\r\nX-Id: a\rb\r\nContent-Length: 2\r\n\r\n{}", []int{400}},
	}
	// Framings Go reads one consistent way: a folded Transfer-Encoding
	// line is joined (RFC 9112 allows it), and Transfer-Encoding beats
	// Content-Length on HTTP/1.0 too, after which the connection closes.
	// The request is read as chunked; what follows is never a request.
	consistent := "Host: x\r\nX-Id: first\r\nContent-Length: 4\r\n"
	chunked := "\r\n2\r\n{}\r\n0\r\n\r\n" + smuggled
	cases = append(cases,
		rawCase{"TE obs-fold", "POST /webhooks/v1/demo HTTP/1.1\r\n" + consistent + "Transfer-Encoding:\r\n chunked\r\nConnection: close\r\n" + chunked, []int{200}},
		rawCase{"TE and CL on HTTP/1.0", "POST /webhooks/v1/demo HTTP/1.0\r\n" + consistent + "Transfer-Encoding: chunked\r\n" + chunked, []int{200}},
	)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, _, err := g.raw(c.req)
			if err != nil {
				t.Fatal(err)
			}
			ok := false
			for _, w := range c.want {
				ok = ok || resp.StatusCode == w
			}
			if !ok {
				t.Fatalf("status %d, want one of %v", resp.StatusCode, c.want)
			}
		})
	}
	time.Sleep(200 * time.Millisecond) // a smuggled request would be served by now
	for _, m := range g.stored(event.StreamName) {
		if id := m.Header.Get(event.HeaderDeliveryID); id != "first" {
			t.Fatalf("stored an event with delivery id %q: a request was smuggled", id)
		}
	}
}

// Row: path tricks → 404 from the strict [a-z0-9_-] check, sent as raw
// bytes so no client cleans them first.
func TestAttackPathTricks(t *testing.T) {
	g := startGateway(t, gatewayConfig{})
	for _, p := range []string{
		"/webhooks/v1/../v1/demo", "/webhooks/v1/%2e%2e/demo", "/webhooks/v1/./demo",
		"/webhooks/v1%2Fdemo", "/webhooks/v1/demo%2F", "/webhooks/v1/de%6Do", "/webhooks/v1/demo%00",
		"/webhooks/v1/*", "/webhooks/v1/>", "/webhooks/v1/demo.x", "/webhooks/v1/demo.>",
		"/webhooks/V1/demo", "/webhooks/v1/DEMO", "/webhooks/v1//demo", "/webhooks//v1/demo",
		"/webhooks/v1/demo/", "/webhooks/v1/demo/x", "/webhooks/v1", "/webhooks/", "/webhooks/v1/d%C3%A9mo",
		"/webhooks/v1/" + strings.Repeat("a", 65), "/webhooks/v1/demo;x", "/webhooks/v1/demo%20",
		"/webhooks/v1/\xffdemo", "/webhooks/v1/de mo",
	} {
		resp, b, err := g.raw("POST " + p + " HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
		if err != nil {
			t.Fatalf("%q: %v", p, err)
		}
		if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("%q: status %d, want 404 (or Go's 400 for an unparseable request line): %s", p, resp.StatusCode, b)
		}
		if resp.StatusCode == http.StatusNotFound {
			problemOf(t, resp.Header, b)
		}
	}
	g.assertNothingStored()
}

// Row: unknown provider paths in bulk → 404 without reading the body, and
// per-IP 429 once the client's budget is spent.
func TestAttackUnknownPathsInBulk(t *testing.T) {
	g := startEdge(t, edgeConfig{
		gatewayConfig: gatewayConfig{Ingest: "\t\trate_per_ip 5/s burst 5"},
		Options:       trustLoopback,
	})
	// The body is never read: Expect: 100-continue gets the 404 at once.
	resp, b, err := g.raw("POST /webhooks/v1/nosuch HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 198.51.100.1\r\nContent-Length: 1000000000\r\nExpect: 100-continue\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("status %d, want 404 without 100 Continue: %s", resp.StatusCode, b)
	}
	counts := map[int]int{}
	var retry string
	for i := range 50 {
		status, hdr, _ := g.post(fmt.Sprintf("/webhooks/v1/probe-%d", i), nil, map[string]string{"X-Forwarded-For": "198.51.100.2"})
		counts[status]++
		if status == http.StatusTooManyRequests {
			retry = hdr.Get("Retry-After")
		}
	}
	if counts[404] < 5 || counts[404] > 7 || counts[429] < 43 || retry != "1" {
		t.Fatalf("50 probes at once with a budget of 5/s burst 5: %v, Retry-After %q", counts, retry)
	}
	// Another client is not affected.
	if status, _, _ := g.post("/webhooks/v1/demo", []byte(`{}`), map[string]string{"X-Forwarded-For": "198.51.100.3"}); status != http.StatusOK {
		t.Fatalf("another client: status %d", status)
	}
}

// Row: invalid UTF-8 or JSON with a valid signature → stored as received,
// 2xx, never a crash.
func TestAttackSignedInvalidBody(t *testing.T) {
	g := startGateway(t, gatewayConfig{Sources: signedSources})
	bodies := [][]byte{
		[]byte("not json at all \xff\xfe\x00"),
		[]byte(`{"truncated":`),
		[]byte("{\"s\":\"\xc3\x28\"}"),
		{},
	}
	for i, body := range bodies {
		hdr := sign(t, "github", testSecret, body, time.Now(), map[string]string{"X-GitHub-Delivery": fmt.Sprint("bad-", i), "Content-Type": "application/json"})
		if status, _, b := g.post("/webhooks/v1/github", body, hdr); status != http.StatusOK {
			t.Fatalf("body %d: status %d %s", i, status, b)
		}
	}
	msgs := g.stored(event.StreamName)
	if len(msgs) != len(bodies) {
		t.Fatalf("%d stored, want %d", len(msgs), len(bodies))
	}
	for i, m := range msgs {
		if !bytes.Equal(m.Data, bodies[i]) {
			t.Fatalf("stored %q, sent %q", m.Data, bodies[i])
		}
	}
}

// heapInUse is the live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// flood sends n requests from 8 connections; ip(i) is the
// X-Forwarded-For of the i-th. It returns the count of each status and
// the most goroutines seen meanwhile.
func (g *gateway) flood(n int, path string, ip func(int) string) (map[int]int, int) {
	g.t.Helper()
	var (
		mu      sync.Mutex
		counts  = map[int]int{}
		next    atomic.Int64
		peak    atomic.Int64
		wg      sync.WaitGroup
		retries = map[string]bool{}
	)
	for range 8 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				status, hdr, _ := g.send(http.MethodPost, path, []byte(`{}`), map[string]string{"X-Forwarded-For": ip(i)})
				if status == http.StatusTooManyRequests {
					if hdr.Get("Retry-After") == "" {
						g.t.Error("429 without Retry-After")
					}
				}
				if i%500 == 0 {
					if gr := int64(runtime.NumGoroutine()); gr > peak.Load() {
						peak.Store(gr)
					}
				}
				mu.Lock()
				counts[status]++
				retries[hdr.Get("Retry-After")] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return counts, int(peak.Load())
}

// ipTableOf finds the live per-IP table whose pool key starts with prefix.
func ipTableOf(t *testing.T, prefix string) *ipTable {
	t.Helper()
	var tab *ipTable
	limiters.Range(func(k, v any) bool {
		if s, _ := k.(string); strings.HasPrefix(s, prefix) {
			tab = v.(*ipTable)
		}
		return true
	})
	if tab == nil {
		t.Fatalf("no per-IP table %s...", prefix)
	}
	return tab
}

// Row: flood from one IP → 429 + Retry-After, checked before the body is
// read; memory and goroutines stay flat. And the same for a flood that
// sprays thousands of addresses: the table stays at its cap.
func TestAttackFlood(t *testing.T) {
	g := startEdge(t, edgeConfig{
		gatewayConfig: gatewayConfig{Ingest: "\t\trate_per_ip 20/s burst 40 max_clients 2000"},
		Options:       trustLoopback,
	})
	n := 20_000
	if raceEnabled {
		n = 5_000 // the race detector makes each request ~10x dearer
	}
	g.post("/webhooks/v1/nosuch", nil, map[string]string{"X-Forwarded-For": "192.0.2.99"}) // warm up
	goroutines, heap := runtime.NumGoroutine(), heapInUse()

	start := time.Now()
	counts, peak := g.flood(n/4, "/webhooks/v1/demo", func(int) string { return "203.0.113.50" })
	elapsed := time.Since(start)
	accepted := counts[200]
	maxAccepted := 40 + int(20*elapsed.Seconds()) + 1
	if accepted > maxAccepted || accepted < 40 || accepted+counts[429] != n/4 {
		t.Fatalf("one IP, %d requests in %s: %v; want at most %d accepted and the rest 429", n/4, elapsed, counts, maxAccepted)
	}
	t.Logf("one IP: %d requests in %s: %v, peak %d goroutines", n/4, elapsed, counts, peak)

	start = time.Now()
	counts, peak2 := g.flood(n, "/webhooks/v1/nosuch", func(i int) string {
		return fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255)
	})
	tab := ipTableOf(t, "ip|/webhooks|")
	size := tab.len()
	t.Logf("%d addresses in %s: %v; table holds %d (cap 2000), peak %d goroutines", n, time.Since(start), counts, size, peak2)
	if size > 2000 {
		t.Fatalf("per-IP table holds %d clients, cap 2000", size)
	}
	if counts[404] != n {
		t.Fatalf("sprayed probes: %v, want all %d 404 (each address is new)", counts, n)
	}

	testClient.CloseIdleConnections()
	if peak > goroutines+100 || peak2 > goroutines+100 {
		t.Fatalf("goroutines peaked at %d/%d from %d", peak, peak2, goroutines)
	}
	grown := int64(heapInUse()) - int64(heap)
	t.Logf("heap grew %d KiB over both floods", grown>>10)
	if grown > 16<<20 {
		t.Fatalf("heap grew %d MiB under the floods", grown>>20)
	}
	if n := len(g.stored(event.StreamName)); n != accepted {
		t.Fatalf("%d events stored, %d accepted", n, accepted)
	}
}

// Row: JetStream disabled or gone → 503 + Retry-After, never 2xx. (A
// full stream is TestStreamFull.)
func TestAttackStoreDown(t *testing.T) {
	g := startGateway(t, gatewayConfig{Ingest: "\t\tpublish_timeout 1s\n\t\tretry_after 7s"})
	// The store is up first: on a loaded machine the first fsync round
	// may outlast the short publish_timeout, so a 503 then is retried.
	waitFor(t, 15*time.Second, "a 200 before the store goes down", func() bool {
		status, _, _ := g.post("/webhooks/v1/demo", []byte(`{}`), map[string]string{"X-Id": "before"})
		return status == http.StatusOK
	})
	if err := g.engine().srv.DisableJetStream(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		status, hdr, b := g.post("/webhooks/v1/demo", []byte(`{}`), map[string]string{"X-Id": fmt.Sprint("down-", i)})
		if status != http.StatusServiceUnavailable || hdr.Get("Retry-After") != "7" {
			t.Fatalf("store down: status %d Retry-After %q, want 503 and 7 (%s)", status, hdr.Get("Retry-After"), b)
		}
		problemOf(t, hdr, b)
	}
}

// Row: any 3xx → never. No method, path or header makes the gateway
// redirect.
func TestAttackNever3xx(t *testing.T) {
	g := startEdge(t, edgeConfig{
		gatewayConfig: gatewayConfig{Ingest: "\t\tversions v1 v2\n\t\tdeprecate v1 2027-06-30\n\t\tretire v0"},
		Options:       trustLoopback,
	})
	paths := []string{
		"/webhooks/v1/demo", "/webhooks/v0/demo", "/webhooks/v1/demo/", "/webhooks/v1", "/webhooks/v1/",
		"/webhooks/", "/webhooks//v1/demo", "/webhooks/v1/./demo", "/webhooks/v1/../v1/demo",
		"/webhooks/v1/demo?x=1", "/webhooks/v1/%2e/demo", "http://x/webhooks/v1/demo", "/webhooks/v1/demo#f",
	}
	methods := []string{"POST", "GET", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE"}
	headers := []string{
		"", "X-Forwarded-Proto: http\r\n", "X-Forwarded-Host: evil.example\r\n", "Upgrade: h2c\r\nConnection: Upgrade\r\n",
		"Content-Encoding: gzip\r\n", "Expect: 100-continue\r\n", "X-Forwarded-For: 203.0.113.9\r\n",
	}
	n := 0
	for _, p := range paths {
		for _, m := range methods {
			for _, h := range headers {
				resp, _, err := g.raw(m + " " + p + " HTTP/1.1\r\nHost: x\r\n" + h + "Content-Length: 2\r\nX-Id: never3xx\r\n\r\n{}")
				if err != nil {
					t.Fatalf("%s %s %q: %v", m, p, h, err)
				}
				if resp.StatusCode/100 == 3 {
					t.Fatalf("%s %s %q: status %d, Location %q", m, p, h, resp.StatusCode, resp.Header.Get("Location"))
				}
				n++
			}
		}
	}
	t.Logf("%d requests, no 3xx", n)
}

// TestMistypedPathIsNot2xx: Caddy answers a request no handler takes with
// an empty 200, which a provider would take for a delivery. Without a path
// matcher (a hostname for webhooks only), or with a "respond 404" at the
// end of the site, a mistyped URL gets an error instead.
func TestMistypedPathIsNot2xx(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  edgeConfig
		want int
	}{
		{"matcher only: Caddy's empty 200", edgeConfig{}, http.StatusOK},
		{"no matcher", edgeConfig{AllPaths: true}, http.StatusNotFound},
		{"respond 404 fallback", edgeConfig{Site: "\trespond 404"}, http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := startEdge(t, tc.cfg)
			status, _, b := g.post("/webhook/v1/demo", []byte(`{}`), nil)
			if status != tc.want {
				t.Fatalf("status %d, want %d (%q)", status, tc.want, b)
			}
			if status == http.StatusOK && len(b) != 0 {
				t.Fatalf("Caddy's fallback answered %q", b)
			}
			if status, _, b := g.post("/webhooks/v1/demo", []byte(`{}`), nil); status != http.StatusOK || len(b) == 0 {
				t.Fatalf("the real path: status %d %q", status, b)
			}
			if n := len(g.stored(event.StreamName)); n != 1 {
				t.Fatalf("%d stored, want 1", n)
			}
			testClient.CloseIdleConnections()
		})
	}
}

// TestRateLimitAcceptedRate: a source limited to 50/s, hammered for 3 s,
// accepts burst + 50/s × elapsed within 10%, and every refusal is a 429
// with a Retry-After. The burst of 10 absorbs scheduling gaps of up to
// 200ms on a busy machine, during which a burst of 1 would waste tokens and
// make the measured rate a property of the machine, not of the limiter.
func TestRateLimitAcceptedRate(t *testing.T) {
	g := startGateway(t, gatewayConfig{Sources: `
		source metered {
			verify none
			rate 50/s burst 10
		}`})
	const d = 3 * time.Second
	var accepted, refused atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	// 16 clients: an accepted request waits for its fsync, so on a slow
	// or busy disk four clients could not offer 50/s, and the bucket's
	// tokens went unused (a test of the load, not of the limit).
	for range 16 {
		wg.Go(func() {
			for time.Since(start) < d {
				status, hdr, b := g.send(http.MethodPost, "/webhooks/v1/metered", []byte(`{}`), nil)
				switch status {
				case http.StatusOK:
					accepted.Add(1)
				case http.StatusTooManyRequests:
					if hdr.Get("Retry-After") != "1" {
						t.Errorf("Retry-After %q, want 1 (the next token is 20ms away)", hdr.Get("Retry-After"))
					}
					refused.Add(1)
				default:
					t.Errorf("status %d %s", status, b)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	want := 10 + 50*elapsed.Seconds()
	got := float64(accepted.Load())
	t.Logf("rate 50/s burst 10 over %s: %d accepted (%.1f/s), %d refused; configured %.0f", elapsed.Round(time.Millisecond), accepted.Load(), got/elapsed.Seconds(), refused.Load(), want)
	if got < want*0.9 || got > want*1.1 {
		t.Fatalf("%v accepted, want %.0f ±10%%", got, want)
	}
	if refused.Load() == 0 {
		t.Fatal("nothing refused: the test did not exceed the rate")
	}
	if n := len(g.stored(event.StreamName)); int64(n) != accepted.Load() {
		t.Fatalf("%d stored, %d accepted", n, accepted.Load())
	}
}

// TestRetryAfterIsTruthful: a retry after Retry-After seconds is accepted.
func TestRetryAfterIsTruthful(t *testing.T) {
	g := startGateway(t, gatewayConfig{Sources: `
		source slowly {
			verify none
			rate 1/2s burst 1
		}`})
	if status, _, _ := g.post("/webhooks/v1/slowly", []byte(`{}`), nil); status != http.StatusOK {
		t.Fatalf("first: status %d", status)
	}
	status, hdr, b := g.post("/webhooks/v1/slowly", []byte(`{}`), nil)
	if status != http.StatusTooManyRequests {
		t.Fatalf("second: status %d, want 429", status)
	}
	if p := problemOf(t, hdr, b); p["type"] != "urn:hookgate:problem:rate-limited" {
		t.Fatalf("problem %v", p)
	}
	secs, err := strconv.Atoi(hdr.Get("Retry-After"))
	if err != nil || secs != 2 {
		t.Fatalf("Retry-After %q, want 2", hdr.Get("Retry-After"))
	}
	time.Sleep(time.Duration(secs) * time.Second)
	if status, _, b := g.post("/webhooks/v1/slowly", []byte(`{}`), nil); status != http.StatusOK {
		t.Fatalf("retry after Retry-After: status %d %s", status, b)
	}
}

// TestPerIPLimits: each client has its own budget; a source may replace the
// handler's per-IP budget with a larger one.
func TestPerIPLimits(t *testing.T) {
	g := startEdge(t, edgeConfig{
		gatewayConfig: gatewayConfig{
			Ingest: "\t\trate_per_ip 3/m burst 3",
			Sources: demoSources + `
		source provider {
			verify none
			rate_per_ip 1000/s
		}`,
		},
		Options: trustLoopback,
	})
	post := func(path, ip string) (int, string) {
		status, hdr, _ := g.post(path, []byte(`{}`), map[string]string{"X-Forwarded-For": ip})
		return status, hdr.Get("Retry-After")
	}
	for i := range 3 {
		if status, _ := post("/webhooks/v1/demo", "203.0.113.1"); status != http.StatusOK {
			t.Fatalf("post %d: status %d", i, status)
		}
	}
	status, retry := post("/webhooks/v1/demo", "203.0.113.1")
	if status != http.StatusTooManyRequests || retry != "20" {
		t.Fatalf("4th post: status %d Retry-After %q, want 429 and 20 (3/m)", status, retry)
	}
	if status, _ := post("/webhooks/v1/demo", "203.0.113.2"); status != http.StatusOK {
		t.Fatalf("another client: status %d", status)
	}
	for i := range 20 {
		if status, _ := post("/webhooks/v1/provider", "203.0.113.1"); status != http.StatusOK {
			t.Fatalf("provider source post %d: status %d; its own per-IP budget should apply", i, status)
		}
	}
}

// TestLimiterSurvivesReload: a reload that keeps a limit keeps its buckets,
// so waiting for a config change does not reset a client's budget; a
// changed limit starts afresh.
func TestLimiterSurvivesReload(t *testing.T) {
	cfg := gatewayConfig{Sources: `
		source metered {
			verify none
			rate 2/m burst 2
		}`}
	g := startGateway(t, cfg)
	for range 2 {
		g.post("/webhooks/v1/metered", []byte(`{}`), nil)
	}
	if status, _, _ := g.post("/webhooks/v1/metered", []byte(`{}`), nil); status != http.StatusTooManyRequests {
		t.Fatalf("status %d, want 429 before the reload", status)
	}
	// A reload closes the old server's connections, idle ones and (rarely)
	// one it accepted as it was shutting down: a POST on one fails before
	// any answer, and is sent again as a provider would.
	reload := func(cfg gatewayConfig) {
		g.load(cfg)
		testClient.CloseIdleConnections()
	}
	post := func() int {
		for range 10 {
			if status, _, _ := g.send(http.MethodPost, "/webhooks/v1/metered", []byte(`{}`), nil); status != 0 {
				return status
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatal("no answer in 10 tries")
		return 0
	}
	cfg = g.cfg
	cfg.Ingest = "\t\tstatus 202"
	reload(cfg)
	if status := post(); status != http.StatusTooManyRequests {
		t.Fatalf("status %d after a reload, want 429: the reload reset the bucket", status)
	}
	key := "source|/webhooks/metered|2/1m0s burst 2"
	if n, ok := limiters.References(key); !ok || n != 1 {
		t.Fatalf("limiter %q referenced %d times after the reload, want 1", key, n)
	}
	cfg.Sources = strings.Replace(cfg.Sources, "rate 2/m burst 2", "rate 3/m burst 3", 1)
	reload(cfg)
	if status := post(); status != http.StatusAccepted {
		t.Fatalf("status %d after changing the limit, want 202", status)
	}
	if _, ok := limiters.References(key); ok {
		t.Fatalf("the old limit's bucket is still held after the reload")
	}
}

// TestAllowIPs: a source with allow_ips refuses other clients with 403
// before reading the body.
func TestAllowIPs(t *testing.T) {
	g := startEdge(t, edgeConfig{
		gatewayConfig: gatewayConfig{Sources: `
		source github {
			verify none
			allow_ips 192.30.252.0/22 2606:50c0::/32
		}`},
		Options: trustLoopback,
	})
	for ip, want := range map[string]int{
		"192.30.252.41":     http.StatusOK,
		"2606:50c0:8000::1": http.StatusOK,
		"203.0.113.1":       http.StatusForbidden,
		"192.30.248.1":      http.StatusForbidden,
	} {
		status, hdr, b := g.post("/webhooks/v1/github", []byte(`{}`), map[string]string{"X-Forwarded-For": ip})
		if status != want {
			t.Fatalf("client %s: status %d, want %d", ip, status, want)
		}
		if want == http.StatusForbidden {
			problemOf(t, hdr, b)
		}
	}
	// The loopback peer itself, with no forwarded address, is not GitHub.
	if status, _, _ := g.post("/webhooks/v1/github", []byte(`{}`), nil); status != http.StatusForbidden {
		t.Fatalf("loopback: status %d, want 403", status)
	}
	if n := len(g.stored(event.StreamName)); n != 2 {
		t.Fatalf("%d stored, want the 2 allowed", n)
	}
}

// TestVersions: deprecated versions carry Deprecation, Sunset and a Link to
// the successor; retired ones get 410 naming the current versions; a
// source can be restricted to some versions; and the version is in the
// subject and the stored event.
func TestVersions(t *testing.T) {
	g := startGateway(t, gatewayConfig{
		Ingest: `		versions v1 v2 v3
		deprecate v1 2027-06-30 since 2026-01-01
		deprecate v2 2027-12-31T12:00:00Z
		retire v0`,
		Sources: demoSources + `
		source newer {
			verify none
			versions v2 v3
		}`,
	})
	status, hdr, _ := g.post("/webhooks/v1/demo", []byte(`{}`), map[string]string{"X-Type": "thing.done"})
	if status != http.StatusOK {
		t.Fatalf("v1: status %d", status)
	}
	for k, want := range map[string]string{
		"Deprecation": "@1767225600", // 2026-01-01T00:00:00Z
		"Sunset":      "Wed, 30 Jun 2027 00:00:00 GMT",
		"Link":        `</webhooks/v3/demo>; rel="successor-version"`,
	} {
		if got := hdr.Get(k); got != want {
			t.Errorf("v1 %s = %q, want %q", k, got, want)
		}
	}
	_, hdr, _ = g.post("/webhooks/v2/newer", []byte(`{}`), nil)
	if hdr.Get("Deprecation") != "@1830254400" || hdr.Get("Sunset") != "Fri, 31 Dec 2027 12:00:00 GMT" || hdr.Get("Link") != `</webhooks/v3/newer>; rel="successor-version"` {
		t.Errorf("v2: Deprecation %q Sunset %q Link %q", hdr.Get("Deprecation"), hdr.Get("Sunset"), hdr.Get("Link"))
	}
	_, hdr, _ = g.post("/webhooks/v3/demo", []byte(`{}`), nil)
	if hdr.Get("Deprecation") != "" || hdr.Get("Sunset") != "" || hdr.Get("Link") != "" {
		t.Errorf("v3 is current but answered with Deprecation %q Sunset %q Link %q", hdr.Get("Deprecation"), hdr.Get("Sunset"), hdr.Get("Link"))
	}
	// Every answer on a deprecated version says so, refusals too.
	status, hdr, _ = g.send(http.MethodGet, "/webhooks/v1/demo", nil, nil)
	if status != http.StatusMethodNotAllowed || hdr.Get("Deprecation") == "" {
		t.Errorf("GET v1: status %d Deprecation %q", status, hdr.Get("Deprecation"))
	}

	before := len(g.stored(event.StreamName))
	status, hdr, b := g.post("/webhooks/v0/newer", []byte(`{}`), nil)
	if status != http.StatusGone {
		t.Fatalf("v0: status %d, want 410", status)
	}
	p := problemOf(t, hdr, b)
	if p["type"] != "urn:hookgate:problem:version-retired" || fmt.Sprint(p["current_versions"]) != "[v2 v3]" || !strings.Contains(p["detail"].(string), "v2, v3") {
		t.Fatalf("410 body %s", b)
	}
	if hdr.Get("Link") != `</webhooks/v3/newer>; rel="successor-version"` {
		t.Fatalf("410 Link %q", hdr.Get("Link"))
	}
	if status, _, _ := g.post("/webhooks/v1/newer", []byte(`{}`), nil); status != http.StatusNotFound {
		t.Fatalf("v1 of a source restricted to v2 v3: status %d, want 404", status)
	}
	if status, _, _ := g.post("/webhooks/v4/demo", []byte(`{}`), nil); status != http.StatusNotFound {
		t.Fatalf("unknown version: status %d, want 404", status)
	}
	msgs := g.stored(event.StreamName)
	if len(msgs) != before {
		t.Fatalf("refused versions stored %d events", len(msgs)-before)
	}
	for i, want := range []struct{ subject, version string }{
		{"webhooks.v1.demo.thing.done", "v1"},
		{"webhooks.v2.newer.unknown", "v2"},
		{"webhooks.v3.demo.unknown", "v3"},
	} {
		m := msgs[i]
		if m.Subject != want.subject || m.Header.Get(event.HeaderVersion) != want.version {
			t.Errorf("event %d: subject %q version %q, want %q %q", i, m.Subject, m.Header.Get(event.HeaderVersion), want.subject, want.version)
		}
	}
}

// TestSlackURLVerification: Slack's signed url_verification challenge is
// echoed and not stored; a bad signature on it is 401 like any other.
func TestSlackURLVerification(t *testing.T) {
	g := startGateway(t, gatewayConfig{Sources: signedSources})
	body := []byte(`{"token":"legacy","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}`)
	hdr := sign(t, "slack", testSecret, body, time.Now(), map[string]string{"Content-Type": "application/json"})
	status, rh, b := g.post("/webhooks/v1/slack", body, hdr)
	if status != http.StatusOK || rh.Get("Content-Type") != "application/json" {
		t.Fatalf("challenge: status %d Content-Type %q", status, rh.Get("Content-Type"))
	}
	var got map[string]string
	if err := json.Unmarshal(b, &got); err != nil || got["challenge"] != "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" || len(got) != 1 {
		t.Fatalf("challenge answer %s: %v", b, err)
	}
	hdr["X-Slack-Signature"] = "v0=" + strings.Repeat("0", 64)
	if status, _, _ := g.post("/webhooks/v1/slack", body, hdr); status != http.StatusUnauthorized {
		t.Fatalf("forged challenge: status %d, want 401", status)
	}
	g.assertNothingStored()

	ev := []byte(`{"type":"event_callback","event_id":"Ev1","event":{"type":"app_mention"}}`)
	if status, _, b := g.post("/webhooks/v1/slack", ev, sign(t, "slack", testSecret, ev, time.Now(), nil)); status != http.StatusOK {
		t.Fatalf("event: status %d %s", status, b)
	}
	if msgs := g.stored(event.StreamName); len(msgs) != 1 || msgs[0].Subject != "webhooks.v1.slack.app_mention" {
		t.Fatalf("stored %d events", len(msgs))
	}
}

// Row: secrets never logged. The module's log (Caddy's default log in a
// file, at debug level) and an access log with the documented filter
// never hold a secret, a signature, a token or a body.
func TestSecretsNeverLogged(t *testing.T) {
	dir := t.TempDir()
	modLog, accessLog := filepath.Join(dir, "caddy.log"), filepath.Join(dir, "access.log")
	g := startEdge(t, edgeConfig{
		gatewayConfig: gatewayConfig{Sources: signedSources + demoSources},
		Options: fmt.Sprintf(`
	log {
		output file %s
		level DEBUG
	}`, modLog),
		Site: fmt.Sprintf(`
	log {
		output file %s
		format filter {
%s
			request>uri query {
				delete token
			}
			wrap json
		}
	}`, accessLog, accessLogFilter),
	})
	body := []byte(`{"marker":"BODY-MARKER-5d1e"}`)
	now := time.Now()
	good := sign(t, "github", testSecret, body, now, map[string]string{"X-GitHub-Delivery": "log-1"})
	wrong := sign(t, "github", "another-secret", body, now, nil)
	stale := sign(t, "stripe", testSecret, body, now.Add(-time.Hour), nil)
	slackGood := sign(t, "slack", testSecret, body, now, nil)
	secrets := []string{testSecret, "BODY-MARKER-5d1e", "Bearer-TOKEN-c0ffee", "QUERY-TOKEN-beef", "sha256=" + strings.Repeat("ab", 32)}
	for _, h := range []map[string]string{good, wrong, stale, slackGood} {
		for k, v := range h {
			if strings.Contains(strings.ToLower(k), "signature") {
				secrets = append(secrets, v)
			}
		}
	}
	auth := map[string]string{"Authorization": "Bearer Bearer-TOKEN-c0ffee", "X-Gitlab-Token": "Bearer-TOKEN-c0ffee"}
	requests := []struct {
		path string
		hdr  map[string]string
		want int
	}{
		{"/webhooks/v1/github", good, 200},
		{"/webhooks/v1/github", wrong, 401},
		{"/webhooks/v1/github?token=QUERY-TOKEN-beef", good, 200},
		{"/webhooks/v1/github", map[string]string{"X-Hub-Signature-256": "sha256=" + strings.Repeat("ab", 32)}, 401},
		{"/webhooks/v1/github", map[string]string{"X-Hub-Signature-256": "sha256=zz" + testSecret}, 401},
		{"/webhooks/v1/stripe", stale, 401},
		{"/webhooks/v1/stripe", good, 401},
		{"/webhooks/v1/slack", slackGood, 200},
		{"/webhooks/v1/slack", wrong, 401},
		{"/webhooks/v1/demo", auth, 200},
		{"/webhooks/v1/nosuch", auth, 404},
	}
	for _, r := range requests {
		if status, _, b := g.post(r.path, body, r.hdr); status != r.want {
			t.Fatalf("%s: status %d, want %d (%s)", r.path, status, r.want, b)
		}
	}
	var logs []byte
	waitfor.Until(t, 5*time.Second, "the access log", func() bool {
		a, _ := os.ReadFile(accessLog)
		return bytes.Count(a, []byte("\n")) >= len(requests)
	})
	for _, f := range []string{modLog, accessLog} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		logs = append(logs, b...)
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				line := b[bytes.LastIndexByte(b[:bytes.Index(b, []byte(s))], '\n')+1:]
				line = line[:bytes.IndexByte(line, '\n')+1]
				t.Fatalf("%s holds %q:\n%s", filepath.Base(f), s, line)
			}
		}
	}
	// The logs do record what happened, just not the secrets.
	for _, want := range []string{`"webhook rejected"`, `"problem":"invalid-signature"`, `"status":401`, `"User-Agent"`, `/webhooks/v1/github`} {
		if !bytes.Contains(logs, []byte(want)) {
			t.Errorf("the logs lack %s", want)
		}
	}
}

// accessLogFilter is the filter documented in the README: it deletes
// every header that carries a signature or a token from access logs.
var accessLogFilter = func() string {
	var b strings.Builder
	for _, h := range signatureHeaders {
		fmt.Fprintf(&b, "\t\t\trequest>headers>%s delete\n", h)
	}
	return b.String()
}()

// signatureHeaders are the request headers of the verify schemes that
// carry a signature or a shared token (canonical form, as Caddy logs them).
var signatureHeaders = []string{
	"X-Hub-Signature", "X-Hub-Signature-256", "Stripe-Signature", "X-Slack-Signature",
	"X-Shopify-Hmac-Sha256", "Webhook-Signature", "Svix-Signature", "X-Twilio-Signature",
	"Paddle-Signature", "X-Square-Hmacsha256-Signature", "X-Gitlab-Token", "X-Signature-Ed25519",
	"X-Hubspot-Signature", "X-Hubspot-Signature-V3", "X-Signature",
}

// TestDocumentedFilterCoversSchemes keeps the README's hardened site and
// the test's filter in step.
func TestDocumentedFilterCoversSchemes(t *testing.T) {
	doc, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range signatureHeaders {
		if !bytes.Contains(doc, []byte("request>headers>"+h+" delete")) {
			t.Errorf("the README's access log filter does not delete %s", h)
		}
	}
}

// raceEnabled reports whether the test binary was built with -race, which
// makes each request many times dearer: flood tests send fewer.
var raceEnabled = func() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}()

// trickle sends head on a new connection, then drip every interval, and
// returns the status line the server answers with ("closed" when it
// closes without one) and how long that took.
func trickle(addr, head, drip string, every time.Duration) (string, time.Duration) {
	start := time.Now()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return "dial: " + err.Error(), 0
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(15 * time.Second))
	_, _ = io.WriteString(conn, head)
	done := make(chan string, 1)
	go func() {
		line, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil {
			done <- "closed"
			return
		}
		done <- strings.TrimSpace(line)
	}()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case answer := <-done:
			return answer, time.Since(start)
		case <-tick.C:
			if _, err := io.WriteString(conn, drip); err != nil {
				return <-done, time.Since(start)
			}
		}
	}
}

// slowBody sends complete headers, then the body one byte every 100ms.
func (g *gateway) slowBody(path string) (string, time.Duration) {
	return trickle(g.addr, "POST "+path+" HTTP/1.1\r\nHost: "+g.addr+"\r\nX-Id: slow\r\nContent-Length: 100\r\n\r\n", "x", 100*time.Millisecond)
}

// Row: a slow body with no server timeouts at all → the handler's own
// body_timeout answers 408 (the handler's default, or the source's own).
func TestBodyTimeout(t *testing.T) {
	g := startEdge(t, edgeConfig{gatewayConfig: gatewayConfig{
		Ingest: "\t\tbody_timeout 1s",
		Sources: demoSources + `
		source quick {
			verify none
			body_timeout 300ms
		}`,
	}})
	for _, tc := range []struct {
		path     string
		at, most time.Duration
	}{
		{"/webhooks/v1/demo", time.Second, 5 * time.Second},
		{"/webhooks/v1/quick", 300 * time.Millisecond, 900 * time.Millisecond},
	} {
		answer, took := g.slowBody(tc.path)
		if !strings.Contains(answer, " 408 ") {
			t.Fatalf("%s: a slow body got %q after %s, want 408", tc.path, answer, took)
		}
		if took < tc.at || took > tc.most {
			t.Fatalf("%s: 408 after %s, want it at body_timeout %s", tc.path, took, tc.at)
		}
	}
	g.assertNothingStored()
	// A normal delivery is not held to the deadline of the request before.
	if status, _, b := g.post("/webhooks/v1/quick", []byte(`{}`), nil); status != http.StatusOK {
		t.Fatalf("a normal delivery: status %d %s", status, b)
	}
}

// headerRequest is a raw POST with n header fields (Content-Length among
// them) whose lines are padded to total bytes in all.
func headerRequest(n, total int) string {
	var b strings.Builder
	b.WriteString("POST /webhooks/v1/demo HTTP/1.1\r\nHost: x\r\n")
	line := func(s string) { b.WriteString(s + "\r\n") }
	used := len("Content-Length: 2\r\n") + len("X-Id: bound\r\n")
	line("Content-Length: 2")
	line("X-Id: bound")
	for i := 2; i < n; i++ {
		name := fmt.Sprintf("X-H%03d", i)
		pad := ""
		if i == n-1 {
			pad = strings.Repeat("a", max(0, total-used-len(name)-len(": \r\n")))
		}
		line(name + ": " + pad)
		used += len(name) + len(": \r\n") + len(pad)
	}
	b.WriteString("\r\n{}")
	return b.String()
}

// Row: too many or too large header fields → 431 before anything is
// stored; at the bounds → 2xx, and the event reaches an ordinary net/http
// server.
func TestHeaderBounds(t *testing.T) {
	sk := newSink(t, always(http.StatusOK))
	g := startEdge(t, edgeConfig{gatewayConfig: gatewayConfig{
		Destinations: destination("plain", sk.srv.URL, ""),
	}})
	for _, tc := range []struct {
		name         string
		fields, size int
	}{
		{"1000 headers", 1000, 0},
		{"101 headers", 101, 0},
		{"16 KiB + 1", 50, 16<<10 + 1},
	} {
		resp, b, err := g.raw(headerRequest(tc.fields, tc.size))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("%s: status %d, want 431 (%s)", tc.name, resp.StatusCode, b)
		}
		if p := problemOf(t, resp.Header, b); p["type"] != "urn:hookgate:problem:headers-too-large" {
			t.Fatalf("%s: problem %v", tc.name, p)
		}
	}
	g.assertNothingStored()

	resp, b, err := g.raw(headerRequest(100, 16<<10))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("at the bounds: %v %v %s", resp, err, b)
	}
	waitfor.Until(t, 10*time.Second, "the event at the plain net/http server", func() bool { return sk.calls.Load() >= 1 })
	_, hdrs := sk.received()
	if got := len(hdrs[0]); got < 98 {
		t.Fatalf("the destination got %d header fields, want the 98 provider ones and more", got)
	}
}

// Row: the path-prefix trap in a real Caddy. "handle /hooks/*" around a
// handler with the default prefix validates, then 404s every delivery; the
// log says which prefix to set, once.
func TestPrefixTrapInCaddy(t *testing.T) {
	dir := t.TempDir()
	modLog := filepath.Join(dir, "caddy.log")
	addr := freeAddr(t)
	cfg := fmt.Sprintf(`{
	admin off
	persist_config off
	auto_https off
	storage file_system %[1]s/caddy
	log {
		output file %[3]s
	}
	webhooks {
		store %[1]s/store
		listen off
	}
}

http://%[2]s {
	handle /hooks/* {
		webhook_ingest {
			source demo {
				verify none
			}
		}
	}
	respond 404
}
`, dir, addr, modLog)
	if err := loadCaddyfile(cfg); err != nil {
		t.Fatalf("load: %v", err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
	g := &gateway{t: t, store: filepath.Join(dir, "store"), addr: addr}
	for range 3 {
		if status, _, b := g.post("/hooks/v1/demo", []byte(`{}`), nil); status != http.StatusNotFound {
			t.Fatalf("status %d, want 404 (%s)", status, b)
		}
	}
	var logs string
	waitfor.Until(t, 5*time.Second, "the prefix warning in the log", func() bool {
		b, _ := os.ReadFile(modLog)
		logs = string(b)
		return strings.Contains(logs, "set 'prefix /hooks'")
	})
	if n := strings.Count(logs, "set 'prefix /hooks'"); n != 1 {
		t.Fatalf("the prefix warning %d times for 3 requests, want once:\n%s", n, logs)
	}
}
