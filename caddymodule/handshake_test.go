package caddymodule

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookgate/hookgate/verify"
)

// challengeVerifier is a provider whose handshake is a GET echoing
// hub.challenge (as Meta's) and whose POST {"type":"ping"} wants a 204. No
// scheme of package verify does both yet; the handler must serve any that
// does without knowing its name.
type challengeVerifier struct{}

func (challengeVerifier) HandshakeGET() bool { return true }

func (challengeVerifier) Verify(r *verify.Request) (verify.Result, error) {
	if r.Method == http.MethodGet {
		q := r.URL.Query()
		if q.Get("hub.verify_token") != "tok" {
			return verify.Result{}, errors.New("wrong verify token")
		}
		if q.Get("hub.mode") == "forgot" {
			return verify.Result{}, nil // a verifier's slip
		}
		return verify.Result{Handshake: &verify.Handshake{
			Header: http.Header{"Content-Type": {"text/plain"}},
			Body:   []byte(q.Get("hub.challenge")),
		}}, nil
	}
	if string(r.Body) == `{"type":"ping"}` {
		return verify.Result{Handshake: &verify.Handshake{Status: http.StatusNoContent}}, nil
	}
	return verify.Result{ID: "e1"}, nil
}

// countingStore counts the events that reach the real store behind it.
type countingStore struct {
	publisher
	n atomic.Int32
}

func (c *countingStore) publish(ctx context.Context, msg *nats.Msg) (*jetstream.PubAck, error) {
	c.n.Add(1)
	return c.publisher.publish(ctx, msg)
}

// TestHandshakeFromVerifier: a handshake is answered as the verifier says
// and not stored; a GET reaches only a verifier that asks for it.
func TestHandshakeFromVerifier(t *testing.T) {
	app := startApp(t, "")
	h := newTestHandler(t, &Handler{Sources: []*Source{
		{Name: "meta", Verify: &VerifyConfig{Scheme: "none"}},
		{Name: "plain", Verify: &VerifyConfig{Scheme: "none"}},
	}}, app)
	store := &countingStore{publisher: app}
	h.events = store
	meta := h.sources["meta"]
	meta.verifier = challengeVerifier{}
	meta.getHandshake = handshakeGET(meta.verifier)

	for _, tc := range []struct {
		name, method, target, body string
		status                     int
		answer, allow              string
		stored                     int32
	}{
		{"GET challenge", "GET", "/webhooks/v1/meta?hub.mode=subscribe&hub.challenge=c4&hub.verify_token=tok", "", 200, "c4", "", 0},
		{"GET wrong token", "GET", "/webhooks/v1/meta?hub.challenge=c4&hub.verify_token=no", "", 401, "", "", 0},
		{"GET no handshake", "GET", "/webhooks/v1/meta?hub.mode=forgot&hub.verify_token=tok", "", 405, "", "GET, POST", 0},
		{"POST ping", "POST", "/webhooks/v1/meta", `{"type":"ping"}`, 204, "", "", 0},
		{"PUT", "PUT", "/webhooks/v1/meta", `{}`, 405, "", "GET, POST", 0},
		{"POST event", "POST", "/webhooks/v1/meta", `{"type":"x"}`, 200, "", "", 1},
		{"GET elsewhere", "GET", "/webhooks/v1/plain?hub.challenge=c4", "", 405, "", "POST", 1},
	} {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(tc.method, tc.target, strings.NewReader(tc.body))
		if err := h.ServeHTTP(w, r, nil); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if w.Code != tc.status {
			t.Fatalf("%s: status %d, want %d (%s)", tc.name, w.Code, tc.status, w.Body)
		}
		if tc.answer != "" && (w.Body.String() != tc.answer || w.Header().Get("Content-Type") != "text/plain") {
			t.Fatalf("%s: answer %q %q", tc.name, w.Body, w.Header().Get("Content-Type"))
		}
		if got := w.Header().Get("Allow"); got != tc.allow {
			t.Fatalf("%s: Allow %q, want %q", tc.name, got, tc.allow)
		}
		if n := store.n.Load(); n != tc.stored {
			t.Fatalf("%s: %d stored, want %d", tc.name, n, tc.stored)
		}
	}
}
