package forwarder

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"

	"github.com/hookgate/hookgate/event"
)

// sample builds a stored event from a provider payload in testdata.
func sample(t testing.TB, source, typ, file string, hdr http.Header) *event.Event {
	t.Helper()
	var body []byte
	if file != "" {
		b, err := os.ReadFile("testdata/" + file)
		if err != nil {
			t.Fatal(err)
		}
		body = b
	}
	return &event.Event{ID: source + ":1", Source: source, Version: "v1", Type: typ,
		ReceivedAt: time.Date(2026, 1, 15, 10, 0, 0, 0, time.UTC), ContentType: "application/json",
		Header: hdr, Body: body}
}

// samples returns the test events: the three provider samples with
// their typical headers, a form body that is not JSON, and the Shopify
// order with 5,000 line items.
func samples(t testing.TB) (stripe, github, shopify, form, large *event.Event) {
	stripe = sample(t, "stripe", "invoice.paid", "stripe_invoice_paid.json", http.Header{"Stripe-Signature": {"t=1735732800,v1=abc"}})
	github = sample(t, "github", "push", "github_push.json", http.Header{"X-Github-Event": {"push"}})
	shopify = sample(t, "shopify", "orders/create", "shopify_orders_create.json", http.Header{"X-Shopify-Shop-Domain": {"shop.myshopify.com"}})
	form = sample(t, "twilio", "", "", nil)
	form.Body, form.ContentType = []byte("From=%2B15551234567&Body=hello"), "application/x-www-form-urlencoded"
	return stripe, github, shopify, form, largeShopifyOrder(t, 5000)
}

// largeShopifyOrder is the Shopify sample with n line items.
func largeShopifyOrder(t testing.TB, n int) *event.Event {
	ev := sample(t, "shopify", "orders/create", "shopify_orders_create.json", nil)
	var order map[string]any
	if err := json.Unmarshal(ev.Body, &order); err != nil {
		t.Fatal(err)
	}
	items := make([]any, n)
	for i := range items {
		items[i] = map[string]any{"id": i, "sku": fmt.Sprintf("SKU-%d", i), "quantity": 1, "price": "1.00", "vendor": nil}
	}
	order["line_items"] = items
	ev.Body, _ = json.Marshal(order)
	return ev
}

// TestFilterRows evaluates filters over real provider payloads, with null
// and missing fields, a body that is not JSON and a large array.
func TestFilterRows(t *testing.T) {
	stripe, github, shopify, form, large := samples(t)
	rows := []struct {
		ev      *event.Event
		expr    string
		want    bool
		errHas  string // the evaluation error, for rows that cannot be evaluated
		comment string
	}{
		{stripe, `body.data.object.livemode && type.startsWith("invoice.")`, true, "", "the issue's example"},
		{stripe, `body.data.object.amount_paid > 100000`, true, "", "JSON number against an int"},
		{stripe, `body.data.object.amount_paid / 100.0 >= 1299.0`, true, "", "arithmetic in doubles"},
		{stripe, `body.data.object.currency == "usd"`, false, "", ""},
		{stripe, `body.data.object.customer_name == null`, true, "", "null field"},
		{stripe, `body.data.object.customer_name.startsWith("A")`, false, "no such overload", "method on a null field"},
		{stripe, `has(body.data.object.discount)`, false, "", "missing field, tested"},
		{stripe, `body.data.object.discount == null`, false, "no such key", "missing field, untested"},
		{stripe, `body.?data.?object.?discount.orValue("none") == "none"`, true, "", "optional chain"},
		{stripe, `body.data.object.lines.data.exists(l, l.amount > 100000)`, true, "", ""},
		{stripe, `headers["Stripe-Signature"].startsWith("t=")`, true, "", "headers"},
		{stripe, `"X-Missing" in headers`, false, "", ""},
		{stripe, `source == "stripe" && version == "v1" && event_id == "stripe:1"`, true, "", ""},
		{stripe, `received_at > timestamp("2026-01-01T00:00:00Z")`, true, "", ""},
		{github, `body.ref == "refs/heads/main"`, true, "", "only pushes to main"},
		{github, `body.commits.exists(c, c.modified.exists(f, f.startsWith("forwarder/")))`, true, "", ""},
		{github, `body.base_ref == null && !body.forced`, true, "", ""},
		{github, `"go" in body.repository.topics && body.repository.private`, true, "", ""},
		{github, `headers["X-Github-Event"] == "pull_request"`, false, "", ""},
		{shopify, `double(body.total_price) >= 1000.0 && body.currency == "EUR"`, true, "", "orders above 1,000 EUR"},
		{shopify, `body.tags.split(", ").exists(t, t == "vip")`, true, "", "strings extension"},
		{shopify, `body.fulfillment_status == null && body.note == null`, true, "", ""},
		{shopify, `body.line_items.exists(i, i.vendor == "Acme")`, true, "", "null and string compared"},
		{shopify, `body.customer.id > 0`, true, "", "a 64-bit id as a double"},
		{form, `body == null`, true, "", "not JSON"},
		{form, `body.From == "x"`, false, "no such key", "field of a non-JSON body"},
		{form, `source == "twilio"`, true, "", "metadata of a non-JSON body"},
		{large, `body.line_items.size() == 5000`, true, "", "large array"},
		{large, `body.line_items.exists(i, i.sku == "SKU-4999")`, true, "", "large array scanned"},
		{large, `body.line_items.map(i, body.line_items.map(j, j.id)).size() > 0`, false, "cost limit", "runaway expression"},
	}
	for _, r := range rows {
		fs, err := compileFilters([]string{r.expr})
		if err != nil {
			t.Errorf("%s: compile: %v", r.expr, err)
			continue
		}
		got, err := fs.match(vars(r.ev))
		if got != r.want || (r.errHas == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), r.errHas)) {
			t.Errorf("%s (%s): %v, %v; want %v with error %q", r.expr, r.comment, got, err, r.want, r.errHas)
		}
	}
}

// TestFiltersAreANDed: several filter lines all have to pass.
func TestFiltersAreANDed(t *testing.T) {
	ev := sample(t, "stripe", "invoice.paid", "stripe_invoice_paid.json", nil)
	for _, tc := range []struct {
		exprs []string
		want  bool
	}{
		{[]string{`body.livemode`, `type == "invoice.paid"`}, true},
		{[]string{`body.livemode`, `type == "invoice.created"`}, false},
		{[]string{`false`, `body.nope.nope`}, false},
	} {
		fs, err := compileFilters(tc.exprs)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := fs.match(vars(ev)); got != tc.want {
			t.Errorf("%q: %v, want %v", tc.exprs, got, tc.want)
		}
	}
}

// TestCompileErrors: a malformed or mistyped expression is refused at
// provisioning with the position of the error.
func TestCompileErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want []string
	}{
		{Config{Filters: []string{`body.data.object.livemode &&`}}, []string{"filter", "filter:1:29", "Syntax error"}},
		{Config{Filters: []string{`true`, `tipe == "x"`}}, []string{"filter 2", "filter 2:1:1", "undeclared reference to 'tipe'"}},
		{Config{Filters: []string{`type`}}, []string{"yields string, want bool"}},
		{Config{Transform: `1 + 1`}, []string{"transform", "yields int"}},
		{Config{Transform: `{"a": body.x`}, []string{"transform:1:"}},
		{Config{TransformHeaders: `"x"`}, []string{"transform_headers", "yields string"}},
		{Config{Filters: []string{" "}}, []string{"empty expression"}},
	} {
		c := tc.cfg
		c.Name, c.URL = "d", "http://127.0.0.1:1/"
		err := c.Validate()
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%+v: error %v, want it to hold %q", tc.cfg, err, w)
			}
		}
	}
}

// TestNonJSONBodyIsNull: the body variable is null for a body that is not
// JSON, and for an empty one; JSON scalars are themselves.
func TestNonJSONBodyIsNull(t *testing.T) {
	for _, b := range [][]byte{nil, []byte("a=b"), []byte(`{"unterminated":`), bytes.Repeat([]byte("["), 10), []byte("12abc"), []byte(`"open`)} {
		if v := bodyVal(b); v != types.NullValue {
			t.Errorf("bodyVal(%q) = %v, want null", b, v)
		}
	}
	for b, want := range map[string]ref.Val{`42`: types.Double(42), ` "s" `: types.String("s"), `true`: types.True, `null`: types.NullValue} {
		if v := bodyVal([]byte(b)); v.Equal(want) != types.True {
			t.Errorf("bodyVal(%q) = %v, want %v", b, v, want)
		}
	}
}
