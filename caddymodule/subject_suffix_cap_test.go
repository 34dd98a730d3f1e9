package caddymodule

import (
	"strings"
	"testing"

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
