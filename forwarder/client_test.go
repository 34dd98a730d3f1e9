package forwarder

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookgate/hookgate/event"
)

// TestStaleKeepAliveIsResent delivers through a destination that closes
// idle keep-alive connections after 50ms, far sooner than the client's
// idle timeout. The second event meets a connection the destination has
// closed; it is sent again on a new connection within the same attempt, so
// it costs no retry and no failure in its state.
func TestStaleKeepAliveIsResent(t *testing.T) {
	e := newEnv(t)
	var conns atomic.Int64
	var mu sync.Mutex
	attempts := map[string][]string{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		id := r.Header.Get(event.HeaderWebhookID)
		attempts[id] = append(attempts[id], r.Header.Get(event.HeaderWebhookAttempt))
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	srv.Config.IdleTimeout = 50 * time.Millisecond
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	e.start(fast("stale", srv.URL))

	for i, id := range []string{"x:1", "x:2", "x:3"} {
		if i > 0 {
			time.Sleep(300 * time.Millisecond) // the destination closes the idle connection
		}
		e.publish(id, "x", "t", []byte(`{}`), nil)
		st := waitState(t, e, id, "stale", StatusDelivered)
		if st.Attempts != 1 || st.LastError != "" {
			t.Errorf("%s: %d attempts, last error %q; want 1 attempt and no error", id, st.Attempts, st.LastError)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, id := range []string{"x:1", "x:2", "x:3"} {
		if got := attempts[id]; len(got) != 1 || got[0] != "1" {
			t.Errorf("%s reached the destination as attempts %v, want [1]", id, got)
		}
	}
	if n := conns.Load(); n != 3 {
		t.Errorf("%d connections, want 3: one per event, each after the last was closed idle", n)
	}
}

// TestLargeResponseBody: a destination answering with more than drainLimit
// of body is judged by its status; the body is not read to its end.
func TestLargeResponseBody(t *testing.T) {
	e := newEnv(t)
	big := bytes.Repeat([]byte("x"), 4*drainLimit)
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_, _ = w.Write(big)
	}))
	t.Cleanup(srv.Close)
	e.start(fast("big", srv.URL))
	e.publish("x:1", "x", "t", []byte(`{}`), nil)
	st := waitState(t, e, "x:1", "big", StatusDelivered)
	if st.Attempts != 2 || st.LastStatusCode != 200 {
		t.Errorf("state = %+v, want delivered on the second attempt with 200", st)
	}
}

// TestURLSentAsConfigured: the destination's path and query reach it
// byte for byte, not cleaned; an event without a content type is sent
// without one.
func TestURLSentAsConfigured(t *testing.T) {
	e := newEnv(t)
	type seen struct{ uri, ctype string }
	got := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.RequestURI, r.Header.Get("Content-Type")}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	const path = "/hooks//in/../v1/%7Eteam?a=1&b=%2F"
	e.start(fast("raw", srv.URL+path))
	e.publish("x:1", "x", "t", []byte("plain"), map[string]string{event.HeaderContentType: ""})
	select {
	case s := <-got:
		if s.uri != path {
			t.Errorf("request URI = %q, want %q", s.uri, path)
		}
		if s.ctype != "" {
			t.Errorf("Content-Type = %q, want none", s.ctype)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no delivery")
	}
}

// TestEarlyAnswerToLargeBody: a destination that answers 413 before
// reading the body, and closes the connection, is heard whatever the
// body's size: the event is dead-lettered as rejected at once, not retried
// on a broken pipe.
func TestEarlyAnswerToLargeBody(t *testing.T) {
	e := newEnv(t)
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusRequestEntityTooLarge)
	}))
	t.Cleanup(srv.Close)
	e.start(fast("early", srv.URL))
	for i, n := range []int{largeBody / 2, 2 * largeBody, 4 << 20} {
		id := "x:" + itoa(i)
		e.publish(id, "x", "t", bytes.Repeat([]byte("a"), n), nil)
		st := waitState(t, e, id, "early", StatusFailed)
		if st.Attempts != 1 || st.LastStatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("%d bytes: %d attempts, status %d, error %q; want 1 attempt answered 413", n, st.Attempts, st.LastStatusCode, st.LastError)
		}
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}
}

// recorder is an Observer that remembers what it was told.
type recorder struct {
	mu       sync.Mutex
	attempts []string
	dead     []string
}

func (r *recorder) Attempted(outcome string, latency time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if latency <= 0 {
		outcome += " without latency"
	}
	r.attempts = append(r.attempts, outcome)
}

func (r *recorder) Filtered() {}

func (r *recorder) DeadLettered(reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dead = append(r.dead, reason)
}

func (r *recorder) snapshot() (attempts, dead []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.attempts...), append([]string(nil), r.dead...)
}

// TestObserver: the observer hears every attempt's outcome and every dead
// letter's reason.
func TestObserver(t *testing.T) {
	e := newEnv(t)
	script := map[string][]int{"retry": {503, 503, 200}, "reject": {400}, "gone": {410, 200}}
	var mu sync.Mutex
	calls := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/")
		mu.Lock()
		codes := script[name]
		code := codes[min(calls[name], len(codes)-1)]
		calls[name]++
		mu.Unlock()
		w.WriteHeader(code)
	}))
	t.Cleanup(srv.Close)
	recs := map[string]*recorder{}
	fs := map[string]*Forwarder{}
	for name := range script {
		cfg := fast(name, srv.URL+"/"+name)
		cfg.Subjects = []string{"webhooks.v1." + name + ".>"}
		recs[name] = &recorder{}
		cfg.Observer = recs[name]
		fs[name] = e.start(cfg)
		e.publish(name+":1", name, "t", []byte(`{}`), nil)
	}
	waitState(t, e, "retry:1", "retry", StatusDelivered)
	waitState(t, e, "reject:1", "reject", StatusFailed)
	waitFor(t, 5*time.Second, "the 410's pause", func() bool {
		st, err := fs["gone"].Status(context.Background())
		return err == nil && st.Paused
	})
	if err := fs["gone"].Resume(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitState(t, e, "gone:1", "gone", StatusDelivered)

	for name, want := range map[string]struct{ attempts, dead []string }{
		"retry":  {attempts: []string{"error", "error", "delivered"}},
		"reject": {attempts: []string{"rejected"}, dead: []string{"rejected"}},
		"gone":   {attempts: []string{"gone", "delivered"}},
	} {
		a, d := recs[name].snapshot()
		if !slices.Equal(a, want.attempts) || !slices.Equal(d, want.dead) {
			t.Errorf("%s: attempts %v, dead letters %v; want %v, %v", name, a, d, want.attempts, want.dead)
		}
	}
}
