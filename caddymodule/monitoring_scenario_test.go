package caddymodule

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/hookgate/hookgate/event"
	"github.com/hookgate/hookgate/forwarder"
)

// Names of the monitoring scenario: unique to it, since the metrics are
// process-wide and other tests count their own sources and destinations.
const (
	monSigned  = "monsig"    // github signatures
	monLimited = "monlim"    // verify none, rate 1/h
	monFlaky   = "mon-flaky" // fails once, then 2xx; a secret header
	monDead    = "mon-dead"  // fails twice (dead letter), then 2xx (redrive)
	// monHeaderSecret is the value of mon-flaky's header: never logged.
	monHeaderSecret = "mon-dest-secret-5b1e0c"
	// monBody marks the stored body: never logged.
	monBody = `{"marker":"body-DO-NOT-LOG-91c2"}`
)

// monitoringScenario is the gateway of TestMonitoringScenario, logging at
// debug level to a file.
type monitoringScenario struct {
	*gateway
	admin   string
	logFile string
	flaky   *sink
	dead    *sink
}

func startMonitoringScenario(t *testing.T) *monitoringScenario {
	dir := t.TempDir()
	s := &monitoringScenario{admin: freeAddr(t), logFile: filepath.Join(dir, "caddy.log")}
	s.flaky = newSink(t, func(n int64) int {
		if n == 1 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	s.dead = newSink(t, func(n int64) int {
		if n <= 2 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	cfg := gatewayConfig{
		Store: dir, Addr: freeAddr(t), Admin: s.admin,
		Sources: fmt.Sprintf(`
		source %s {
			verify github %s
		}
		source %s {
			verify none
			id_header X-Id
			rate 1/h
		}`, monSigned, testSecret, monLimited),
		Destinations: fmt.Sprintf(`
		destination %s {
			url %s
			subjects webhooks.v1.%s.>
			timeout 2s
			backoff 20ms 100ms
			header X-Api-Key %s
		}
		destination %s {
			url %s
			subjects webhooks.v1.%s.>
			timeout 2s
			backoff 20ms 100ms
			max_attempts 2
		}`, monFlaky, s.flaky.srv.URL, monSigned, monHeaderSecret, monDead, s.dead.srv.URL, monLimited),
	}
	s.gateway = &gateway{t: t, store: filepath.Join(dir, "store"), addr: cfg.Addr, cfg: cfg}
	s.load(cfg)
	t.Cleanup(func() { _ = caddy.Stop() })
	return s
}

// load (re)loads cfg with Caddy's log at debug level into the log file.
func (s *monitoringScenario) load(cfg gatewayConfig) {
	s.t.Helper()
	s.cfg = cfg
	text := strings.Replace(cfg.caddyfile(), "\tpersist_config off\n",
		"\tpersist_config off\n\tlog {\n\t\toutput file "+s.logFile+"\n\t\tlevel DEBUG\n\t}\n", 1)
	if err := loadCaddyfile(text); err != nil {
		s.t.Fatalf("load config: %v", err)
	}
}

// TestMonitoringScenario is the evidence of issue 14 on a real gateway
// from a Caddyfile: an event stored, a duplicate, bad signatures of two
// kinds (missing, mismatching), a request over its source's rate, a
// delivery failing then succeeding, a dead letter, a replay and a redrive.
// Then the admin endpoint's /metrics holds exactly the expected series of
// the scenario's sources and destinations (names and label sets, values),
// the same after a reload; and no line of the debug log holds the
// source's secret, a signature, the destination header's value or the
// body, while the stored event (debug), the failed attempt (warn) and the
// dead letter (error) each have their line with their fields.
func TestMonitoringScenario(t *testing.T) {
	s := startMonitoringScenario(t)
	path := "/webhooks/v1/" + monSigned
	good := sign(t, "github", testSecret, []byte(monBody), time.Now(), map[string]string{"X-GitHub-Delivery": "mon-1", "X-GitHub-Event": "push"})
	wrong := sign(t, "github", "not-the-secret", []byte(monBody), time.Now(), map[string]string{"X-GitHub-Delivery": "mon-2", "X-GitHub-Event": "push"})
	missing := map[string]string{"X-GitHub-Delivery": "mon-3", "X-GitHub-Event": "push"}
	for _, c := range []struct {
		path string
		hdr  map[string]string
		want int
	}{
		{path, good, http.StatusOK},
		{path, good, http.StatusOK}, // duplicate
		{path, wrong, http.StatusUnauthorized},
		{path, missing, http.StatusUnauthorized},
		{"/webhooks/v1/" + monLimited, map[string]string{"X-Id": "l1"}, http.StatusOK},
		{"/webhooks/v1/" + monLimited, map[string]string{"X-Id": "l2"}, http.StatusTooManyRequests},
	} {
		if st, _, b := s.post(c.path, []byte(monBody), c.hdr); st != c.want {
			t.Fatalf("POST %s: %d %s, want %d", c.path, st, b, c.want)
		}
	}
	waitFor(t, 10*time.Second, "the retried delivery and the dead letter", func() bool {
		return s.flaky.calls.Load() == 2 && len(s.stored(event.DLQStreamName)) == 1
	})
	adminJSON(t, s.admin, http.MethodPost, "/webhooks/events/"+monSigned+":mon-1/replay", `{"destination":"`+monFlaky+`"}`, http.StatusAccepted, nil)
	adminJSON(t, s.admin, http.MethodPost, "/webhooks/dlq/redrive", `{"destination":"`+monDead+`"}`, http.StatusAccepted, nil)
	waitFor(t, 10*time.Second, "the replay and the redrive", func() bool {
		return s.flaky.calls.Load() == 3 && s.dead.calls.Load() == 3
	})

	want := monitoringWant()
	// The last attempts' counts land just after the sink answers.
	got := scenarioSeries(scrape(t, s.admin))
	for deadline := time.Now().Add(10 * time.Second); !equalSeries(got, want) && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		got = scenarioSeries(scrape(t, s.admin))
	}
	reportSeries(t, "before the reload", got, want)

	cfg := s.cfg
	cfg.Global = "\t\tdedup_window 1h"
	s.load(cfg)
	testClient.CloseIdleConnections() // the old server closed them
	reportSeries(t, "after a reload", scenarioSeries(scrape(t, s.admin)), want)
	good = sign(t, "github", testSecret, []byte(monBody), time.Now(), map[string]string{"X-GitHub-Delivery": "mon-4", "X-GitHub-Event": "push"})
	if st, _, b := s.post(path, []byte(monBody), good); st != http.StatusOK {
		t.Fatalf("POST after the reload: %d %s", st, b)
	}
	accepted := `caddy_webhooks_requests_total{outcome="accepted",source="monsig",version="v1"}`
	if v := scrape(t, s.admin)[accepted]; v != 2 {
		t.Errorf("%s = %v after the reload and one more event, want 2", accepted, v)
	}

	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	secrets := []string{testSecret, monHeaderSecret, "body-DO-NOT-LOG", good["X-Hub-Signature-256"], wrong["X-Hub-Signature-256"]}
	for _, h := range []map[string]string{good, wrong} {
		secrets = append(secrets, strings.TrimPrefix(h["X-Hub-Signature-256"], "sha256="))
	}
	checkScenarioLog(t, s.logFile, secrets)
}

// monitoringWant is every series of the scenario's names, as printed on
// /metrics, with its value once the scenario has settled. Histograms show
// by their _count.
func monitoringWant() map[string]float64 {
	want := map[string]float64{
		`caddy_webhooks_requests_total{outcome="accepted",source="monsig",version="v1"}`:             1,
		`caddy_webhooks_requests_total{outcome="duplicate",source="monsig",version="v1"}`:            1,
		`caddy_webhooks_requests_total{outcome="invalid-signature",source="monsig",version="v1"}`:    2,
		`caddy_webhooks_requests_total{outcome="accepted",source="monlim",version="v1"}`:             1,
		`caddy_webhooks_requests_total{outcome="rate-limited",source="monlim",version="v1"}`:         1,
		`caddy_webhooks_request_duration_seconds_count{outcome="accepted",source="monsig"}`:          1,
		`caddy_webhooks_request_duration_seconds_count{outcome="duplicate",source="monsig"}`:         1,
		`caddy_webhooks_request_duration_seconds_count{outcome="invalid-signature",source="monsig"}`: 2,
		`caddy_webhooks_request_duration_seconds_count{outcome="accepted",source="monlim"}`:          1,
		`caddy_webhooks_request_duration_seconds_count{outcome="rate-limited",source="monlim"}`:      1,
		`caddy_webhooks_verify_failures_total{reason="mismatch",source="monsig"}`:                    1,
		`caddy_webhooks_verify_failures_total{reason="missing_header",source="monsig"}`:              1,
		`caddy_webhooks_store_duration_seconds_count{source="monsig"}`:                               2,
		`caddy_webhooks_store_duration_seconds_count{source="monlim"}`:                               1,
		`caddy_webhooks_store_up`:                               1,
		`caddy_webhooks_stream_messages{stream="WEBHOOKS"}`:     2,
		`caddy_webhooks_stream_messages{stream="WEBHOOKS_DLQ"}`: 0,
	}
	perDest := map[string]map[string]float64{
		monFlaky: {"attempt:error": 1, "attempt:delivered": 2, "latency": 1, "replays": 1},
		monDead:  {"attempt:error": 2, "attempt:delivered": 1, "dead:" + "max_attempts": 1, "redrives": 1},
	}
	for d, v := range perDest {
		l := fmt.Sprintf(`{destination=%q}`, d)
		for _, out := range forwarder.AttemptOutcomes {
			want[fmt.Sprintf(`caddy_webhooks_delivery_attempts_total{destination=%q,outcome=%q}`, d, out)] = v["attempt:"+out]
		}
		for _, r := range forwarder.DeadLetterReasons {
			want[fmt.Sprintf(`caddy_webhooks_dead_letters_total{destination=%q,reason=%q}`, d, r)] = v["dead:"+r]
		}
		want["caddy_webhooks_delivery_attempt_duration_seconds_count"+l] = v["attempt:error"] + v["attempt:delivered"]
		want["caddy_webhooks_delivery_latency_seconds_count"+l] = v["latency"]
		want["caddy_webhooks_replays_total"+l] = v["replays"]
		want["caddy_webhooks_redrives_total"+l] = v["redrives"]
		want["caddy_webhooks_filtered_total"+l] = 0
		for _, g := range []string{"pending", "ack_pending", "paused", "oldest_pending_age_seconds", "breaker_open"} {
			want["caddy_webhooks_destination_"+g+l] = 0
		}
	}
	return want
}

// scenarioSeries keeps the series of the scenario's names (histograms by
// their _count), the store's state and the streams' message counts.
func scenarioSeries(all map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for series, v := range all {
		name, _, _ := strings.Cut(series, "{")
		if !strings.HasPrefix(name, "caddy_webhooks_") || strings.HasSuffix(name, "_bucket") || strings.HasSuffix(name, "_sum") {
			continue
		}
		mine := false
		for _, n := range []string{monSigned, monLimited, monFlaky, monDead} {
			mine = mine || strings.Contains(series, `"`+n+`"`)
		}
		if mine || name == "caddy_webhooks_store_up" || name == "caddy_webhooks_stream_messages" {
			out[series] = v
		}
	}
	return out
}

func equalSeries(got, want map[string]float64) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			return false
		}
	}
	return true
}

// reportSeries fails the test for every series missing, unexpected or off.
func reportSeries(t *testing.T, when string, got, want map[string]float64) {
	t.Helper()
	var keys []string
	for k := range got {
		keys = append(keys, k)
	}
	for k := range want {
		if _, ok := got[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		g, inGot := got[k]
		w, inWant := want[k]
		switch {
		case !inWant:
			t.Errorf("%s: unexpected series %s = %v", when, k, g)
		case !inGot:
			t.Errorf("%s: no series %s (want %v)", when, k, w)
		case g != w:
			t.Errorf("%s: %s = %v, want %v", when, k, g, w)
		}
	}
}

// checkScenarioLog reads the JSON log: no line holds any of secrets, and
// the stored event, the failed attempt and the dead letter each have a
// line at their level with their fields.
func checkScenarioLog(t *testing.T, file string, secrets []string) {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(nil, 1<<20)
	n := 0
	for sc.Scan() {
		n++
		text := sc.Text()
		for _, s := range secrets {
			if s != "" && strings.Contains(text, s) {
				t.Errorf("a log line holds a secret, a signature or the body (%.12s…): %s", s, text)
			}
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(text), &m); err != nil {
			t.Fatalf("log line %d is not JSON: %v", n, err)
		}
		str := func(k string) string { s, _ := m[k].(string); return s }
		_, hasAttempt := m["attempt"]
		_, hasStatus := m["status"]
		_, hasLatency := m["latency"]
		switch {
		case str("msg") == "webhook stored" && str("level") == "debug" && str("event_id") == "monsig:mon-1" &&
			str("source") == monSigned && str("type") == "push" && hasLatency:
			seen["stored"] = true
		case str("msg") == "delivery failed; will retry" && str("level") == "warn" && str("destination") == monFlaky &&
			str("event_id") == "monsig:mon-1" && str("source") == monSigned && str("type") == "push" && hasAttempt && hasStatus && hasLatency:
			seen["failed"] = true
		case str("msg") == "event dead-lettered" && str("level") == "error" && str("destination") == monDead &&
			str("event_id") == "monlim:l1" && str("source") == monLimited && hasAttempt && hasStatus && hasLatency:
			seen["dead letter"] = true
		}
	}
	for _, k := range []string{"stored", "failed", "dead letter"} {
		if !seen[k] {
			t.Errorf("no %s line with its fields among the %d log lines", k, n)
		}
	}
}
