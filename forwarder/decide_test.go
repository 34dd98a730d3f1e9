package forwarder

import (
	"testing"
	"time"
)

// TestDecideRows checks decide row by row: every outcome, ordered and
// unordered, at and around each limit.
func TestDecideRows(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	base := decisionInput{attempt: 2, maxAttempts: 5, delay: time.Minute, now: now, received: now.Add(-time.Hour), delivered: 2, maxDeliver: 8}
	with := func(f func(*decisionInput)) decisionInput { in := base; f(&in); return in }
	rows := []struct {
		name   string
		in     decisionInput
		want   verdict
		reason string
	}{
		{"delivered unordered", with(func(in *decisionInput) { in.outcome = delivered }), ack, ""},
		{"delivered ordered", with(func(in *decisionInput) { in.outcome, in.ordered = delivered, true }), ack, ""},
		{"delivered on the last attempt", with(func(in *decisionInput) { in.outcome, in.attempt = delivered, 5 }), ack, ""},
		{"rejected unordered", with(func(in *decisionInput) { in.outcome = rejected }), deadLetter, reasonRejected},
		{"rejected ordered", with(func(in *decisionInput) { in.outcome, in.ordered = rejected, true }), deadLetter, reasonRejected},
		{"gone unordered", with(func(in *decisionInput) { in.outcome = gone }), pauseAndNak, ""},
		{"gone ordered", with(func(in *decisionInput) { in.outcome, in.ordered = gone, true }), pauseInTurn, ""},
		{"gone on the last attempt still pauses", with(func(in *decisionInput) { in.outcome, in.attempt = gone, 5 }), pauseAndNak, ""},
		{"retryable unordered", with(func(in *decisionInput) { in.outcome = retryable }), retryLater, ""},
		{"retryable ordered", with(func(in *decisionInput) { in.outcome, in.ordered = retryable, true }), retryInTurn, ""},
		{"retryable, attempts used up", with(func(in *decisionInput) { in.outcome, in.attempt = retryable, 5 }), deadLetter, reasonMaxAttempts},
		{"retryable ordered, attempts used up", with(func(in *decisionInput) { in.outcome, in.ordered, in.attempt = retryable, true, 5 }), deadLetter, reasonMaxAttempts},
		{"retryable, next attempt past max_age", with(func(in *decisionInput) { in.outcome, in.maxAge = retryable, time.Hour }), deadLetter, reasonMaxAge},
		{"retryable, next attempt within max_age", with(func(in *decisionInput) { in.outcome, in.maxAge = retryable, 2*time.Hour }), retryLater, ""},
		{"retryable ordered, past max_age", with(func(in *decisionInput) { in.outcome, in.ordered, in.maxAge = retryable, true, time.Hour }), deadLetter, reasonMaxAge},
		{"retryable, deliveries used up", with(func(in *decisionInput) { in.outcome, in.delivered = retryable, 8 }), deadLetter, reasonMaxDeliveries},
		{"retryable ordered ignores deliveries", with(func(in *decisionInput) { in.outcome, in.ordered, in.delivered = retryable, true, 8 }), retryInTurn, ""},
		{"attempts beat max_age", with(func(in *decisionInput) { in.outcome, in.attempt, in.maxAge = retryable, 5, time.Hour }), deadLetter, reasonMaxAttempts},
	}
	for _, r := range rows {
		got := decide(r.in)
		if got.verdict != r.want || got.reason != r.reason {
			t.Errorf("%s: verdict %d reason %q, want %d %q", r.name, got.verdict, got.reason, r.want, r.reason)
		}
		if (got.verdict == retryLater || got.verdict == retryInTurn) && !got.next.Equal(now.Add(time.Minute)) {
			t.Errorf("%s: next %v, want now + delay", r.name, got.next)
		}
	}
}
