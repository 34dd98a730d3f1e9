package forwarder

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// gaps returns the times between consecutive calls for one event.
func gaps(hits []hit) []time.Duration {
	var out []time.Duration
	for i := 1; i < len(hits); i++ {
		out = append(out, hits[i].at.Sub(hits[i-1].at))
	}
	return out
}

// TestBackoffJitterAndCap: each retry waits a full-jitter delay below
// min(cap, base·2^(attempt-1)), the delays spread (jitter), and no retry
// comes sooner than its delay. The delays are the ones the forwarder
// chose (its "will retry" log line carries each), so the bounds follow
// from the config: a busy machine, which only makes retries late, cannot
// fail the test, and a wrong backoff still does.
func TestBackoffJitterAndCap(t *testing.T) {
	e := newEnv(t)
	core, logs := observer.New(zapcore.WarnLevel)
	e.log = zap.New(core)
	s := newSink(t, status(503))
	cfg := fast("b", s.srv.URL)
	cfg.MaxAttempts = 8
	cfg.BackoffBase, cfg.BackoffCap = 20*time.Millisecond, 80*time.Millisecond
	cfg.Breaker.Disabled = true
	e.start(cfg)
	ids := []string{"x:1", "x:2", "x:3"}
	for _, id := range ids {
		e.publish(id, "x", "t", []byte(`{}`), nil)
	}
	e.dlq(3, 10*time.Second)
	var all []time.Duration
	for _, id := range ids {
		hits := s.get(id)
		retries := logs.FilterMessage("delivery failed; will retry").FilterField(zap.String("event_id", id)).All()
		if len(hits) != cfg.MaxAttempts || len(retries) != cfg.MaxAttempts-1 {
			t.Fatalf("%s: %d calls and %d retries logged, want %d and %d", id, len(hits), len(retries), cfg.MaxAttempts, cfg.MaxAttempts-1)
		}
		for _, r := range retries {
			a := int(r.ContextMap()["attempt"].(int64))
			delay := r.ContextMap()["delay"].(time.Duration)
			if ceil := min(cfg.BackoffCap, cfg.BackoffBase<<(a-1)); delay < 0 || delay >= ceil {
				t.Errorf("%s: after attempt %d the delay is %v, want in [0, %v)", id, a, delay, ceil)
			}
			// The line is logged before the NAK that starts the delay.
			if early := r.Time.Add(delay).Sub(hits[a].at); early > 0 {
				t.Errorf("%s: retry %d came %v before its delay of %v ended", id, a, early, delay)
			}
			all = append(all, delay)
		}
	}
	lo, hi := slices.Min(all), slices.Max(all)
	t.Logf("retry delays from %v to %v", lo, hi)
	if hi-lo < 20*time.Millisecond {
		t.Errorf("retry delays span only %v..%v: no jitter", lo, hi)
	}
}

func TestScheduleDelays(t *testing.T) {
	e := newEnv(t)
	s := newSink(t, status(500))
	cfg := fast("s", s.srv.URL)
	cfg.MaxAttempts = 0
	cfg.Schedule = []time.Duration{50 * time.Millisecond, 150 * time.Millisecond, 300 * time.Millisecond}
	e.start(cfg)
	e.publish("x:1", "x", "t", []byte(`{}`), nil)
	e.dlq(1, 5*time.Second)
	g := gaps(s.get("x:1"))
	if len(g) != 3 {
		t.Fatalf("%d retries, want 3 (len(schedule)+1 attempts)", len(g))
	}
	for i, d := range g {
		if want := cfg.Schedule[i]; d < want || d > want+150*time.Millisecond {
			t.Errorf("retry %d after %v, want %v", i+1, d, want)
		}
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	e := newEnv(t)
	s := newSink(t, func(h http.Header, n int) (int, map[string]string) {
		if n == 1 {
			return 429, map[string]string{"Retry-After": "1"}
		}
		if n == 2 {
			return 503, map[string]string{"Retry-After": "3600"}
		}
		return 200, nil
	})
	cfg := fast("r", s.srv.URL)
	cfg.MaxAttempts = 5
	cfg.RetryAfterCap = 300 * time.Millisecond
	cfg.BackoffCap = 2 * time.Second
	e.start(cfg)
	e.publish("x:1", "x", "t", []byte(`{}`), nil)
	waitFor(t, 5*time.Second, "3 calls", func() bool { return s.count("x:1") == 3 })
	g := gaps(s.get("x:1"))
	// The first Retry-After (1s) is above the 300ms cap: capped.
	// Without the header the backoff would be at most 10ms.
	if g[0] < 300*time.Millisecond || g[0] > 600*time.Millisecond {
		t.Errorf("after Retry-After 1 with cap 300ms: waited %v", g[0])
	}
	if g[1] < 300*time.Millisecond || g[1] > 600*time.Millisecond {
		t.Errorf("after Retry-After 3600 with cap 300ms: waited %v", g[1])
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	e := newEnv(t)
	s := newSink(t, func(h http.Header, n int) (int, map[string]string) {
		if n == 1 {
			return 503, map[string]string{"Retry-After": "1"}
		}
		return 200, nil
	})
	cfg := fast("r", s.srv.URL)
	cfg.RetryAfterCap = 5 * time.Second // the default is BackoffCap, 40ms here
	e.start(cfg)
	e.publish("x:1", "x", "t", []byte(`{}`), nil)
	waitFor(t, 5*time.Second, "2 calls", func() bool { return s.count("x:1") == 2 })
	if g := gaps(s.get("x:1"))[0]; g < time.Second || g > 1500*time.Millisecond {
		t.Errorf("after Retry-After 1: waited %v, want 1s", g)
	}
}

func TestMaxAge(t *testing.T) {
	e := newEnv(t)
	s := newSink(t, status(503))
	cfg := fast("a", s.srv.URL)
	cfg.MaxAttempts = 1000
	cfg.MaxAge = 300 * time.Millisecond
	cfg.Breaker.Disabled = true
	e.start(cfg)
	e.publish("x:1", "x", "t", []byte(`{}`), nil)
	dl := e.dlq(1, 5*time.Second)
	if len(dl) != 1 {
		t.Fatalf("dead letters = %d", len(dl))
	}
	if r := dl[0].Header.Get("Hookgate-Dlq-Reason"); r != "max_age" {
		t.Errorf("reason = %q, want max_age", r)
	}
	if n := s.count("x:1"); n < 2 || n > 200 {
		t.Errorf("%d attempts within max_age", n)
	}
}
