package forwarder

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookgate/hookgate/event"
)

// TestOrderedByKey delivers 4 keys × 10 events through 8 workers with
// random latency and a failed first attempt on every third event: per key,
// the sink must see the events accepted in publish order and never two of
// a key at once, while different keys run in parallel.
func TestOrderedByKey(t *testing.T) {
	e := newEnv(t)
	var mu sync.Mutex
	inKey := map[string]int{}
	overlap := 0
	var accepted = map[string][]string{}
	s := newSink(t, nil)
	s.reply = func(h http.Header, n int) (int, map[string]string) {
		return 200, nil
	}
	s.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("X-Shop")
		id := r.Header.Get(event.HeaderWebhookID)
		mu.Lock()
		inKey[key]++
		if inKey[key] > 1 {
			overlap++
		}
		mu.Unlock()
		s.serve(w, r) // records, holds, and answers
		mu.Lock()
		inKey[key]--
		mu.Unlock()
		_ = id
	})
	s.hold = 3 * time.Millisecond
	s.reply = func(h http.Header, n int) (int, map[string]string) {
		id := h.Get(event.HeaderWebhookID)
		num := id[strings.LastIndexByte(id, '-')+1:]
		if n == 1 && (num == "0" || num == "3" || num == "6" || num == "9") {
			return 503, nil
		}
		mu.Lock()
		accepted[h.Get("X-Shop")] = append(accepted[h.Get("X-Shop")], id)
		mu.Unlock()
		return 200, nil
	}
	cfg := fast("ord", s.srv.URL)
	cfg.Concurrency = 8
	cfg.OrderedBy = "x-shop"
	cfg.MaxAttempts = 5
	e.start(cfg)
	keys := []string{"k0", "k1", "k2", "k3"}
	for i := range 10 {
		for _, k := range keys {
			e.publish("s:"+k+"-"+itoa(i), "s", "t", []byte(`{}`), map[string]string{"X-Shop": k})
		}
	}
	waitFor(t, 20*time.Second, "40 deliveries", func() bool { return s.ackedCount() == 40 })
	mu.Lock()
	defer mu.Unlock()
	if overlap > 0 {
		t.Errorf("%d times two events of one key were in flight together", overlap)
	}
	for _, k := range keys {
		got := accepted[k]
		for i, id := range got {
			if want := "s:" + k + "-" + itoa(i); id != want {
				t.Errorf("key %s: accepted #%d is %s, want %s (order %v)", k, i, id, want, got)
				break
			}
		}
	}
	s.mu.Lock()
	peak := s.maxInFlight
	s.mu.Unlock()
	if peak < 2 {
		t.Errorf("peak in flight %d: keys did not run in parallel", peak)
	}
}

// TestDeliveryStateSteps reads the state at each step of one event's life:
// delivering (a slow attempt), retrying with the next attempt's time,
// delivered.
func TestDeliveryStateSteps(t *testing.T) {
	e := newEnv(t)
	s := newSink(t, func(h http.Header, n int) (int, map[string]string) {
		if n == 1 {
			return 502, nil
		}
		return 200, nil
	})
	s.hold = 400 * time.Millisecond
	cfg := fast("st", s.srv.URL)
	cfg.Schedule = []time.Duration{2 * time.Second}
	f, err := New(e.js, cfg, e.log)
	if err != nil {
		t.Fatal(err)
	}
	f.slowAfter = 100 * time.Millisecond
	if err := f.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Stop(context.Background()) })

	if _, err := ReadDelivery(context.Background(), e.js, "x:1", "st"); err != ErrNoDelivery {
		t.Fatalf("before publishing: %v, want ErrNoDelivery (pending)", err)
	}
	e.publish("x:1", "x", "order.created", []byte(`{}`), nil)
	st := waitState(t, e, "x:1", "st", StatusDelivering)
	if st.Attempts != 0 || st.Event != "order.created" {
		t.Errorf("delivering: %+v", st)
	}
	st = waitState(t, e, "x:1", "st", StatusRetrying)
	if st.Attempts != 1 || st.RetryAttempts != 0 || st.LastStatusCode != 502 || st.LastError != "HTTP 502 Bad Gateway" ||
		st.NextRetryAt == nil || st.LastLatency < Duration(400*time.Millisecond) {
		t.Errorf("retrying: %+v", st)
	}
	if st.NextRetryIn != "2 seconds" && st.NextRetryIn != "1 second" {
		t.Errorf("next_retry_in = %q", st.NextRetryIn)
	}
	st = waitState(t, e, "x:1", "st", StatusDelivered)
	if st.Attempts != 2 || st.RetryAttempts != 1 || st.LastStatusCode != 200 || st.DeliveredAt == nil || st.NextRetryAt != nil {
		t.Errorf("delivered: %+v", st)
	}
}

// TestStopMidDeliveryRedelivers stops a forwarder while its attempt is
// still running: the attempt is aborted and Nak'd, a second forwarder
// redelivers it, and the sink's idempotency check applies it once.
func TestStopMidDeliveryRedelivers(t *testing.T) {
	e := newEnv(t)
	var mu sync.Mutex
	applied := map[string]int{}
	calls := 0
	s := newSink(t, nil)
	s.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		first := calls == 1
		mu.Unlock()
		if first {
			// Slow enough that the forwarder is stopped mid-call; the
			// work is applied only if the caller is still there.
			select {
			case <-time.After(3 * time.Second):
			case <-r.Context().Done():
				return
			}
		}
		mu.Lock()
		applied[r.Header.Get(event.HeaderIdempotencyKey)]++
		mu.Unlock()
		w.WriteHeader(200)
	})
	cfg := fast("stop", s.srv.URL)
	a, err := New(e.js, cfg, e.log)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.publish("x:1", "x", "t", []byte(`{}`), nil)
	waitFor(t, 5*time.Second, "the first call", func() bool { mu.Lock(); defer mu.Unlock(); return calls == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	start := time.Now()
	err = a.Stop(ctx)
	cancel()
	if took := time.Since(start); took > 400*time.Millisecond {
		t.Errorf("Stop took %v with a 300ms grace period", took)
	}
	t.Logf("stop: %v", err)

	b := e.start(cfg)
	_ = b
	waitState(t, e, "x:1", "stop", StatusDelivered)
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if applied["x:1"] != 1 || calls != 2 {
		t.Errorf("applied %d times over %d calls, want 1 over 2", applied["x:1"], calls)
	}
	info, err := mustConsumer(t, e, "fwd-stop").Info(context.Background())
	if err != nil || info.NumAckPending != 0 || info.AckFloor.Stream != 1 {
		t.Errorf("consumer: ack pending %d, ack floor %d (%v)", info.NumAckPending, info.AckFloor.Stream, err)
	}
}

// TestReloadOverlap runs a second forwarder of the same destination next
// to the first, then stops the first, while events flow: every event is
// acked, none is lost, and the sink sees each once.
func TestReloadOverlap(t *testing.T) {
	e := newEnv(t)
	s := newSink(t, nil)
	s.hold = 2 * time.Millisecond
	cfg := fast("rl", s.srv.URL)
	old, err := New(e.js, cfg, e.log)
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 300 {
			e.publish("x:"+itoa(i), "x", "t", []byte(`{}`), nil)
		}
	}()
	time.Sleep(50 * time.Millisecond)
	cfg.Concurrency = 4 // the reload changes the config
	e.start(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	if err := old.Stop(ctx); err != nil {
		t.Errorf("stop old: %v", err)
	}
	cancel()
	<-done
	waitFor(t, 10*time.Second, "300 delivered", func() bool { return s.ackedCount() == 300 })
	time.Sleep(100 * time.Millisecond)
	s.mu.Lock()
	dup := s.duplicates
	s.mu.Unlock()
	if dup != 0 {
		t.Errorf("%d duplicate deliveries across the reload", dup)
	}
}

// TestAdvisorySafetyNet makes JetStream run out of deliveries while no
// forwarder finishes the event (a crash during the last attempts, played
// by a bare consumer that takes deliveries and drops them): the next
// forwarder dead-letters it from the stored advisory.
func TestAdvisorySafetyNet(t *testing.T) {
	e := newEnv(t)
	s := newSink(t, nil)
	cfg := fast("adv", s.srv.URL)
	cfg.MaxAttempts = 1 // MaxDeliver 4
	f, err := New(e.js, cfg, e.log)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := f.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.publish("x:1", "x", "t", []byte(`{"lost":true}`), nil)
	cons := mustConsumer(t, e, "fwd-adv")
	for i := range f.maxDeliver {
		batch, err := cons.Fetch(1, jetstreamFetchWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			_ = m.Nak() // the "crashed" forwarder never finishes it
		}
		_ = i
	}
	e.start(cfg)
	dl := e.dlq(1, 15*time.Second)
	if len(dl) != 1 {
		t.Fatalf("dead letters = %d, want 1", len(dl))
	}
	if r := dl[0].Header.Get(event.HeaderDLQReason); r != "max_deliveries" || string(dl[0].Data) != `{"lost":true}` {
		t.Errorf("dead letter reason %q body %s", r, dl[0].Data)
	}
	st := waitState(t, e, "x:1", "adv", StatusFailed)
	if st.Reason != "max_deliveries" {
		t.Errorf("state %+v", st)
	}
	if s.total() != 0 {
		t.Errorf("sink got %d calls", s.total())
	}
}

func TestSignedDelivery(t *testing.T) {
	e := newEnv(t)
	s := newSink(t, nil)
	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	cfg := fast("sig", s.srv.URL)
	cfg.SignSecret = secret
	e.start(cfg)
	body := []byte(`{"a":1}`)
	e.publish("x:1", "x", "t", body, nil)
	waitFor(t, 5*time.Second, "delivery", func() bool { return s.count("x:1") == 1 })
	h := s.get("x:1")[0].header
	ts := h.Get("Webhook-Timestamp")
	mac := hmac.New(sha256.New, []byte("0123456789abcdef0123456789abcdef"))
	mac.Write([]byte("x:1." + ts + "." + string(body)))
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	if h.Get("Webhook-Id") != "x:1" || h.Get("Webhook-Signature") != want {
		t.Errorf("webhook-id %q, signature %q, want %q", h.Get("Webhook-Id"), h.Get("Webhook-Signature"), want)
	}
	if d := time.Since(time.Unix(atoi(t, ts), 0)); d < -time.Second || d > 5*time.Second {
		t.Errorf("webhook-timestamp %s is %v off", ts, d)
	}
}
