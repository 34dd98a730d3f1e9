package forwarder

import (
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/hookgate/hookgate/event"
)

// TestTransformHeaderValueControl: a transform_headers value taken from a
// provider's body can hold CR, LF or another control character. Sent as
// it is, fasthttp (bodies up to 64 KiB) turned CR LF into spaces and
// net/http (larger bodies) refused every attempt, so the event was retried
// for max_attempts; a header the forwarder cannot send is a failed
// transformation, dead-lettered at once like any other.
func TestTransformHeaderValueControl(t *testing.T) {
	rt, err := compileRouting(&Config{TransformHeaders: `{"X-A": body.x}`})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		body, errHas string
	}{
		{`{"x": "a\r\nX-Injected: yes"}`, "control character"},
		{`{"x": "a\nb"}`, "control character"},
		{`{"x": "a\u0000b"}`, "control character"},
		{`{"x": "a\u007fb"}`, "control character"},
		{`{"x": "tab\tand é are fine"}`, ""},
	} {
		ev, err := event.Decode(&nats.Msg{Subject: "webhooks.v1.x.t", Header: nats.Header{event.HeaderID: {"x:1"}}, Data: []byte(tc.body)})
		if err != nil {
			t.Fatal(err)
		}
		out := outgoing{}
		err = rt.apply(vars(ev), &out)
		if (tc.errHas == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.errHas) {
			t.Errorf("%s: %v, want error %q", tc.body, err, tc.errHas)
		}
	}
}

// TestTransformHeaderNameFromEventNotShown: a header name the
// transformation reads from the event is not shown in its error, even
// when the expression holds the empty string as a literal (a name equal
// to a literal of the expression is shown; "" was, as an empty label).
func TestTransformHeaderNameFromEventNotShown(t *testing.T) {
	rt, err := compileRouting(&Config{TransformHeaders: `{body.tok.replace("q", ""): "1"}`})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := event.Decode(&nats.Msg{Subject: "webhooks.v1.x.t", Header: nats.Header{event.HeaderID: {"x:1"}}, Data: []byte(`{"tok": "sk_live secret"}`)})
	if err != nil {
		t.Fatal(err)
	}
	err = rt.apply(vars(ev), &outgoing{})
	if err == nil || strings.Contains(err.Error(), "sk_live") || !strings.Contains(err.Error(), "header "+valueNotShown+": refused") {
		t.Fatalf("error %v: want the header named %q and no value of the event", err, valueNotShown)
	}
}
