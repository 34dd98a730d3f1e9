package main

import (
	"io"
	"maps"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// sinkMode is how the sink answers.
type sinkMode int32

const (
	sinkOK    sinkMode = iota // 204
	sink503                   // 503, no Retry-After
	sinkReset                 // the connection is reset without an answer
	sinkHang                  // no answer until the mode changes or the caller gives up
)

func (m sinkMode) String() string {
	return [...]string{"ok", "503", "reset", "hang"}[m]
}

// sink is the destination: a loopback HTTP server that records every
// attempt and every delivery (a 2xx answered) by Idempotency-Key.
type sink struct {
	srv  *http.Server
	ln   net.Listener
	mode atomic.Int32
	// refuse, when set, is answered 503 for ids it returns true for,
	// whatever the mode.
	refuse func(id string) bool

	mu        sync.Mutex
	delivered map[string]int       // Idempotency-Key → 2xx answers
	firstAt   map[string]time.Time // Idempotency-Key → first 2xx answer
	attempts  []time.Time          // every request, in arrival order
	firstOK   []time.Time          // time of each delivery
	modeSince time.Time            // when the mode last changed
	changed   chan struct{}        // closed on each mode change
}

// newSink starts a sink on a free loopback port.
func newSink() (*sink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &sink{ln: ln, delivered: map[string]int{}, firstAt: map[string]time.Time{}, changed: make(chan struct{}), modeSince: time.Now()}
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln)
	return s, nil
}

// url is where destinations post.
func (s *sink) url() string { return "http://" + s.ln.Addr().String() + "/hooks" }

// close stops the sink.
func (s *sink) close() { s.srv.Close() }

// setMode changes how the sink answers from now on.
func (s *sink) setMode(m sinkMode) {
	s.mu.Lock()
	s.mode.Store(int32(m))
	s.modeSince = time.Now()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

func (s *sink) serve(w http.ResponseWriter, r *http.Request) {
	id := r.Header.Get("Idempotency-Key")
	_, _ = io.Copy(io.Discard, r.Body)
	s.mu.Lock()
	s.attempts = append(s.attempts, time.Now())
	changed := s.changed
	s.mu.Unlock()
	if s.refuse != nil && s.refuse(id) {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	switch sinkMode(s.mode.Load()) {
	case sink503:
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	case sinkReset:
		resetConn(w)
		return
	case sinkHang:
		select {
		case <-changed:
			// Recovered while this request hung: answer it as the
			// new mode would, if that is ok.
			if sinkMode(s.mode.Load()) != sinkOK {
				resetConn(w)
				return
			}
		case <-r.Context().Done():
			return
		}
	}
	s.mu.Lock()
	s.delivered[id]++
	if s.delivered[id] == 1 {
		s.firstAt[id] = time.Now()
	}
	s.firstOK = append(s.firstOK, time.Now())
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// resetConn closes the request's connection with a TCP reset.
func resetConn(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("sink: response writer cannot hijack")
	}
	c, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}

// deliveries returns a copy of the per-key delivery counts.
func (s *sink) deliveries() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.delivered)
}

// has reports whether every id in ids was delivered at least once; the
// sink's keys are event ids "demo:<id>".
func (s *sink) has(ids []string) (missing int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		if s.delivered[eventID(id)] == 0 {
			missing++
		}
	}
	return missing
}

// eventID is the gateway's id of the demo event posted with X-Id id.
func eventID(id string) string { return "demo:" + id }

// postID is the X-Id an event id of the demo source was posted with.
func postID(eid string) string { return strings.TrimPrefix(eid, "demo:") }

// attemptRate returns the highest number of attempts in any one second of
// [from, to), and the total in it.
func (s *sink) attemptRate(from, to time.Time) (peak, total int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	buckets := map[int64]int{}
	for _, t := range s.attempts {
		if !t.Before(from) && t.Before(to) {
			total++
			b := t.Sub(from).Milliseconds() / 1000
			buckets[b]++
			peak = max(peak, buckets[b])
		}
	}
	return peak, total
}

// firstDeliveryAfter returns the first delivery at or after t, or zero.
func (s *sink) firstDeliveryAfter(t time.Time) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range s.firstOK {
		if !x.Before(t) {
			return x
		}
	}
	return time.Time{}
}

// waitDelivered waits for every id to be delivered, giving up once d
// passes without progress, and returns how many are still missing. A
// large backlog may take long; a stuck one fails after d.
func (s *sink) waitDelivered(ids []string, d time.Duration) int {
	last, deadline := -1, time.Now().Add(d)
	for {
		missing := s.has(ids)
		if missing == 0 || time.Now().After(deadline) {
			return missing
		}
		if missing != last {
			last, deadline = missing, time.Now().Add(d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// deliveredAt returns when the event posted with id was first delivered,
// or the zero time.
func (s *sink) deliveredAt(id string) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.firstAt[eventID(id)]
}
