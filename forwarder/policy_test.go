package forwarder

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/hookgate/hookgate/event"
)

// TestClassificationRows answers each event's first attempt with one
// status and the next with 200: retried rows are delivered on attempt 2,
// rejected rows go to the dead letters after one call.
func TestClassificationRows(t *testing.T) {
	e := newEnv(t)
	rows := []struct {
		status int
		on4xx  On4xx
		retry  bool
	}{
		{200, "", false}, {204, "", false},
		{408, "", true}, {425, "", true}, {429, "", true},
		{500, "", true}, {502, "", true}, {503, "", true}, {504, "", true},
		{400, "", false}, {401, "", false}, {404, "", false}, {422, "", false},
		{400, Retry, true}, {404, Retry, true},
	}
	for i, row := range rows {
		first := row.status
		s := newSink(t, func(_ http.Header, n int) (int, map[string]string) {
			if n == 1 {
				return first, nil
			}
			return 200, nil
		})
		cfg := fast("c"+itoa(i), s.srv.URL)
		cfg.On4xx = row.on4xx
		cfg.Subjects = []string{"webhooks.v1.src" + itoa(i) + ".>"}
		e.start(cfg)
		id := "src" + itoa(i) + ":1"
		e.publish(id, "src"+itoa(i), "t", []byte(`{}`), nil)
		want := StatusDelivered
		switch {
		case row.status/100 == 2:
		case row.retry:
		default:
			want = StatusFailed
		}
		st := waitState(t, e, id, cfg.Name, want)
		calls := 1
		if row.retry {
			calls = 2
		}
		if n := s.count(id); n != calls || st.Attempts != calls {
			t.Errorf("status %d on4xx %q: %d calls, %d attempts, want %d", row.status, row.on4xx, n, st.Attempts, calls)
		}
		if want == StatusFailed && (st.Reason != "rejected" || st.LastStatusCode != row.status) {
			t.Errorf("status %d: state %+v", row.status, st)
		}
	}
}

func TestNetworkErrorsRetry(t *testing.T) {
	e := newEnv(t)
	// A port nobody listens on: connection refused.
	dead := newSink(t, nil)
	url := dead.srv.URL
	dead.srv.Close()
	cfg := fast("down", url)
	cfg.MaxAttempts = 2
	e.start(cfg)
	e.publish("x:1", "x", "t", []byte(`{}`), nil)
	st := waitState(t, e, "x:1", "down", StatusFailed)
	if st.Attempts != 2 || st.LastStatusCode != 0 || !strings.Contains(st.LastError, "refused") {
		t.Errorf("state = %+v", st)
	}

	// A destination slower than the timeout.
	slow := newSink(t, nil)
	slow.hold = 300 * time.Millisecond
	cfg = fast("slow", slow.srv.URL)
	cfg.Timeout = 50 * time.Millisecond
	cfg.MaxAttempts = 2
	e.start(cfg)
	st = waitState(t, e, "x:1", "slow", StatusFailed)
	if st.Attempts != 2 || !strings.Contains(st.LastError, "timeout after 50ms") {
		t.Errorf("state = %+v", st)
	}
}

func TestGonePausesDestination(t *testing.T) {
	e := newEnv(t)
	core, logs := observer.New(zapcore.WarnLevel)
	e.log = zap.New(core)
	var mu sync.Mutex
	goneNow := true
	s := newSink(t, func(http.Header, int) (int, map[string]string) {
		mu.Lock()
		defer mu.Unlock()
		if goneNow {
			return 410, nil
		}
		return 200, nil
	})
	cfg := fast("gone", s.srv.URL)
	cfg.Concurrency = 1 // one call reaches the 410, the other waits
	f := e.start(cfg)
	e.publish("x:1", "x", "t", []byte(`{}`), nil)
	e.publish("x:2", "x", "t", []byte(`{}`), nil)
	waitFor(t, 5*time.Second, "the 410", func() bool { return s.total() == 1 })
	cons, err := e.js.Consumer(context.Background(), event.StreamName, "fwd-gone")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "consumer paused", func() bool {
		info, err := cons.Info(context.Background())
		return err == nil && info.Paused
	})
	if alerts := logs.FilterMessageSnippet("410 Gone").FilterLevelExact(zapcore.ErrorLevel).Len(); alerts != 1 {
		t.Errorf("%d error-level 410 alerts logged, want 1", alerts)
	}
	time.Sleep(300 * time.Millisecond)
	if n := s.total(); n != 1 {
		t.Fatalf("paused destination got %d calls, want 1", n)
	}
	mu.Lock()
	goneNow = false
	mu.Unlock()
	if err := f.Resume(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitState(t, e, "x:1", "gone", StatusDelivered)
	waitState(t, e, "x:2", "gone", StatusDelivered)
}

func TestConcurrencyCap(t *testing.T) {
	e := newEnv(t)
	s := newSink(t, nil)
	s.hold = 20 * time.Millisecond
	cfg := fast("conc", s.srv.URL)
	cfg.Concurrency = 4
	e.start(cfg)
	for i := range 60 {
		e.publish("x:"+itoa(i), "x", "t", []byte(`{}`), nil)
	}
	waitFor(t, 10*time.Second, "60 deliveries", func() bool { return s.ackedCount() == 60 })
	s.mu.Lock()
	peak := s.maxInFlight
	s.mu.Unlock()
	t.Logf("peak in flight: %d (cap 4)", peak)
	if peak > 4 || peak < 2 {
		t.Errorf("peak in flight %d, want 2..4", peak)
	}
	info, err := mustConsumer(t, e, "fwd-conc").Info(context.Background())
	if err != nil || info.Config.MaxAckPending != 4+16 {
		t.Errorf("MaxAckPending = %d (%v), want 4 + 16 retry room", info.Config.MaxAckPending, err)
	}
}

func mustConsumer(t *testing.T, e *env, name string) jetstream.Consumer {
	t.Helper()
	c, err := e.js.Consumer(context.Background(), event.StreamName, name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRateCap: a backlog goes out at the destination's rate. The bounds
// follow from the token bucket, not from wall-clock spans: the limiter is
// made after t0 holding Burst tokens, so by any time t it has let at most
// Burst + Rate·(t − t0) attempts go, and an attempt reaches the sink only
// after it was let go. A busy machine only makes arrivals later, which
// keeps them under the line; a limiter that lets more through crosses it.
func TestRateCap(t *testing.T) {
	e := newEnv(t)
	s := newSink(t, nil)
	cfg := fast("rate", s.srv.URL)
	cfg.Rate, cfg.Burst, cfg.Concurrency = 50, 2, 8
	t0 := time.Now()
	e.start(cfg)
	const n = 40
	for i := range n {
		e.publish("x:"+itoa(i), "x", "t", []byte(`{}`), nil)
	}
	waitFor(t, 10*time.Second, "all deliveries", func() bool { return s.ackedCount() == n })
	s.mu.Lock()
	hits := append([]hit(nil), s.all...)
	s.mu.Unlock()
	slices.SortFunc(hits, func(a, b hit) int { return a.at.Compare(b.at) })
	t.Logf("%d deliveries in %v at rate 50/s burst 2 (at least %v)", n, hits[n-1].at.Sub(t0), time.Duration(n-cfg.Burst)*time.Second/50)
	for i, h := range hits {
		if allowed := float64(cfg.Burst) + cfg.Rate*h.at.Sub(t0).Seconds(); float64(i+1) > allowed {
			t.Fatalf("%d calls within %v of the start; the rate allows %.1f", i+1, h.at.Sub(t0), allowed)
		}
	}
}

func TestBreakerOpensProbesCloses(t *testing.T) {
	e := newEnv(t)
	var mu sync.Mutex
	healthy := false
	s := newSink(t, func(http.Header, int) (int, map[string]string) {
		mu.Lock()
		defer mu.Unlock()
		if healthy {
			return 200, nil
		}
		return 503, nil
	})
	cfg := fast("brk", s.srv.URL)
	cfg.MaxAttempts = 50
	cfg.Concurrency = 4
	cfg.Breaker = BreakerConfig{Failures: 3, Cooldown: time.Second}
	f := e.start(cfg)
	for i := range 6 {
		e.publish("x:"+itoa(i), "x", "t", []byte(`{}`), nil)
	}
	cons := mustConsumer(t, e, "fwd-brk")
	waitFor(t, 5*time.Second, "circuit open (consumer paused)", func() bool {
		info, err := cons.Info(context.Background())
		return err == nil && info.Paused
	})
	opened := time.Now()
	if st, err := f.Status(context.Background()); err != nil || !st.Paused || st.Circuit != "open" || st.PausedUntil == nil ||
		!strings.Contains(st.PausedReason, "circuit open") {
		t.Errorf("status while the circuit is open: %+v (%v)", st, err)
	}
	// With 4 workers, attempts that passed the breaker before it opened
	// may still reach the sink: let those stragglers land first.
	time.Sleep(150 * time.Millisecond)
	before := s.total()
	time.Sleep(400 * time.Millisecond)
	if n := s.total() - before; n > 0 {
		t.Errorf("%d calls while the circuit was open", n)
	}
	// The cooldown ends: exactly one probe, which fails and reopens.
	waitFor(t, 2*time.Second, "a probe", func() bool { return s.total() > before })
	probeAt := time.Now()
	time.Sleep(150 * time.Millisecond)
	if n := s.total() - before; n != 1 {
		t.Errorf("%d calls in the half-open window, want 1 probe", n)
	}
	if d := probeAt.Sub(opened); d < 800*time.Millisecond {
		t.Errorf("probe %v after opening, before the cooldown", d)
	}
	mu.Lock()
	healthy = true
	mu.Unlock()
	for i := range 6 {
		waitState(t, e, "x:"+itoa(i), "brk", StatusDelivered)
	}
	info, _ := cons.Info(context.Background())
	if info.Paused {
		t.Error("consumer still paused after the circuit closed")
	}
	if err := f.Resume(context.Background()); !errors.Is(err, ErrNotPaused) {
		t.Errorf("resume of a healthy destination: %v, want ErrNotPaused", err)
	}
	// Waiting while open spent no attempts: every event used far fewer
	// than the deliveries the open time would have allowed.
	for i := range 6 {
		st, _ := ReadDelivery(context.Background(), e.js, "x:"+itoa(i), "brk")
		if st.Attempts > 5 {
			t.Errorf("event %d spent %d attempts", i, st.Attempts)
		}
	}
}

func TestBreakerRatio(t *testing.T) {
	b := newBreaker(BreakerConfig{Failures: -1, Ratio: 0.5, Window: time.Minute, MinRequests: 4, Cooldown: time.Hour})
	for i, failed := range []bool{false, true, false} {
		if until, _ := b.done(false, failed); !until.IsZero() {
			t.Fatalf("opened after %d attempts, below MinRequests", i+1)
		}
	}
	if until, _ := b.done(false, true); until.IsZero() {
		t.Fatal("2 failures of 4 at ratio 0.5 did not open")
	}
	if b.closed() {
		t.Fatal("breaker reports closed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := b.enter(ctx); err == nil {
		t.Fatal("enter passed an open circuit")
	}
}

func TestFanOutOneFailing(t *testing.T) {
	e := newEnv(t)
	ok1, ok2 := newSink(t, nil), newSink(t, nil)
	bad := newSink(t, status(500))
	e.start(fast("a", ok1.srv.URL))
	e.start(fast("b", ok2.srv.URL))
	cfgBad := fast("c", bad.srv.URL)
	cfgBad.MaxAttempts = 2
	e.start(cfgBad)
	const n = 5
	for i := range n {
		e.publish("x:"+itoa(i), "x", "t", []byte(`{"i":`+itoa(i)+`}`), nil)
	}
	dl := e.dlq(n, 10*time.Second)
	if len(dl) != n {
		t.Fatalf("dead letters = %d, want %d", len(dl), n)
	}
	for _, m := range dl {
		if m.Header.Get(event.HeaderDLQDestination) != "c" || !strings.HasPrefix(m.Subject, "webhooks_dlq.c.") {
			t.Errorf("dead letter %s from %q", m.Subject, m.Header.Get(event.HeaderDLQDestination))
		}
	}
	for i := range n {
		id := "x:" + itoa(i)
		waitState(t, e, id, "a", StatusDelivered)
		waitState(t, e, id, "b", StatusDelivered)
		waitState(t, e, id, "c", StatusFailed)
		if ok1.count(id) != 1 || ok2.count(id) != 1 || bad.count(id) != 2 {
			t.Errorf("%s: calls a=%d b=%d c=%d, want 1 1 2", id, ok1.count(id), ok2.count(id), bad.count(id))
		}
		ds, err := ReadDeliveries(context.Background(), e.js, id)
		if err != nil || len(ds) != 3 || ds[0].Destination != "a" || ds[2].Status != StatusFailed {
			t.Errorf("ReadDeliveries(%s) = %+v, %v", id, ds, err)
		}
	}
}
