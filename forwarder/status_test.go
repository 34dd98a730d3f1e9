package forwarder

import (
	"strings"
	"testing"
	"time"
)

// TestExplainPause reads each cause of a pause the way an operator would:
// paused or not, until when (nil when only a resume ends it), and why.
func TestExplainPause(t *testing.T) {
	now := time.Date(2026, 11, 30, 7, 0, 0, 0, time.UTC)
	gone := now.Add(-time.Hour)
	goneConsumer := gone.Add(forever)
	soon := now.Add(30 * time.Second)
	kick := now.Add(resumeKick)
	for _, tc := range []struct {
		name      string
		facts     pauseFacts
		paused    bool
		until     *time.Time
		reasonHas []string
	}{
		{"healthy", pauseFacts{}, false, nil, nil},
		{"410 in this process", pauseFacts{goneAt: gone, consumerPause: &goneConsumer}, true, nil,
			[]string{"410 Gone at 2026-11-30T06:00:00Z", "caddy webhooks resume orders", "fix its url"}},
		{"410 before a restart", pauseFacts{consumerPause: &goneConsumer}, true, nil,
			[]string{"410 Gone at 2026-11-30T06:00:00Z"}},
		{"410 while the circuit is open too", pauseFacts{goneAt: gone, circuit: circuitOpen, openUntil: soon}, true, nil,
			[]string{"410 Gone"}},
		{"circuit open", pauseFacts{circuit: circuitOpen, openUntil: soon, consumerPause: &soon}, true, &soon,
			[]string{"circuit open", "probe goes at 2026-11-30T07:00:30Z", "caddy webhooks resume orders"}},
		{"circuit half-open", pauseFacts{circuit: circuitHalfOpen}, true, nil, []string{"half-open"}},
		{"consumer paused elsewhere", pauseFacts{consumerPause: &soon}, true, &soon,
			[]string{"consumer paused until 2026-11-30T07:00:30Z"}},
		{"resume's kick is not a pause", pauseFacts{consumerPause: &kick}, false, nil, nil},
	} {
		tc.facts.name, tc.facts.now = "orders", now
		got := explainPause(tc.facts)
		if got.paused != tc.paused {
			t.Errorf("%s: paused %v, want %v (%q)", tc.name, got.paused, tc.paused, got.reason)
		}
		if (got.until == nil) != (tc.until == nil) || (got.until != nil && !got.until.Equal(*tc.until)) {
			t.Errorf("%s: until %v, want %v", tc.name, got.until, tc.until)
		}
		if !tc.paused && got.reason != "" {
			t.Errorf("%s: a reason for no pause: %q", tc.name, got.reason)
		}
		for _, w := range tc.reasonHas {
			if !strings.Contains(got.reason, w) {
				t.Errorf("%s: reason %q lacks %q", tc.name, got.reason, w)
			}
		}
	}
}
