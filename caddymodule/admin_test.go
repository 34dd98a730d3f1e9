package caddymodule

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hookgate/hookgate/forwarder"
	"github.com/hookgate/hookgate/internal/clitest"
)

// runCaddy runs the CLI (see TestMain) with args and returns its exit
// code, stdout and stderr.
func runCaddy(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return clitest.Run(t, "", args...)
}

// adminCall makes one admin API request and returns the status and body.
func adminCall(t *testing.T, addr, method, path string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func decodeStatus(t *testing.T, b []byte) forwarder.DestinationStatus {
	t.Helper()
	var st forwarder.DestinationStatus
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("status %q: %v", b, err)
	}
	return st
}

// TestAdminResumesGoneDestination: a destination answering 410 is paused;
// the admin API shows it paused, and a resume through the CLI delivers the
// event once the destination is back.
func TestAdminResumesGoneDestination(t *testing.T) {
	sk := newSink(t, func(n int64) int {
		if n == 1 {
			return http.StatusGone
		}
		return http.StatusOK
	})
	admin := freeAddr(t)
	g := startGateway(t, gatewayConfig{
		Admin: admin,
		Destinations: destination("orders", strings.Replace(sk.srv.URL, "http://", "http://user:hunter2@", 1), "") +
			"\n\t\tdestination audit {\n\t\t\turl " + sk.srv.URL + "/audit\n\t\t\tsubjects webhooks.v9.>\n\t\t}",
	})
	if st, _, b := g.post("/webhooks/v1/demo", []byte(`{}`), map[string]string{"X-Id": "1"}); st != http.StatusOK {
		t.Fatalf("post: %d %s", st, b)
	}
	waitFor(t, 5*time.Second, "the 410", func() bool { return sk.calls.Load() == 1 })

	var paused forwarder.DestinationStatus
	waitFor(t, 5*time.Second, "the pause", func() bool {
		code, b := adminCall(t, admin, http.MethodGet, "/webhooks/destinations/orders")
		if code != http.StatusOK {
			t.Fatalf("GET orders: %d %s", code, b)
		}
		paused = decodeStatus(t, b)
		if paused.Paused && !strings.Contains(string(b), `"paused_until":null`) {
			t.Errorf("a 410's pause has no end: want \"paused_until\": null in %s", b)
		}
		return paused.Paused
	})
	// A 410 is a pause until resumed, not an open circuit until 2126.
	if paused.Circuit != "closed" || paused.OpenUntil != nil || paused.PausedUntil != nil ||
		!strings.Contains(paused.PausedReason, "410 Gone at ") || !strings.Contains(paused.PausedReason, "caddy webhooks resume orders") ||
		paused.Consumer != "fwd-orders" || paused.AckPending+int(paused.Pending) != 1 {
		t.Errorf("paused destination: %+v", paused)
	}
	if strings.Contains(paused.URL, "hunter2") || !strings.Contains(paused.URL, "user:xxxxx@") {
		t.Errorf("url %q: the password must be redacted", paused.URL)
	}

	code, b := adminCall(t, admin, http.MethodGet, "/webhooks/destinations")
	var all []forwarder.DestinationStatus
	if err := json.Unmarshal(b, &all); code != http.StatusOK || err != nil || len(all) != 2 || all[0].Name != "orders" || all[1].Name != "audit" {
		t.Fatalf("GET destinations: %d %s (%v)", code, b, err)
	}
	if all[1].Circuit != "closed" || all[1].Paused || all[1].PausedUntil != nil || all[1].PausedReason != "" {
		t.Errorf("audit is not affected by orders' 410: %+v", all[1])
	}
	// Resuming what is not paused changes nothing, and says so.
	if code, b := adminCall(t, admin, http.MethodPost, "/webhooks/destinations/audit/resume"); code != http.StatusConflict || !strings.Contains(string(b), "not paused") {
		t.Errorf("resume of a destination that is not paused: %d %s, want 409", code, b)
	}

	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/webhooks/destinations/orders/resume", http.StatusMethodNotAllowed},
		{http.MethodPost, "/webhooks/destinations/nope/resume", http.StatusNotFound},
		{http.MethodGet, "/webhooks/destinations/orders/other", http.StatusNotFound},
		{http.MethodGet, "/webhooks/nope", http.StatusNotFound},
	} {
		if code, b := adminCall(t, admin, tc.method, tc.path); code != tc.want {
			t.Errorf("%s %s: %d %s, want %d", tc.method, tc.path, code, b, tc.want)
		}
	}
	if sk.calls.Load() != 1 {
		t.Fatalf("the paused destination was called %d times", sk.calls.Load())
	}

	code, out, errOut := runCaddy(t, "webhooks", "resume", "orders", "--address", admin)
	if code != 0 {
		t.Fatalf("resume: exit %d\n%s\n%s", code, out, errOut)
	}
	if st := decodeStatus(t, []byte(out)); st.Name != "orders" || st.Circuit != "closed" || st.Paused {
		t.Errorf("resume printed %s", out)
	}
	waitFor(t, 5*time.Second, "the delivery after resume", func() bool { return sk.calls.Load() == 2 })

	if code, _, errOut := runCaddy(t, "webhooks", "resume", "nope", "--address", admin); code != 1 || !strings.Contains(errOut, "no destination") {
		t.Errorf("resume of an unknown destination: exit %d, stderr %q", code, errOut)
	}
	if code, _, _ := runCaddy(t, "webhooks", "resume", "--address", admin); code == 0 {
		t.Error("resume without a name succeeded")
	}
	code, out, errOut = runCaddy(t, "webhooks", "destinations", "--address", admin)
	if code != 0 || !strings.Contains(out, `"name":"audit"`) || !strings.Contains(out, `"subjects":["webhooks.v9.>"]`) {
		t.Errorf("destinations: exit %d\n%s\n%s", code, out, errOut)
	}
}

// TestAdminDeliveries: an event's delivery state at each destination it
// matches, through the admin API and the CLI: delivered at one, retrying
// at another, pending where no attempt has finished, absent where the
// event does not match.
func TestAdminDeliveries(t *testing.T) {
	ok := newSink(t, always(http.StatusOK))
	flaky := newSink(t, always(http.StatusServiceUnavailable))
	late := newSink(t, always(http.StatusOK))
	admin := freeAddr(t)
	startGateway(t, gatewayConfig{
		Admin: admin,
		Destinations: destination("ok", ok.srv.URL, "") +
			destination("flaky", flaky.srv.URL, "\t\t\tmax_attempts 1000") +
			// One event an hour: the second event waits for its turn.
			destination("late", late.srv.URL, "\t\t\trate 1/h") +
			"\n\t\tdestination other {\n\t\t\turl " + ok.srv.URL + "\n\t\t\tsubjects webhooks.v9.>\n\t\t}",
	}).postAll(t, "a", "b", "c/d")

	var states []forwarder.Delivery
	waitFor(t, 10*time.Second, "the states", func() bool {
		code, b := adminCall(t, admin, http.MethodGet, "/webhooks/deliveries/demo:b")
		if code != http.StatusOK {
			return false
		}
		if err := json.Unmarshal(b, &states); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		return len(states) == 3 && states[0].Status == forwarder.StatusRetrying && states[2].Status == forwarder.StatusDelivered
	})
	want := []struct {
		dest   string
		status forwarder.Status
	}{{"flaky", forwarder.StatusRetrying}, {"late", forwarder.StatusPending}, {"ok", forwarder.StatusDelivered}}
	for i, w := range want {
		if d := states[i]; d.Destination != w.dest || d.Status != w.status || d.EventID != "demo:b" || d.Subject == "" {
			t.Errorf("state %d = %+v, want %s %s", i, d, w.dest, w.status)
		}
	}
	if states[0].Attempts < 1 || states[0].LastStatusCode != http.StatusServiceUnavailable {
		t.Errorf("flaky: %+v", states[0])
	}

	if code, b := adminCall(t, admin, http.MethodGet, "/webhooks/deliveries/demo:nope"); code != http.StatusNotFound {
		t.Errorf("unknown event: %d %s", code, b)
	}
	if code, b := adminCall(t, admin, http.MethodPost, "/webhooks/deliveries/demo:b"); code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d %s", code, b)
	}
	code, out, errOut := runCaddy(t, "webhooks", "deliveries", "demo:a", "--address", admin)
	if code != 0 || !strings.Contains(out, `"destination":"ok","event":"`) || !strings.Contains(out, `"status":"delivered"`) {
		t.Errorf("deliveries: exit %d\n%s\n%s", code, out, errOut)
	}
	// An id with a '/' in it (provider ids are opaque) is found too.
	waitFor(t, 5*time.Second, "the state of demo:c/d", func() bool {
		code, out, _ := runCaddy(t, "webhooks", "deliveries", "demo:c/d", "--address", admin)
		return code == 0 && strings.Contains(out, `"event_id":"demo:c/d"`)
	})
}

// postAll posts one demo event per id and fails the test unless each is
// accepted.
func (g *gateway) postAll(t *testing.T, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if st, _, b := g.post("/webhooks/v1/demo", []byte(`{}`), map[string]string{"X-Id": id, "X-Type": "order.created"}); st != http.StatusOK {
			t.Fatalf("post %s: %d %s", id, st, b)
		}
	}
}

// TestAdminBodyTooLarge: every admin endpoint that reads a JSON body
// answers a body over maxAdminBody with 413 and the admin API's error
// body, rather than cutting it off and failing to parse the rest (a 400
// that blamed the JSON); a body of exactly maxAdminBody is read.
func TestAdminBodyTooLarge(t *testing.T) {
	admin := freeAddr(t)
	startGateway(t, gatewayConfig{Admin: admin})
	over := `{"source":"` + strings.Repeat("a", maxAdminBody) + `"}`
	for _, path := range []string{"/webhooks/replay", "/webhooks/dlq/redrive", "/webhooks/events/x/replay", "/webhooks/backup", "/webhooks/restore"} {
		status, b := adminPost(t, admin, path, over)
		var e struct {
			Error string `json:"error"`
		}
		if err := json.Unmarshal([]byte(b), &e); status != http.StatusRequestEntityTooLarge || err != nil || !strings.Contains(e.Error, "over 65536 bytes") {
			t.Errorf("POST %s with a %d-byte body: %d %s, want 413 with an error naming the limit", path, len(over), status, b)
		}
	}
	// At the limit: read and decoded (a relative dir is refused on its merits).
	atLimit := `{"dir":"relative"}`
	atLimit += strings.Repeat(" ", maxAdminBody-len(atLimit))
	if status, b := adminPost(t, admin, "/webhooks/backup", atLimit); status != http.StatusBadRequest || !strings.Contains(b, "absolute path") {
		t.Errorf("POST /webhooks/backup with a %d-byte body: %d %s, want 400 for the relative dir", len(atLimit), status, b)
	}
}
