package caddymodule

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// TestStreamFullReadyAndLog: once the WEBHOOKS stream is at max_store,
// webhook_ready answers 503 store-full with Retry-After (a load balancer
// stops sending), and the refusals are logged once, at error, with what to
// do and the limit, not once per request with the bare NATS error.
func TestStreamFullReadyAndLog(t *testing.T) {
	// The engine keeps the logger of the config that started it: the log
	// file is in the first config.
	gc := gatewayConfig{Store: t.TempDir(), Addr: freeAddr(t), Sources: demoSources, Global: "\t\tmax_store 8KiB"}
	g := &gateway{t: t, store: filepath.Join(gc.Store, "store"), addr: gc.Addr, cfg: gc}
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	cfg := strings.Replace(withReady(gc), "\tadmin off\n", "\tadmin off\n\tlog {\n\t\toutput file "+logFile+"\n\t}\n", 1)
	if err := loadCaddyfile(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
	if status, _, b := g.readiness(http.MethodGet); status != http.StatusOK {
		t.Fatalf("an empty store is not ready: %d %s", status, b)
	}
	body := bytes.Repeat([]byte("z"), 1024)
	refused := 0
	for i := range 30 {
		if status, _, _ := g.post("/webhooks/v1/demo", body, map[string]string{"X-Id": fmt.Sprint("full-", i)}); status == http.StatusServiceUnavailable {
			refused++
		}
	}
	if refused < 5 {
		t.Fatalf("%d of 30 posts of 1 KiB into an 8 KiB stream refused, want at least 5", refused)
	}
	status, hdr, b := g.readiness(http.MethodGet)
	assertNotReady(t, status, hdr, b, "store-full")

	logs, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(logs, []byte("is at max_store: raise max_store")); n != 1 {
		t.Errorf("the full stream was logged %d times for %d refusals, want once:\n%s", n, refused, logs)
	}
	if !bytes.Contains(logs, []byte(`"max_store":8192`)) {
		t.Errorf("the log does not name the limit:\n%s", logs)
	}
	if n := bytes.Count(logs, []byte(`"webhook rejected"`)); n != 0 {
		t.Errorf("%d refusals logged one by one:\n%s", n, logs)
	}

	// The README's way out: raise max_store and reload.
	if err := loadCaddyfile(strings.Replace(cfg, "max_store 8KiB", "max_store 64KiB", 1)); err != nil {
		t.Fatal(err)
	}
	testClient.CloseIdleConnections() // the reload closed them
	if status, _, b := g.post("/webhooks/v1/demo", body, map[string]string{"X-Id": "after-raise"}); status != http.StatusOK {
		t.Fatalf("after raising max_store: %d %s", status, b)
	}
}
