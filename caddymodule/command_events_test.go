package caddymodule

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hookgate/hookgate/event"
	"github.com/hookgate/hookgate/forwarder"
)

// TestEventLogCLI runs the real caddy webhooks commands against a running
// gateway: tables by default, JSON with --json, replay and redrive, tail
// and listen, and a clear failure when the gateway is not there.
func TestEventLogCLI(t *testing.T) {
	g, admin, ok, bad := eventLogGateway(t)
	postTyped(t, g, "c1", "order.created")
	postTyped(t, g, "c2", "user.signup")
	settled(t, admin, 2)

	run := func(want int, args ...string) string {
		t.Helper()
		code, out, errOut := runCaddy(t, append(append([]string{"webhooks"}, args...), "--address", admin)...)
		if code != want {
			t.Fatalf("%v: exit %d, want %d\n%s\n%s", args, code, want, out, errOut)
		}
		return out + errOut
	}

	out := run(0, "events")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "SEQ") || !strings.Contains(lines[1], "demo:c2") ||
		!strings.Contains(lines[2], "bad=failed ok=delivered") {
		t.Errorf("events table:\n%s", out)
	}
	// Columns are aligned: every row's ID starts where the header's does.
	col := strings.Index(lines[0], "ID")
	for _, l := range lines[1:] {
		if !strings.HasPrefix(l[col:], "demo:") {
			t.Errorf("misaligned row %q", l)
		}
	}
	var page EventPage
	if err := json.Unmarshal([]byte(run(0, "events", "--json", "--type", "order.created")), &page); err != nil || len(page.Events) != 1 {
		t.Errorf("events --json: %+v %v", page, err)
	}
	if out := run(0, "events", "--status", "failed", "--limit", "1"); !strings.Contains(out, "demo:c1") || strings.Contains(out, "demo:c2") {
		t.Errorf("events --status failed:\n%s", out)
	}

	out = run(0, "show", "demo:c1", "--body")
	for _, want := range []string{"demo:c1", "Stripe-Signature", forwarder.Redacted, "HTTP 422", "customer missing", `"id": "c1"`} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "t=1,v1=x") {
		t.Errorf("show printed a signature:\n%s", out)
	}
	if out := run(1, "show", "demo:nope"); !strings.Contains(out, `no event "demo:nope"`) {
		t.Errorf("show of an unknown event:\n%s", out)
	}

	if out := run(0, "replay", "demo:c2", "--destination", "ok"); !strings.Contains(out, "queued demo:c2") {
		t.Errorf("replay:\n%s", out)
	}
	waitFor(t, 10*time.Second, "the CLI replay", func() bool { return len(ok.received("demo:c2")) == 2 })
	if out := run(0, "replay", "--since", "1h", "--type", "user.signup", "--destination", "ok"); !strings.Contains(out, "replay") || !strings.Contains(out, "MATCHED") {
		t.Errorf("bulk replay:\n%s", out)
	}
	run(2, "replay")

	out = run(0, "dlq")
	if !strings.Contains(out, "demo:c1") || !strings.Contains(out, "rejected") {
		t.Fatalf("dlq:\n%s", out)
	}
	var dl DLQPage
	if err := json.Unmarshal([]byte(run(0, "dlq", "--json")), &dl); err != nil || len(dl.DeadLetters) != 1 {
		t.Fatalf("dlq --json: %v", err)
	}
	if out := run(0, "dlq", "--q", "demo:c2"); strings.Contains(out, "demo:c1") || !strings.Contains(out, "no dead letters") {
		t.Errorf("dlq --q demo:c2 lists another event's dead letter:\n%s", out)
	}
	if out := run(0, "dlq", "--q", "demo:c1", "--type", "order.created"); !strings.Contains(out, "demo:c1") {
		t.Errorf("dlq --q demo:c1 --type order.created:\n%s", out)
	}
	// --until lists what 'redrive --all --until' takes: none before 2000.
	if out := run(0, "dlq", "--until", "2000-01-01T00:00:00Z"); strings.Contains(out, "demo:c1") || !strings.Contains(out, "no dead letters") {
		t.Errorf("dlq --until 2000:\n%s", out)
	}
	bad.failing.Store(false)
	if out := run(0, "redrive", dl.DeadLetters[0].ID); !strings.Contains(out, "queued dead letter") {
		t.Errorf("redrive:\n%s", out)
	}
	waitFor(t, 10*time.Second, "the CLI redrive", func() bool { return len(bad.received("demo:c1")) == 2 })
	run(2, "redrive")
	if out := run(0, "redrive", "--all"); !strings.Contains(out, "MATCHED") {
		t.Errorf("redrive --all:\n%s", out)
	}

	out = run(0, "status")
	for _, want := range []string{"STORE", "always", "SOURCE", "demo", "DESTINATION", "ok", "bad", "closed"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}

	// tail and listen print (and forward) events posted while they run.
	done := make(chan string, 2)
	go func() {
		_, o, e := runCaddy(t, "webhooks", "tail", "--count", "2", "--interval", "100ms", "--source", "demo", "--address", admin)
		done <- o + e
	}()
	local := newRecorder(t, false)
	go func() {
		_, o, e := runCaddy(t, "webhooks", "listen", "--forward-to", local.srv.URL, "--count", "1", "--interval", "100ms", "--address", admin)
		done <- o + e
	}()
	var outs []string
	for i := 0; len(outs) < 2; i++ {
		if i > 60 {
			t.Fatal("tail and listen did not finish")
		}
		postTyped(t, g, fmt.Sprintf("live%d", i), "user.signup")
		select {
		case o := <-done:
			outs = append(outs, o)
		case <-time.After(300 * time.Millisecond):
		}
	}
	all := strings.Join(outs, "\n")
	if strings.Count(all, "demo:live") < 3 || !strings.Contains(all, "-> 200") {
		t.Errorf("tail and listen printed:\n%s", all)
	}
	local.mu.Lock()
	if len(local.reqs) != 1 || !strings.HasPrefix(local.reqs[0].Get(event.HeaderIdempotencyKey), "demo:live") ||
		local.reqs[0].Get("X-Custom") != "kept" || local.reqs[0].Get("Stripe-Signature") != "" {
		t.Errorf("listen forwarded %v", local.reqs)
	}
	local.mu.Unlock()

	// No gateway: a plain message and exit 1.
	code, _, errOut := runCaddy(t, "webhooks", "events", "--address", freeAddr(t))
	if code != 1 || !strings.Contains(errOut, "not reachable") {
		t.Errorf("unreachable gateway: exit %d, %q", code, errOut)
	}
	if code, _, _ := runCaddy(t, "webhooks", "listen", "--forward-to", "ftp://x", "--address", admin); code != 2 {
		t.Errorf("listen with a bad URL: exit %d", code)
	}
	if code, _, errOut := runCaddy(t, "webhooks", "show", "--address", admin); code != 2 {
		t.Errorf("show without an event id: exit %d, want 2 (usage) %q", code, errOut)
	}
}
