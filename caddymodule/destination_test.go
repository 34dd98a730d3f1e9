package caddymodule

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/hookgate/hookgate/forwarder"
	"github.com/hookgate/hookgate/internal/testcert"
)

func TestParseDestinationEveryFeature(t *testing.T) {
	d := caddyfile.NewTestDispenser(`destination orders {
		url http://127.0.0.1:9000/hooks
		subjects webhooks.v1.stripe.> webhooks.v1.shopify.orders.>
		timeout 5s
		max_attempts 8
		max_age 3d
		backoff 2s 10m
		schedule 5s 5m 30m 2h
		retry_after_cap 1h
		on_4xx retry
		rate 600/m burst 20
		concurrency 16
		ordered_by $.data.object.customer
		sign standard-webhooks {env.HOOKGATE_TEST_SIGN}
		breaker 5 ratio 50% window 2m min 20 cooldown 1m
	}`)
	d.Next()
	dc, err := parseDestination(d)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOOKGATE_TEST_SIGN", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	fc, err := dc.forwarderConfig(caddy.NewReplacer())
	if err != nil {
		t.Fatal(err)
	}
	want := forwarder.Config{
		Name:          "orders",
		URL:           "http://127.0.0.1:9000/hooks",
		Subjects:      []string{"webhooks.v1.stripe.>", "webhooks.v1.shopify.orders.>"},
		Timeout:       5 * time.Second,
		MaxAttempts:   8,
		MaxAge:        72 * time.Hour,
		BackoffBase:   2 * time.Second,
		BackoffCap:    10 * time.Minute,
		Schedule:      []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour},
		RetryAfterCap: time.Hour,
		On4xx:         forwarder.Retry,
		Rate:          10,
		Burst:         20,
		Concurrency:   16,
		OrderedBy:     "$.data.object.customer",
		SignSecret:    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		Breaker:       forwarder.BreakerConfig{Failures: 5, Ratio: 0.5, Window: 2 * time.Minute, MinRequests: 20, Cooldown: time.Minute},
	}
	if !reflect.DeepEqual(fc, want) {
		t.Errorf("config\n got %+v\nwant %+v", fc, want)
	}
	if err := fc.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	// The secret stays a placeholder in the JSON config.
	if dc.Sign.Secret != "{env.HOOKGATE_TEST_SIGN}" {
		t.Errorf("stored secret %q", dc.Sign.Secret)
	}
}

func TestParseDestinationMinimalAndBreakerForms(t *testing.T) {
	for src, want := range map[string]forwarder.BreakerConfig{
		"destination a {\n url http://127.0.0.1/\n}": {},
		`destination a { url http://127.0.0.1/ 
			breaker off
		}`: {Disabled: true},
		`destination a { url http://127.0.0.1/ 
			breaker ratio 0.7 min 10
		}`: {Failures: -1, Ratio: 0.7, MinRequests: 10},
		`destination a { url http://127.0.0.1/ 
			breaker 3 cooldown 10s
		}`: {Failures: 3, Cooldown: 10 * time.Second},
	} {
		d := caddyfile.NewTestDispenser(src)
		d.Next()
		dc, err := parseDestination(d)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		fc, err := dc.forwarderConfig(caddy.NewReplacer())
		if err != nil {
			t.Fatal(err)
		}
		if fc.Breaker != want {
			t.Errorf("%s: breaker %+v, want %+v", src, fc.Breaker, want)
		}
	}
}

func TestParseDestinationErrors(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{"", "has no url line"},
		{"url", "url: missing value"},
		{"url a b", "one value expected"},
		{"bogus 1", `unrecognized subdirective "bogus"`},
		{"subjects", "subjects: missing value"},
		{"timeout soon", `timeout "soon"`},
		{"timeout -1s", `timeout "-1s"`},
		{"max_attempts 0", `max_attempts "0"`},
		{"max_attempts x", `max_attempts "x"`},
		{"concurrency -2", `concurrency "-2"`},
		{"backoff 1s", "backoff: want '<base> <cap>'"},
		{"backoff 1s never", `backoff cap "never"`},
		{"schedule", "schedule: want one or more durations"},
		{"schedule 5s x", `schedule "x"`},
		{"on_4xx drop", `on_4xx "drop"`},
		{"rate 50", "want <events>/<window>"},
		{"rate 50/s burst", "rate: want"},
		{"rate 50/s burst 0", `burst "0"`},
		{"rate 0/s", "above 0"},
		{"sign hmac abc", "sign standard-webhooks <secret>"},
		{"sign standard-webhooks", "sign standard-webhooks <secret>"},
		{"breaker", "breaker: want 'off'"},
		{"breaker 0", "failures 0"},
		{"breaker ratio", `"ratio" needs a value`},
		{"breaker ratio 1.5", `ratio "1.5"`},
		{"breaker 3 speed 2", `unknown setting "speed"`},
		{"breaker window x", `breaker window "x"`},
	} {
		src := "destination orders {\n"
		if !strings.HasPrefix(tc.body, "url") && tc.body != "" {
			src += "url http://127.0.0.1/\n"
		}
		src += tc.body + "\n}"
		d := caddyfile.NewTestDispenser(src)
		d.Next()
		_, err := parseDestination(d)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one containing %q", tc.body, err, tc.want)
		}
	}
	for src, want := range map[string]string{
		"destination":               "missing name",
		"destination a b { url x }": `unexpected "b" after the name`,
	} {
		d := caddyfile.NewTestDispenser(src)
		d.Next()
		if _, err := parseDestination(d); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", src, err, want)
		}
	}
}

func TestForwarderConfigPlaceholders(t *testing.T) {
	dc := &DestinationConfig{Name: "a", URL: "{env.HOOKGATE_TEST_URL}/hooks", Sign: &SignConfig{Scheme: "standard-webhooks", Secret: "{env.HOOKGATE_TEST_MISSING_SECRET}"}}
	t.Setenv("HOOKGATE_TEST_URL", "http://127.0.0.1:9")
	os.Unsetenv("HOOKGATE_TEST_MISSING_SECRET")
	_, err := dc.forwarderConfig(caddy.NewReplacer())
	if err == nil || !strings.Contains(err.Error(), "sign: secret placeholder") {
		t.Fatalf("unset secret: %v", err)
	}
	dc.Sign = nil
	fc, err := dc.forwarderConfig(caddy.NewReplacer())
	if err != nil || fc.URL != "http://127.0.0.1:9/hooks" {
		t.Errorf("url %q, %v", fc.URL, err)
	}
}

func TestDestinationTLS(t *testing.T) {
	certs := testcert.New(t)
	dir := writeTLSFiles(t, certs)
	ca, key := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "client-key.pem")
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOOKGATE_TEST_TLS_DIR", dir) // client.pem is named through it below

	d := caddyfile.NewTestDispenser(`destination ledger {
		url https://ledger.internal/hooks
		tls_ca ` + ca + `
		tls_client_auth {env.HOOKGATE_TEST_TLS_DIR}/client.pem ` + key + `
		tls_server_name ledger.svc.cluster.local
	}`)
	d.Next()
	dc, err := parseDestination(d)
	if err != nil {
		t.Fatal(err)
	}
	want := DestinationTLS{CA: []string{ca}, ClientCert: "{env.HOOKGATE_TEST_TLS_DIR}/client.pem", ClientKey: key, ServerName: "ledger.svc.cluster.local"}
	if !reflect.DeepEqual(*dc.TLS, want) {
		t.Fatalf("tls %+v, want %+v", *dc.TLS, want)
	}
	fc, err := dc.forwarderConfig(caddy.NewReplacer())
	if err != nil {
		t.Fatal(err)
	}
	if fc.TLS == nil || fc.TLS.ServerName != "ledger.svc.cluster.local" || len(fc.TLS.Certificates) != 1 || !fc.TLS.RootCAs.Equal(certs.CAPool) {
		t.Errorf("tls config %+v", fc.TLS)
	}
	if err := fc.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}

	for _, tc := range []struct {
		name string
		tls  DestinationTLS
		want string
	}{
		{"missing CA file", DestinationTLS{CA: []string{filepath.Join(dir, "nope.pem")}}, "tls_ca: open"},
		{"CA file holds a key", DestinationTLS{CA: []string{key}}, "no PEM certificate"},
		{"CA without a certificate", DestinationTLS{CA: []string{junk}}, "no PEM certificate"},
		{"key of another cert", DestinationTLS{ClientCert: ca, ClientKey: key}, "not a matching PEM certificate and key"},
		{"unset placeholder", DestinationTLS{ClientCert: "{env.HOOKGATE_TEST_TLS_UNSET}/c.pem", ClientKey: key}, "tls_client_auth certificate"},
	} {
		dc := &DestinationConfig{Name: "a", URL: "https://127.0.0.1/", TLS: &tc.tls}
		if _, err := dc.forwarderConfig(caddy.NewReplacer()); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
	for body, want := range map[string]string{
		"tls_ca":               "tls_ca: want one or more PEM files",
		"tls_client_auth cert": "tls_client_auth: want '<cert file> <key file>'",
		"tls_server_name":      "tls_server_name: missing value",
		"tls_server_name a b":  "one value expected",
	} {
		d := caddyfile.NewTestDispenser("destination a {\nurl https://127.0.0.1/\n" + body + "\n}")
		d.Next()
		if _, err := parseDestination(d); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", body, err, want)
		}
	}
}

// TestDestinationTLSEndToEnd: a Caddyfile destination with tls_ca and
// tls_client_auth delivers to an https service that trusts only its
// private CA and requires a client certificate from it.
func TestDestinationTLSEndToEnd(t *testing.T) {
	certs := testcert.New(t)
	dir := writeTLSFiles(t, certs)
	peers := make(chan string, 4)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peers <- r.TLS.PeerCertificates[0].Subject.CommonName
		w.WriteHeader(http.StatusOK)
	}))
	srv.TLS = certs.ServerConfig(true)
	srv.StartTLS()
	t.Cleanup(srv.Close)

	g := startGateway(t, gatewayConfig{Destinations: destination("ledger", srv.URL+"/hooks",
		"\t\t\ttls_ca "+dir+"/ca.pem\n\t\t\ttls_client_auth "+dir+"/client.pem "+dir+"/client-key.pem")})
	if st, _, b := g.post("/webhooks/v1/demo", []byte(`{}`), map[string]string{"X-Id": "1"}); st != http.StatusOK {
		t.Fatalf("post: %d %s", st, b)
	}
	select {
	case cn := <-peers:
		if cn != testcert.ClientName {
			t.Errorf("client certificate %q", cn)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("nothing delivered over mutual TLS")
	}
}

// TestDestinationHeadersEndToEnd: a header line with a {file.*} secret
// reaches the internal service on every delivery; the admin API shows it
// as REDACTED; no log line (Caddy's log at debug level) holds the value;
// and a header the forwarder sets itself is refused at load.
func TestDestinationHeadersEndToEnd(t *testing.T) {
	dir := t.TempDir()
	const token = "orders-token-7f3a9c1e"
	tokenFile := filepath.Join(dir, "orders-token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(dir, "caddy.log")
	sk := newSink(t, always(http.StatusOK))
	admin := freeAddr(t)
	cfg := gatewayConfig{
		Store: dir, Addr: freeAddr(t), Sources: demoSources, Admin: admin,
		Destinations: destination("orders", sk.srv.URL, `			header Authorization "Bearer {file.`+tokenFile+`}"
			header X-Team orders
			header X-Team billing`),
	}
	text := strings.Replace(cfg.caddyfile(), "\tpersist_config off\n",
		"\tpersist_config off\n\tlog {\n\t\toutput file "+logFile+"\n\t\tlevel DEBUG\n\t}\n", 1)
	if err := loadCaddyfile(text); err != nil {
		t.Fatalf("load: %v", err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
	g := &gateway{t: t, addr: cfg.Addr, cfg: cfg}
	g.postAll(t, "h1", "h2")
	waitFor(t, 5*time.Second, "two deliveries", func() bool { return sk.calls.Load() == 2 })
	_, hdrs := sk.received()
	for i, h := range hdrs {
		// {file.*} keeps the file's trailing newline out, as Caddy does.
		if got := h.Get("Authorization"); got != "Bearer "+token {
			t.Errorf("delivery %d: Authorization %q", i, got)
		}
		if got := h.Values("X-Team"); !reflect.DeepEqual(got, []string{"orders", "billing"}) {
			t.Errorf("delivery %d: X-Team %q", i, got)
		}
		if h.Get("Webhook-Id") == "" || h.Get("Idempotency-Key") != h.Get("Webhook-Id") {
			t.Errorf("delivery %d: the forwarder's own headers are gone: %v", i, h)
		}
	}
	code, b := adminCall(t, admin, http.MethodGet, "/webhooks/destinations/orders")
	if code != http.StatusOK || strings.Contains(string(b), token) ||
		!strings.Contains(string(b), `"headers":{"Authorization":"REDACTED","X-Team":"REDACTED"}`) {
		t.Errorf("admin status: %d %s", code, b)
	}
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	logs, err := os.ReadFile(logFile)
	if err != nil || !strings.Contains(string(logs), "forwarder started") {
		t.Fatalf("the log (%v) does not show the forwarder running:\n%s", err, logs)
	}
	if i := strings.Index(string(logs), token); i >= 0 {
		t.Errorf("a log line holds the header's value: %s", logs[strings.LastIndexByte(string(logs[:i]), '\n')+1:])
	}

	for name, want := range map[string]string{
		"Webhook-Id":        "cannot be overridden",
		"idempotency-key":   "cannot be overridden",
		"Webhook-Signature": "cannot be overridden",
		"Content-Length":    "hop-by-hop or framing",
	} {
		bad := gatewayConfig{Store: t.TempDir(), Addr: freeAddr(t), Sources: demoSources,
			Destinations: destination("orders", sk.srv.URL, "\t\t\theader "+name+" x")}
		err := loadCaddyfile(bad.caddyfile())
		if err == nil {
			_ = caddy.Stop()
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("header %s: load error %v, want %q", name, err, want)
		}
	}
}
