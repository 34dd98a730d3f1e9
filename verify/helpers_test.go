package verify

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

// request builds a Request from header pairs ("Name", "value", ...).
func request(body string, now time.Time, kv ...string) *Request {
	h := make(http.Header)
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return &Request{Method: http.MethodPost, Header: h, Body: []byte(body), Now: now}
}

// withURL sets r.URL from s.
func withURL(t testing.TB, r *Request, s string) *Request {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	r.URL = u
	return r
}

// mustNew builds a verifier or fails the test.
func mustNew(t testing.TB, c Config) Verifier {
	t.Helper()
	v, err := New(c)
	if err != nil {
		t.Fatalf("New(%s): %v", c.Scheme, err)
	}
	return v
}

// accept verifies r and fails the test unless it is accepted with want.
func accept(t testing.TB, v Verifier, r *Request, want Result) {
	t.Helper()
	got, err := v.Verify(r)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if got.ID != want.ID || got.Type != want.Type || !sameHandshake(got.Handshake, want.Handshake) {
		t.Fatalf("Verify result = %+v %s, want %+v %s", got, showHandshake(got.Handshake), want, showHandshake(want.Handshake))
	}
}

// sameHandshake compares two handshake answers by value; a zero status
// means 200.
func sameHandshake(a, b *Handshake) bool {
	if a == nil || b == nil {
		return a == b
	}
	status := func(h *Handshake) int {
		if h.Status == 0 {
			return http.StatusOK
		}
		return h.Status
	}
	return status(a) == status(b) && reflect.DeepEqual(a.Header, b.Header) && bytes.Equal(a.Body, b.Body)
}

// showHandshake prints a handshake answer for a failure message.
func showHandshake(h *Handshake) string {
	if h == nil {
		return "(no handshake)"
	}
	return fmt.Sprintf("(handshake %d %v %q)", h.Status, h.Header, h.Body)
}

// reject verifies r and fails the test unless the error wraps kind.
func reject(t testing.TB, v Verifier, r *Request, kind error) error {
	t.Helper()
	res, err := v.Verify(r)
	if err == nil {
		t.Fatalf("Verify accepted a request it must reject (result %+v)", res)
	}
	if !errors.Is(err, kind) {
		t.Fatalf("Verify error %q does not wrap %q", err, kind)
	}
	if res != (Result{}) {
		t.Fatalf("Verify returned result %+v with error %v", res, err)
	}
	return err
}

// unix is a fixed clock for known-answer tests.
func unix(sec int64) time.Time { return time.Unix(sec, 0) }

// noSecretIn fails when an error text holds any of the secrets.
func noSecretIn(t testing.TB, err error, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(err.Error(), s) {
			t.Fatalf("error %q reveals a secret", err)
		}
	}
}
