package caddymodule

import (
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/hookgate/hookgate/event"
)

// TestSubjectSuffixLongList: a provider's body can hold a list of many
// thousands of strings within max_body; an expression that yields it
// (subject_suffix `body.tags`) must fail after maxSuffixTokens+1 of them,
// on the request path, without reading and copying every one.
func TestSubjectSuffixLongList(t *testing.T) {
	const base = "webhooks.v1.demo.unknown"
	s, err := newSubjectSuffix(`body.tags`, nil)
	if err != nil {
		t.Fatal(err)
	}
	ev := &event.Event{ID: "demo:1", Source: "demo", Version: "v1",
		Body: []byte(`{"tags":[` + strings.TrimSuffix(strings.Repeat(`"x",`, 50_000), ",") + `]}`)}
	var got string
	allocs := testing.AllocsPerRun(3, func() {
		got, err = s.subject(base, ev)
	})
	if got != base || err == nil || !strings.Contains(err.Error(), "at most 4") {
		t.Errorf("subject %q, %v; want %q and an error saying at most 4", got, err, base)
	}
	// The body's parse is a handful of allocations; one per element is
	// the whole list read.
	if allocs > 1000 {
		t.Errorf("%.0f allocations for a 50,000-element list: every element was read", allocs)
	}
}

// TestSubjectHeaderLongList: subject_header `body.tags` over a provider's
// list of 50,000 strings would put 50,000 values in the stored event's
// header (and in every destination's request); more than
// maxSubjectHeaderValues fail like any other expression: the header is
// left out and the error reported, after reading no more than that.
func TestSubjectHeaderLongList(t *testing.T) {
	s, err := newSubjectSuffix("", map[string]string{"X-Tags": `body.tags`})
	if err != nil {
		t.Fatal(err)
	}
	ev := &event.Event{ID: "demo:1", Source: "demo", Version: "v1",
		Body: []byte(`{"tags":[` + strings.TrimSuffix(strings.Repeat(`"x",`, 50_000), ",") + `]}`)}
	var msg *nats.Msg
	allocs := testing.AllocsPerRun(3, func() {
		msg = &nats.Msg{Subject: "webhooks.v1.demo.push", Header: nats.Header{}}
		err = s.apply(msg, ev)
	})
	if got := len(msg.Header["X-Tags"]); got != 0 || err == nil || !strings.Contains(err.Error(), "subject_header X-Tags") {
		t.Errorf("%d values set, error %v; want none and the error", got, err)
	}
	// As for subject_suffix: one allocation per element is the whole
	// list read.
	if allocs > 1000 {
		t.Errorf("%.0f allocations for a 50,000-element list: every element was read", allocs)
	}
	msg = &nats.Msg{Subject: "webhooks.v1.demo.push", Header: nats.Header{}}
	ev.Body = []byte(`{"tags":["a","b","c"]}`)
	if err := s.apply(msg, ev); err != nil || len(msg.Header["X-Tags"]) != 3 {
		t.Errorf("three tags: %v, %v", msg.Header, err)
	}
}
