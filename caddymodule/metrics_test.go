package caddymodule

import (
	"bufio"
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/caddyserver/caddy/v2/modules/metrics" // the admin API's /metrics
)

// scrape reads the admin endpoint's /metrics into a map from series (as
// printed: name{labels}) to value.
func scrape(t *testing.T, admin string) map[string]float64 {
	t.Helper()
	code, body := adminCall(t, admin, http.MethodGet, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", code, body)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// TestMetrics drives a gateway with a source and two destinations and
// reads Caddy's /metrics: requests by outcome, store latency, attempts and
// dead letters by destination, and the streams' and consumers' gauges;
// the counts carry across a reload.
func TestMetrics(t *testing.T) {
	ok := newSink(t, always(http.StatusNoContent))
	bad := newSink(t, always(http.StatusBadRequest))
	admin := freeAddr(t)
	cfg := gatewayConfig{
		Admin: admin,
		Sources: `
		source scraped {
			verify none
			id_header X-Id
		}`,
		Destinations: destination("scraped-ok", ok.srv.URL, "") + destination("scraped-bad", bad.srv.URL, ""),
	}
	g := startGateway(t, cfg)
	before := scrape(t, admin)

	for _, id := range []string{"1", "1", "2"} {
		if st, _, b := g.post("/webhooks/v1/scraped", []byte(`{}`), map[string]string{"X-Id": id}); st != http.StatusOK {
			t.Fatalf("post %s: %d %s", id, st, b)
		}
	}
	if st, _, _ := g.post("/webhooks/v1/nosuch", []byte(`{}`), nil); st != http.StatusNotFound {
		t.Fatalf("unknown source: %d", st)
	}
	waitFor(t, 5*time.Second, "deliveries", func() bool { return ok.calls.Load() == 2 && bad.calls.Load() == 2 })

	// Counters and histograms by how much they rose (the counters are
	// process-wide), gauges as they are.
	rose := map[string]float64{
		`caddy_webhooks_requests_total{outcome="accepted",source="scraped",version="v1"}`:      2,
		`caddy_webhooks_requests_total{outcome="duplicate",source="scraped",version="v1"}`:     1,
		`caddy_webhooks_requests_total{outcome="unknown-endpoint",source="",version=""}`:       1,
		`caddy_webhooks_store_duration_seconds_count{source="scraped"}`:                        3,
		`caddy_webhooks_delivery_attempts_total{destination="scraped-ok",outcome="delivered"}`: 2,
		`caddy_webhooks_delivery_attempts_total{destination="scraped-ok",outcome="error"}`:     0,
		`caddy_webhooks_delivery_attempts_total{destination="scraped-bad",outcome="rejected"}`: 2,
		`caddy_webhooks_delivery_attempt_duration_seconds_count{destination="scraped-bad"}`:    2,
		`caddy_webhooks_dead_letters_total{destination="scraped-bad",reason="rejected"}`:       2,
		`caddy_webhooks_dead_letters_total{destination="scraped-ok",reason="max_attempts"}`:    0,
	}
	is := map[string]float64{
		`caddy_webhooks_stream_messages{stream="WEBHOOKS"}`:                 2,
		`caddy_webhooks_stream_messages{stream="WEBHOOKS_DLQ"}`:             2,
		`caddy_webhooks_destination_pending{destination="scraped-ok"}`:      0,
		`caddy_webhooks_destination_ack_pending{destination="scraped-bad"}`: 0,
		`caddy_webhooks_destination_paused{destination="scraped-ok"}`:       0,
	}
	dead := `caddy_webhooks_dead_letters_total{destination="scraped-bad",reason="rejected"}`
	var m map[string]float64
	waitFor(t, 5*time.Second, "the dead letters' count", func() bool {
		m = scrape(t, admin)
		return m[dead]-before[dead] == 2
	})
	for series, v := range rose {
		got, found := m[series]
		if !found || got-before[series] != v {
			t.Errorf("%s rose by %v (present %v), want %v", series, got-before[series], found, v)
		}
	}
	for series, v := range is {
		if got, found := m[series]; !found || got != v {
			t.Errorf("%s = %v (present %v), want %v", series, got, found, v)
		}
	}
	if m[`caddy_webhooks_stream_max_bytes{stream="WEBHOOKS"}`] <= 0 {
		t.Error("no stream_max_bytes for WEBHOOKS")
	}
	for series := range m {
		if strings.Contains(series, "nosuch") {
			t.Errorf("an unknown path became a label: %s", series)
		}
	}

	// After a reload Caddy serves a new registry: the counts go on.
	cfg = g.cfg
	cfg.Global = "\t\tdedup_window 1h"
	g.load(cfg)
	testClient.CloseIdleConnections() // the old server closed them
	if st, _, b := g.post("/webhooks/v1/scraped", []byte(`{}`), map[string]string{"X-Id": "3"}); st != http.StatusOK {
		t.Fatalf("post after reload: %d %s", st, b)
	}
	m = scrape(t, admin)
	accepted := `caddy_webhooks_requests_total{outcome="accepted",source="scraped",version="v1"}`
	if got := m[accepted] - before[accepted]; got != 3 {
		t.Errorf("accepted rose by %v after a reload, want 3", got)
	}
	if got := m[`caddy_webhooks_stream_messages{stream="WEBHOOKS"}`]; got != 3 {
		t.Errorf("stream messages after a reload = %v, want 3", got)
	}
}
