package forwarder

import (
	"context"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/hookgate/hookgate/event"
)

// TestChaosAtLeastOnce delivers 1,000 events to a destination that fails
// one request in four in every way it can (503, 429, a connection closed
// without an answer, an answer slower than the timeout), while the
// forwarder is replaced every 250ms the way a reload does it: the new one
// starts, then the old one stops with a short grace period, aborting what
// it has in flight. Every event must reach the sink's idempotency check
// and be applied there exactly once, with its delivery state "delivered",
// nothing dead-lettered and nothing left pending.
func TestChaosAtLeastOnce(t *testing.T) {
	// An ack wait of seconds, not half a minute: events in transit to a
	// stopping forwarder come back after it.
	defer func(m time.Duration) { ackMargin = m }(ackMargin)
	ackMargin = 2 * time.Second

	const n = 1000
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(20261128, 4))
	applied := map[string]int{}
	var requests, failures, duplicates int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(event.HeaderIdempotencyKey)
		mu.Lock()
		roll := rng.IntN(100)
		requests++
		if roll < 25 {
			failures++
		}
		mu.Unlock()
		switch {
		case roll < 10:
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		case roll < 15:
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		case roll < 20:
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close() // no answer at all
			}
			return
		case roll < 25:
			// Applied, but answered after the caller gave up: the gateway
			// cannot know, retries, and the idempotency check absorbs it.
			time.Sleep(300 * time.Millisecond)
		}
		mu.Lock()
		if applied[id] > 0 {
			duplicates++
		}
		applied[id]++
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)

	e := newEnv(t)
	cfg := fast("chaos", srv.URL)
	cfg.Timeout = 200 * time.Millisecond
	cfg.MaxAttempts = 1000
	cfg.BackoffBase, cfg.BackoffCap = 5*time.Millisecond, 50*time.Millisecond
	cfg.Concurrency = 4
	cfg.Breaker.Disabled = true
	for i := range n {
		e.publish("c:"+itoa(i), "c", "t", []byte(`{}`), nil)
	}

	start := func() *Forwarder {
		f, err := New(e.js, cfg, e.log)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		return f
	}
	stop := func(f *Forwarder, grace time.Duration) {
		ctx, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		_ = f.Stop(ctx) // a deadline error is the point: attempts aborted
	}
	done := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(applied) == n
	}
	cur := start()
	replacements := 0
	deadline := time.Now().Add(60 * time.Second)
	for !done() && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		next := start()
		stop(cur, 300*time.Millisecond)
		cur = next
		replacements++
	}
	defer stop(cur, 5*time.Second)
	if !done() {
		mu.Lock()
		t.Fatalf("after %d replacements only %d of %d events reached the sink", replacements, len(applied), n)
	}

	for i := range n {
		id := "c:" + itoa(i)
		waitState(t, e, id, "chaos", StatusDelivered)
		mu.Lock()
		if applied[id] < 1 {
			t.Errorf("%s never applied", id)
		}
		mu.Unlock()
	}
	waitFor(t, 10*time.Second, "every ack", func() bool {
		info, err := mustConsumer(t, e, "fwd-chaos").Info(context.Background())
		return err == nil && info.AckFloor.Stream == n && info.NumAckPending == 0 && info.NumPending == 0
	})
	if dl := e.dlq(0, 0); len(dl) != 0 {
		t.Errorf("%d dead letters, want none", len(dl))
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d events, %d requests, %d failed on purpose, %d forwarder replacements; the idempotency check absorbed %d duplicate deliveries",
		n, requests, failures, replacements, duplicates)
}
