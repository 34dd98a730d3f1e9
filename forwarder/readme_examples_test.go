package forwarder

import "testing"

// TestJavaScriptEquivalents evaluates the CEL column of the README's table
// of common JavaScript transformations, over an order, so that the table
// says what CEL really does.
func TestJavaScriptEquivalents(t *testing.T) {
	ev := sample(t, "shop", "order.created", "", nil)
	ev.Body = []byte(`{"type":"order.created","name":"Order #7","ref":"refs/heads/main","tags":"vip, wholesale",
		"customer":{"email":"a@example.com"},"data":{"object":{"amount":129900}},
		"items":[{"sku":"A","qty":1,"vendor":"Acme","price":"10.00"},{"sku":"B","qty":3,"vendor":null,"price":"2.50"}]}`)
	for expr, want := range map[string]string{
		`type == "order.created"`:                                                  `true`,
		`{"id": event_id, "amount": body.data.object.amount / 100.0}`:              `{"amount":1299,"id":"shop:1"}`,
		`body.items.map(i, i.sku)`:                                                 `["A","B"]`,
		`body.items.filter(i, i.qty > 1).map(i, i.sku)`:                            `["B"]`,
		`body.items.exists(i, i.vendor == "Acme")`:                                 `true`,
		`body.items.all(i, i.qty >= 1)`:                                            `true`,
		`body.?customer.?email.orValue("")`:                                        `"a@example.com"`,
		`body.?customer.?phone.orValue("none")`:                                    `"none"`,
		`body.ref.replace("refs/heads/", "")`:                                      `"main"`,
		`body.name.lowerAscii()`:                                                   `"order #7"`,
		`"vip" in body.tags.split(", ")`:                                           `true`,
		`body.size()`:                                                              `7`,
		`math.greatest(body.items.map(i, i.qty))`:                                  `3`,
		`body.items.map(i, i.qty).sort().reverse()`:                                `[3,1]`,
		`{"data": body.data, "source": source}`:                                    `{"data":{"object":{"amount":129900}},"source":"shop"}`,
		`string(received_at)`:                                                      `"2026-01-15T10:00:00Z"`,
		`body.items.map(i, i.sku).join(",")`:                                       `"A,B"`,
		`body.transformMapEntry(k, v, k in ["name", "type"], {k.upperAscii(): v})`: `{"NAME":"Order #7","TYPE":"order.created"}`,
	} {
		p, err := compile("example", expr)
		if err != nil {
			t.Errorf("%s: %v", expr, err)
			continue
		}
		out, _, err := p.prg.Eval(vars(ev))
		if err != nil {
			t.Errorf("%s: %v", expr, err)
			continue
		}
		// The transformation's own encoder, as a destination receives it.
		b, err := appendJSON(nil, out, 0)
		if err != nil {
			t.Errorf("%s: %v", expr, err)
			continue
		}
		if got := string(b); got != want {
			t.Errorf("%s = %s, want %s", expr, got, want)
		}
	}
}
