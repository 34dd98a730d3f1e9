package forwarder

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/hookgate/hookgate/event"
)

// TestDeliversRawBodyAndHeaders: the destination gets the stored bytes and
// the same headers, whether the body is small (fasthttp) or over largeBody
// (net/http).
func TestDeliversRawBodyAndHeaders(t *testing.T) {
	e := newEnv(t)
	s := newSink(t, nil)
	e.start(fast("orders", s.srv.URL))
	small := []byte(`{"id":"evt_1","type":"invoice.paid"}`)
	large := append([]byte(`{"pad":"`), bytes.Repeat([]byte("x"), 2*largeBody)...)
	large = append(large, `"}`...)
	for i, body := range [][]byte{small, large} {
		id := "stripe:evt_" + itoa(i)
		// A stored name in lower case goes out canonical; a provider's
		// Webhook-Replay never goes out.
		e.publish(id, "stripe", "invoice.paid", body, map[string]string{"Stripe-Signature": "t=1,v1=abc",
			"x-lower-case": "kept", HeaderWebhookReplay: "true"})

		waitFor(t, 5*time.Second, "delivery", func() bool { return s.count(id) == 1 })
		h := s.get(id)[0]
		if !bytes.Equal(h.body, body) {
			t.Errorf("%s: body of %d bytes differs from the %d stored", id, len(h.body), len(body))
		}
		for k, want := range map[string]string{
			"Content-Type":               "application/json; charset=utf-8",
			"User-Agent":                 "Hookgate",
			event.HeaderWebhookID:        id,
			event.HeaderIdempotencyKey:   id,
			event.HeaderWebhookAttempt:   "1",
			event.HeaderWebhookSource:    "stripe",
			"Stripe-Signature":           "t=1,v1=abc",
			"X-Lower-Case":               "kept",
			HeaderWebhookReplay:          "",
			event.HeaderWebhookSignature: "",
			event.HeaderID:               "",
		} {
			if got := h.header.Get(k); got != want {
				t.Errorf("%s: header %s = %q, want %q", id, k, got, want)
			}
		}
		st := waitState(t, e, id, "orders", StatusDelivered)
		if st.Attempts != 1 || st.RetryAttempts != 0 || st.LastStatusCode != 200 || st.DeliveredAt == nil || st.Event != "invoice.paid" {
			t.Errorf("%s: state = %+v", id, st)
		}
	}
}

func TestRetriesThenSucceeds(t *testing.T) {
	e := newEnv(t)
	s := newSink(t, func(_ http.Header, n int) (int, map[string]string) {
		if n < 3 {
			return 503, nil
		}
		return 200, nil
	})
	e.start(fast("orders", s.srv.URL))
	e.publish("gh:1", "github", "push", []byte(`{}`), nil)
	waitFor(t, 5*time.Second, "3 calls", func() bool { return s.count("gh:1") >= 3 })
	st := waitState(t, e, "gh:1", "orders", StatusDelivered)
	time.Sleep(200 * time.Millisecond) // room for a wrong fourth call
	if n := s.count("gh:1"); n != 3 {
		t.Fatalf("sink called %d times, want 3", n)
	}
	for i, h := range s.get("gh:1") {
		if got := h.header.Get(event.HeaderWebhookAttempt); got != itoa(i+1) {
			t.Errorf("call %d: Webhook-Attempt = %q", i+1, got)
		}
	}
	if st.Attempts != 3 || st.RetryAttempts != 2 {
		t.Errorf("state = %+v, want 3 attempts", st)
	}
}

func TestDeadLetterAfterMaxAttempts(t *testing.T) {
	e := newEnv(t)
	s := newSink(t, status(500))
	e.start(fast("orders", s.srv.URL))
	body := []byte(`{"x":1}`)
	seq := e.publish("gh:2", "github", "push", body, map[string]string{"X-Github-Event": "push"})

	dl := e.dlq(1, 5*time.Second)
	if len(dl) != 1 {
		t.Fatalf("dead letters = %d, want 1", len(dl))
	}
	m := dl[0]
	if m.Subject != "webhooks_dlq.orders.v1.github.push" {
		t.Errorf("subject = %q", m.Subject)
	}
	if !bytes.Equal(m.Data, body) {
		t.Errorf("body = %q", m.Data)
	}
	for k, want := range map[string]string{
		event.HeaderID:             "gh:2",
		"X-Github-Event":           "push",
		event.HeaderDLQDestination: "orders",
		event.HeaderDLQReason:      "max_attempts",
		event.HeaderDLQAttempts:    "3",
		event.HeaderDLQLastStatus:  "500",
		event.HeaderDLQLastError:   "HTTP 500 Internal Server Error",
		event.HeaderDLQStreamSeq:   itoa(int(seq)),
		event.HeaderMsgID:          "dlq:orders:" + itoa(int(seq)),
	} {
		if got := m.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	ev, err := event.Decode(m)
	if err != nil || ev.ID != "gh:2" {
		t.Errorf("decode dead letter: %v, %+v", err, ev)
	}
	if n := s.count("gh:2"); n != 3 {
		t.Errorf("sink called %d times, want 3", n)
	}
	st := waitState(t, e, "gh:2", "orders", StatusFailed)
	if st.Attempts != 3 || st.LastStatusCode != 500 || st.Reason != "max_attempts" {
		t.Errorf("state = %+v", st)
	}
}

// waitState polls the delivery state until it has the wanted status.
func waitState(t *testing.T, e *env, id, dest string, want Status) *Delivery {
	t.Helper()
	var st *Delivery
	waitFor(t, 5*time.Second, "state "+string(want), func() bool {
		var err error
		st, err = ReadDelivery(context.Background(), e.js, id, dest)
		return err == nil && st.Status == want
	})
	return st
}
