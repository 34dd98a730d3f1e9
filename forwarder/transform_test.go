package forwarder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"cel.dev/cel-go/common/types"
	"github.com/nats-io/nats.go"

	"github.com/hookgate/hookgate/event"
	"github.com/hookgate/hookgate/verify"
)

// jsonEq reports whether two JSON texts hold the same value.
func jsonEq(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return reflect.DeepEqual(va, vb)
}

// TestTransformRows runs transformations over real provider payloads:
// the body sent, its Content-Type, and failures that must fail the whole
// event.
func TestTransformRows(t *testing.T) {
	stripe, github, shopify, form, large := samples(t)
	rows := []struct {
		ev       *event.Event
		expr     string
		wantJSON string // the body, compared as JSON; "" when wantRaw applies
		wantRaw  string
		wantCT   string
		errHas   string
	}{
		{stripe, `{"id": body.id, "type": type, "customer": body.data.object.customer,
			"amount": body.data.object.amount_paid / 100.0, "currency": body.data.object.currency.upperAscii()}`,
			`{"id":"evt_1QdTvZ2eZvKYlo2C8sV3dPq1","type":"invoice.paid","customer":"cus_RWmV3xgN5j2k1a","amount":1299,"currency":"EUR"}`, "", "application/json", ""},
		{stripe, `{"name": body.data.object.customer_name, "note": body.?data.?object.?discount.orValue("none")}`,
			`{"name":null,"note":"none"}`, "", "application/json", ""},
		{github, `{"repo": body.repository.full_name, "branch": body.ref.replace("refs/heads/", ""),
			"commits": body.commits.map(c, c.id), "files": body.commits.map(c, c.modified).flatten()}`,
			`{"repo":"octo-org/octo-repo","branch":"main","commits":["0000000000000000000000000000000000000001"],"files":["forwarder/retry.go"]}`, "", "application/json", ""},
		{shopify, `{"source": source, "event_id": event_id, "type": type, "received_at": received_at, "shop": headers["X-Shopify-Shop-Domain"], "data": body}`,
			"", "", "application/json", ""},
		{shopify, `body.line_items.filter(i, i.vendor != null).map(i, {"sku": i.sku, "qty": i.quantity})`,
			`[{"sku":"CASE-01","qty":2}]`, "", "application/json", ""},
		{shopify, `"order " + body.name`, "", "order #9999", "application/json", ""},
		{form, `b"raw bytes"`, "", "raw bytes", "application/x-www-form-urlencoded", ""},
		{form, `body == null ? {"form": true} : body`, `{"form":true}`, "", "application/json", ""},
		{large, `{"count": body.line_items.size(), "skus": body.line_items.map(i, i.sku)}`, "", "", "application/json", ""},
		{stripe, `body.data.object.discount`, "", "", "", "no such key"},
		{stripe, `body.data.object.amount_paid`, "", "", "", "yields double"},
		{stripe, `{"n": body.data.object.amount_paid / 0.0}`, "", "", "", "no JSON form"},
		{stripe, `{body.data.object.attempt_count: "a"}`, "", "", "", "JSON keys are strings"},
		{large, `body.line_items.map(i, body.line_items.map(j, j.id))`, "", "", "", "cost limit"},
	}
	for _, r := range rows {
		rt, err := compileRouting(&Config{Transform: r.expr})
		if err != nil {
			t.Errorf("%s: compile: %v", r.expr, err)
			continue
		}
		out := outgoing{body: r.ev.Body, contentType: r.ev.ContentType}
		err = rt.apply(vars(r.ev), &out)
		if r.errHas != "" {
			if err == nil || !strings.Contains(err.Error(), r.errHas) {
				t.Errorf("%s: error %v, want %q", r.expr, err, r.errHas)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", r.expr, err)
			continue
		}
		if out.contentType != r.wantCT {
			t.Errorf("%s: content type %q, want %q", r.expr, out.contentType, r.wantCT)
		}
		switch {
		case r.wantJSON != "" && !jsonEq(t, out.body, []byte(r.wantJSON)):
			t.Errorf("%s:\n got %s\nwant %s", r.expr, out.body, r.wantJSON)
		case r.wantRaw != "" && string(out.body) != r.wantRaw:
			t.Errorf("%s: body %q, want %q", r.expr, out.body, r.wantRaw)
		}
	}
	// The envelope holds the body as stored, and the stored event is
	// untouched.
	rt, _ := compileRouting(&Config{Transform: `{"data": body, "received_at": received_at}`})
	before := string(shopify.Body)
	out := outgoing{}
	if err := rt.apply(vars(shopify), &out); err != nil {
		t.Fatal(err)
	}
	var env struct {
		Data       json.RawMessage `json:"data"`
		ReceivedAt string          `json:"received_at"`
	}
	if err := json.Unmarshal(out.body, &env); err != nil || !jsonEq(t, env.Data, shopify.Body) || env.ReceivedAt != "2026-01-15T10:00:00Z" {
		t.Errorf("envelope %s (%v)", out.body, err)
	}
	if string(shopify.Body) != before {
		t.Error("the transformation changed the stored body")
	}
}

// TestTransformHeaders sets and removes headers; the forwarder's own
// headers cannot be touched.
func TestTransformHeaders(t *testing.T) {
	ev := sample(t, "shopify", "orders/create", "shopify_orders_create.json", http.Header{"X-Shopify-Shop-Domain": {"shop.myshopify.com"}})
	rt, err := compileRouting(&Config{TransformHeaders: `{"x-shop": headers["X-Shopify-Shop-Domain"], "X-Shopify-Hmac-Sha256": null, "content-type": "application/vnd.orders+json"}`})
	if err != nil {
		t.Fatal(err)
	}
	out := outgoing{body: ev.Body, contentType: ev.ContentType}
	if err := rt.apply(vars(ev), &out); err != nil {
		t.Fatal(err)
	}
	want := []headerEdit{{name: "Content-Type", value: "application/vnd.orders+json"}, {name: "X-Shop", value: "shop.myshopify.com"}, {name: "X-Shopify-Hmac-Sha256", remove: true}}
	if !reflect.DeepEqual(out.edits, want) || out.contentType != "application/vnd.orders+json" {
		t.Errorf("edits %+v, content type %q", out.edits, out.contentType)
	}
	for expr, errHas := range map[string]string{
		`{"Webhook-Id": "x"}`:       "cannot be overridden",
		`{"idempotency-key": null}`: "cannot be overridden",
		`{"Content-Length": "1"}`:   "hop-by-hop",
		`{"X-A": 1}`:                "want a string or null",
		`{"Content-Type": null}`:    "cannot be removed",
	} {
		rt, err := compileRouting(&Config{TransformHeaders: expr})
		if err != nil {
			t.Fatal(err)
		}
		out := outgoing{}
		if err := rt.apply(vars(ev), &out); err == nil || !strings.Contains(err.Error(), errHas) {
			t.Errorf("%s: %v, want %q", expr, err, errHas)
		}
	}
}

// TestTransformOutputLimit: an output over MaxTransformOutput fails.
func TestTransformOutputLimit(t *testing.T) {
	if _, _, err := encodeBody(types.String(strings.Repeat("x", MaxTransformOutput+1))); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("oversized output: %v", err)
	}
	if b, _, err := encodeBody(types.String(strings.Repeat("x", MaxTransformOutput))); err != nil || len(b) != MaxTransformOutput {
		t.Errorf("output at the limit: %d bytes, %v", len(b), err)
	}
}

// TestTransformedDeliveryAndReplay: a forwarder with a filter, a
// transformation and signing sends the transformed body, signed over what
// it sends, with the event id as idempotency key; a filtered event gets
// the state "filtered"; a replay applies the transformation again.
func TestTransformedDeliveryAndReplay(t *testing.T) {
	e := newEnv(t)
	// Replay reads the event by direct get, as on the gateway's stream.
	st, err := e.js.Stream(context.Background(), event.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	sc := st.CachedInfo().Config
	sc.AllowDirect = true
	if _, err := e.js.UpdateStream(context.Background(), sc); err != nil {
		t.Fatal(err)
	}
	s := newSink(t, nil)
	cfg := fast("tr", s.srv.URL)
	cfg.Filters = []string{`body.n > 1`}
	cfg.Transform = `{"n": body.n * 2.0, "id": event_id}`
	cfg.SignSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	f := e.start(cfg)
	seq := e.publish("x:1", "x", "t", []byte(`{"n": 21}`), nil)
	e.publish("x:2", "x", "t", []byte(`{"n": 1}`), nil)
	delivered := waitState(t, e, "x:1", "tr", StatusDelivered)
	if filtered := waitState(t, e, "x:2", "tr", StatusFiltered); filtered.Sent != nil {
		t.Errorf("a filtered event records a sent body: %+v", filtered.Sent)
	}
	if n := s.count("x:2"); n != 0 {
		t.Errorf("the filtered event was delivered %d times", n)
	}
	h := s.get("x:1")[0]
	if string(h.body) != `{"id":"x:1","n":42}` || h.header.Get("Content-Type") != "application/json" || h.header.Get("Idempotency-Key") != "x:1" {
		t.Errorf("delivery: %s %v", h.body, h.header)
	}
	// What was sent is recorded by digest, and the preview of the running
	// config yields the same bytes.
	sum := sha256.Sum256(h.body)
	if delivered.Sent == nil || delivered.Sent.Size != len(h.body) || delivered.Sent.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("delivery state records sent %+v, want the digest of %s", delivered.Sent, h.body)
	}
	ev, _ := event.Decode(&nats.Msg{Subject: "webhooks.v1.x.t", Header: nats.Header{event.HeaderID: {"x:1"}}, Data: []byte(`{"n": 21}`)})
	if p, err := f.Preview(ev); err != nil || string(p.Body) != string(h.body) || delivered.Sent == nil || p.Sent != *delivered.Sent || !f.Transforms() {
		t.Errorf("preview %+v (%v), want the body sent", p, err)
	}
	v, _ := verify.StandardWebhooks(cfg.SignSecret)
	if _, err := v.Verify(&verify.Request{Header: h.header, Body: h.body}); err != nil {
		t.Errorf("the signature does not cover the body sent: %v", err)
	}
	res, err := f.Replay(context.Background(), seq, 0)
	if err != nil || res.Status != StatusDelivered {
		t.Fatalf("replay: %+v %v", res, err)
	}
	if hits := s.get("x:1"); len(hits) != 2 || string(hits[1].body) != `{"id":"x:1","n":42}` {
		t.Errorf("replayed delivery: %d hits, last %s", len(hits), hits[len(hits)-1].body)
	}
}

// TestHeadersOnlyTransformRecordsSent: a destination that only changes
// headers sends the stored body, and records its digest like any
// transforming destination, so the event log can show it as sent.
func TestHeadersOnlyTransformRecordsSent(t *testing.T) {
	e := newEnv(t)
	s := newSink(t, nil)
	cfg := fast("hdr", s.srv.URL)
	cfg.TransformHeaders = `{"X-Kind": type}`
	f := e.start(cfg)
	e.publish("h:1", "x", "t", []byte(`{"n": 1}`), nil)
	st := waitState(t, e, "h:1", "hdr", StatusDelivered)
	h := s.get("h:1")[0]
	if want := sentOf([]byte(`{"n": 1}`)); st.Sent == nil || *st.Sent != *want || string(h.body) != `{"n": 1}` || h.header.Get("X-Kind") != "t" || !f.Transforms() {
		t.Errorf("state sent %+v, delivery %s %v; want the stored body's digest %+v", st.Sent, h.body, h.header, want)
	}
}

// TestTransformDepthLimit: a result the expression builds may nest 64
// levels (the README's limit), not one more.
func TestTransformDepthLimit(t *testing.T) {
	nested := func(levels int) any {
		var v any = "x"
		for range levels {
			v = []any{v}
		}
		return v
	}
	if _, _, err := encodeBody(types.DefaultTypeAdapter.NativeToValue(nested(maxJSONDepth))); err != nil {
		t.Errorf("%d levels: %v", maxJSONDepth, err)
	}
	if _, _, err := encodeBody(types.DefaultTypeAdapter.NativeToValue(nested(maxJSONDepth + 1))); err == nil || !strings.Contains(err.Error(), "deeper") {
		t.Errorf("%d levels: %v, want the depth error", maxJSONDepth+1, err)
	}
}
