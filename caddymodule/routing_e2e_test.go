package caddymodule

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookgate/hookgate/event"
	"github.com/hookgate/hookgate/forwarder"
)

// bt puts a CEL expression in backticks, one Caddyfile token.
func bt(expr string) string { return "`" + expr + "`" }

// TestFiltersAndTransformEndToEnd: on a real gateway, three destinations
// with different filters see exactly their events; a transformed delivery
// arrives with the expected body and headers and the original idempotency
// key; a failing transformation dead-letters that event only.
func TestFiltersAndTransformEndToEnd(t *testing.T) {
	sinks := map[string]*sink{}
	for _, name := range []string{"live", "invoices", "main", "shaped"} {
		sinks[name] = newSink(t, always(http.StatusOK))
	}
	admin := freeAddr(t)
	g := startGateway(t, gatewayConfig{
		Admin: admin,
		Destinations: destination("live", sinks["live"].srv.URL, "\t\t\tfilter "+bt(`body.livemode == true`)) +
			destination("invoices", sinks["invoices"].srv.URL, "\t\t\tfilter "+bt(`type.startsWith("invoice.")`)+
				"\n\t\t\tfilter "+bt(`body.amount > 1000`)) +
			destination("main", sinks["main"].srv.URL, "\t\t\tfilter "+bt(`has(body.ref) && body.ref == "refs/heads/main"`)) +
			"\n\t\tdestination shaped {\n\t\t\turl " + sinks["shaped"].srv.URL + "\n\t\t\tsubjects webhooks.v1.demo.invoice.>" +
			"\n\t\t\tbackoff 20ms 100ms" +
			"\n\t\t\ttransform " + bt(`{"kind": type, "amount": body.amount / 100.0, "id": event_id}`) +
			"\n\t\t\ttransform_headers " + bt(`{"X-Kind": type, "X-Remove-Me": null}`) + "\n\t\t}",
	})
	events := []struct{ id, typ, body string }{
		{"e1", "invoice.paid", `{"livemode":true,"amount":5000}`},
		{"e2", "invoice.paid", `{"livemode":false,"amount":500}`},
		{"e3", "push", `{"ref":"refs/heads/main","livemode":false}`},
		{"e4", "push", `{"ref":"refs/heads/dev"}`},
		{"e5", "ping", `hello, not JSON`},
		{"e6", "invoice.created", `{"livemode":true}`},
	}
	for _, e := range events {
		hdr := map[string]string{"X-Id": e.id, "X-Type": e.typ, "X-Remove-Me": "provider value"}
		if st, _, b := g.post("/webhooks/v1/demo", []byte(e.body), hdr); st != http.StatusOK {
			t.Fatalf("post %s: %d %s", e.id, st, b)
		}
	}
	want := map[string][]string{
		"live":     {"demo:e1", "demo:e6"},
		"invoices": {"demo:e1"},
		"main":     {"demo:e3"},
		"shaped":   {"demo:e1", "demo:e2"},
	}
	js := g.engine().js
	ctx := context.Background()
	// Every (event, destination) pair settles: delivered, filtered or
	// dead-lettered.
	for dest := range want {
		for _, e := range events {
			id := "demo:" + e.id
			waitFor(t, 10*time.Second, id+" at "+dest, func() bool {
				st, err := forwarder.ReadDelivery(ctx, js, id, dest)
				return err == nil && st.Status != forwarder.StatusRetrying && st.Status != forwarder.StatusDelivering ||
					dest == "shaped" && !strings.HasPrefix(e.typ, "invoice.")
			})
		}
	}
	for dest, ids := range want {
		_, hdrs := sinks[dest].received()
		var got []string
		for _, h := range hdrs {
			got = append(got, h.Get("Webhook-Id"))
		}
		slices.Sort(got)
		if !slices.Equal(got, ids) {
			t.Errorf("%s received %v, want exactly %v", dest, got, ids)
		}
	}
	if st, err := forwarder.ReadDelivery(ctx, js, "demo:e2", "live"); err != nil || st.Status != forwarder.StatusFiltered || st.Attempts != 0 {
		t.Errorf("e2 at live: %+v (%v), want filtered with no attempt", st, err)
	}
	if st, err := forwarder.ReadDelivery(ctx, js, "demo:e5", "live"); err != nil || st.Status != forwarder.StatusFiltered || !strings.Contains(st.LastError, "no such key") {
		t.Errorf("e5 (not JSON) at live: %+v (%v), want filtered with the reason", st, err)
	}

	// The transformed delivery: body, headers, original idempotency key.
	bodies, hdrs := sinks["shaped"].received()
	for i, h := range hdrs {
		if h.Get("Webhook-Id") != "demo:e1" {
			continue
		}
		var got map[string]any
		if err := json.Unmarshal(bodies[i], &got); err != nil || !reflect.DeepEqual(got, map[string]any{"kind": "invoice.paid", "amount": 50.0, "id": "demo:e1"}) {
			t.Errorf("transformed body %s (%v)", bodies[i], err)
		}
		if h.Get("Content-Type") != "application/json" || h.Get("X-Kind") != "invoice.paid" || h.Get("X-Remove-Me") != "" ||
			h.Get("Idempotency-Key") != "demo:e1" {
			t.Errorf("transformed headers %v", h)
		}
	}
	// The failing transformation dead-lettered e6 only, with its error.
	dlq := g.stored(event.DLQStreamName)
	if len(dlq) != 1 || dlq[0].Header.Get(event.HeaderID) != "demo:e6" || dlq[0].Header.Get(event.HeaderDLQReason) != "transform_failed" ||
		dlq[0].Header.Get(event.HeaderDLQDestination) != "shaped" || !strings.Contains(dlq[0].Header.Get(event.HeaderDLQLastError), "no such key") {
		for _, m := range dlq {
			t.Logf("dead letter %s: %v", m.Subject, m.Header)
		}
		t.Fatalf("%d dead letters, want e6 at shaped with reason transform_failed", len(dlq))
	}
	// Filtered events are counted per destination.
	m := scrape(t, admin)
	for dest, want := range map[string]float64{"live": 4, "invoices": 5, "main": 5, "shaped": 0} {
		if got := m[`caddy_webhooks_filtered_total{destination="`+dest+`"}`]; got != want {
			t.Errorf("caddy_webhooks_filtered_total for %s = %v, want %v", dest, got, want)
		}
	}
	// The stored event is unchanged.
	for _, m := range g.stored(event.StreamName) {
		if m.Header.Get(event.HeaderID) == "demo:e1" && string(m.Data) != `{"livemode":true,"amount":5000}` {
			t.Errorf("stored body changed: %s", m.Data)
		}
	}
	checkTransformedView(t, admin, bodies, hdrs)
}

// checkTransformedView: the event log shows the stored body beside what
// the transformation sent, proven by the digest recorded at the delivery;
// a failing transformation shows its error.
func checkTransformedView(t *testing.T, admin string, bodies [][]byte, hdrs []http.Header) {
	t.Helper()
	var sent []byte
	for i, h := range hdrs {
		if h.Get("Webhook-Id") == "demo:e1" {
			sent = bodies[i]
		}
	}
	var d EventDetail
	adminJSON(t, admin, http.MethodGet, "/webhooks/events/demo:e1?body=1", "", http.StatusOK, &d)
	if d.Body == nil || *d.Body != `{"livemode":true,"amount":5000}` || len(d.Transformed) != 1 {
		t.Fatalf("event detail: body %v, transformed %+v; want the stored body and one transformed view", d.Body, d.Transformed)
	}
	v := d.Transformed[0]
	if v.Destination != "shaped" || !v.SameAsSent || v.Sent == nil || v.Sent.Size != len(sent) || v.Body == nil || *v.Body != string(sent) ||
		v.ContentType != "application/json" || v.Headers["X-Kind"] != "invoice.paid" || v.Headers["X-Remove-Me"] != "" {
		t.Errorf("transformed view %+v (body %v), want what shaped received: %s", v, v.Body, sent)
	}
	code, out, errOut := runCaddy(t, "webhooks", "show", "demo:e1", "--body", "--address", admin)
	for _, want := range []string{"TRANSFORMED FOR", "body sent to shaped (Content-Type application/json)", "header X-Kind: invoice.paid",
		"header X-Remove-Me: (removed)", `"kind": "invoice.paid"`, `"livemode": true`} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("caddy webhooks show: exit %d, output lacks %q:\n%s%s", code, want, out, errOut)
		}
	}
	d = EventDetail{}
	adminJSON(t, admin, http.MethodGet, "/webhooks/events/demo:e6", "", http.StatusOK, &d)
	if len(d.Transformed) != 1 || d.Transformed[0].Error == "" || d.Transformed[0].Current != nil || d.Transformed[0].Body != nil {
		t.Errorf("failing transformation's view %+v, want its error and no body", d.Transformed)
	}
}

// TestValidateRefusesMalformedExpression: caddy validate refuses a filter
// with a syntax error and says where it is.
func TestValidateRefusesMalformedExpression(t *testing.T) {
	cfg := gatewayConfig{Store: t.TempDir(), Addr: "127.0.0.1:0", Sources: demoSources,
		Destinations: destination("d", "http://127.0.0.1:9/", "\t\t\tfilter "+bt(`body.livemode && (type == "x"`))}
	file := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(file, []byte(cfg.caddyfile()), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCaddy(t, "validate", "--config", file, "--adapter", "caddyfile")
	if code == 0 || !strings.Contains(errOut, "filter:1:30: Syntax error: missing ')'") || !strings.Contains(errOut, "destination") {
		t.Errorf("validate: exit %d\n%s\n%s", code, out, errOut)
	}
}
