package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// outcome is what a request's answer says about its event, in the sense of
// Jepsen's checkers: ok (stored), failed (definitely not stored), unknown.
type outcome int

const (
	outcomeOK      outcome = iota // a 2xx: the event must be stored and delivered
	outcomeFailed                 // a definite non-2xx, or a connection refused
	outcomeUnknown                // a timeout or a reset: stored or not
)

func (o outcome) String() string {
	return [...]string{"ok", "failed", "unknown"}[o]
}

// recorder records every request's outcome by event id.
type recorder struct {
	seq atomic.Int64

	mu       sync.Mutex
	outcomes map[string]outcome
	// statuses counts non-2xx answers by "<status> <problem type>", and
	// transport errors by a short class.
	statuses map[string]int
	// okTimes are the times of 2xx answers, in arrival order per worker.
	okTimes []time.Time
	// latencies are the 2xx answers' durations with the time they were
	// sent, for percentiles over windows.
	latencies []timedLatency
}

type timedLatency struct {
	at time.Time
	d  time.Duration
}

func newRecorder() *recorder {
	return &recorder{outcomes: map[string]outcome{}, statuses: map[string]int{}}
}

// nextID returns a fresh event id with prefix.
func (r *recorder) nextID(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, r.seq.Add(1))
}

// post sends one event with id and records the outcome. hdr adds headers.
func (r *recorder) post(ctx context.Context, c *http.Client, url, id string, hdr map[string]string) outcome {
	body := fmt.Appendf(nil, `{"id":%q,"pad":"%s"}`, id, strings.Repeat("x", 200))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		panic(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Id", id)
	req.Header.Set("X-Type", "load")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		o, class := classify(err)
		r.record(id, o, class, start, 0)
		return o
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		r.record(id, outcomeOK, "", start, time.Since(start))
		return outcomeOK
	}
	key := fmt.Sprintf("%d %s", resp.StatusCode, problemType(b))
	if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
		key += " (no Retry-After!)"
	}
	r.record(id, outcomeFailed, key, start, 0)
	return outcomeFailed
}

// problemType extracts the short problem type from an RFC 9457 body.
func problemType(b []byte) string {
	_, after, ok := bytes.Cut(b, []byte(`"type":"`))
	if !ok {
		return "(no problem body)"
	}
	t, _, _ := bytes.Cut(after, []byte(`"`))
	return strings.TrimPrefix(string(t), "urn:hookgate:problem:")
}

// classify sorts a transport error: a refused connection never reached the
// gateway (failed); anything else may have (unknown).
func classify(err error) (outcome, string) {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return outcomeFailed, "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return outcomeUnknown, "connection reset"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return outcomeUnknown, "timeout"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return outcomeUnknown, "timeout"
	}
	// Keep the error's last words ("server closed idle connection"),
	// not the addresses before them.
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		msg = msg[i+2:]
	}
	return outcomeUnknown, "transport error: " + msg
}

func (r *recorder) record(id string, o outcome, class string, start time.Time, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.outcomes[id] = o
	if o == outcomeOK {
		r.okTimes = append(r.okTimes, start.Add(d))
		r.latencies = append(r.latencies, timedLatency{start, d})
		return
	}
	r.statuses[class]++
}

// ids returns the ids with outcome o.
func (r *recorder) ids(o outcome) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for id, x := range r.outcomes {
		if x == o {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// count returns how many requests had outcome o.
func (r *recorder) count(o outcome) int { return len(r.ids(o)) }

// firstOKAfter returns the first 2xx answer after t, or the zero time.
func (r *recorder) firstOKAfter(t time.Time) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	var first time.Time
	for _, x := range r.okTimes {
		if x.After(t) && (first.IsZero() || x.Before(first)) {
			first = x
		}
	}
	return first
}

// latency returns the p50 and p99 of 2xx answers sent in [from, to).
func (r *recorder) latency(from, to time.Time) (p50, p99 time.Duration, n int) {
	r.mu.Lock()
	var ds []time.Duration
	for _, l := range r.latencies {
		if !l.at.Before(from) && l.at.Before(to) {
			ds = append(ds, l.d)
		}
	}
	r.mu.Unlock()
	if len(ds) == 0 {
		return 0, 0, 0
	}
	slices.Sort(ds)
	return ds[len(ds)/2], ds[len(ds)*99/100], len(ds)
}

// statusCounts returns a copy of the non-2xx counts.
func (r *recorder) statusCounts() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.statuses)
}

// load posts events from workers goroutines until ctx ends, each worker
// waiting pause between requests. The URL is read on every request, so a
// caller may point the load elsewhere.
type load struct {
	rec     *recorder
	url     func() string
	workers int
	pause   time.Duration
	prefix  string
	client  *http.Client
	wg      sync.WaitGroup
}

// newLoadClient returns a client with keep-alive connections and a timeout
// longer than the gateway's publish timeout.
func newLoadClient(workers int) *http.Client {
	return &http.Client{
		Timeout: 15 * time.Second,
		Transport: &http.Transport{
			MaxIdleConnsPerHost: workers,
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		},
	}
}

// start starts the workers.
func (l *load) start(ctx context.Context) {
	if l.client == nil {
		l.client = newLoadClient(l.workers)
	}
	for range l.workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				o := l.rec.post(context.Background(), l.client, l.url(), l.rec.nextID(l.prefix), nil)
				if o == outcomeFailed && l.pause == 0 {
					time.Sleep(5 * time.Millisecond) // the gateway is down: do not spin
				}
				if l.pause > 0 {
					time.Sleep(l.pause)
				}
			}
		}()
	}
}

// wait waits for the workers to finish their last request.
func (l *load) wait() { l.wg.Wait() }
