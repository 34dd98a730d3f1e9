package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
	"github.com/valyala/fasthttp"
)

// workload is what every request of a run carries: the same body and,
// per request, a fresh delivery id (Hookgate would answer a repeated id
// as a duplicate without storing it).
type workload struct {
	url    string
	body   []byte
	signed bool
	sig    string
	seq    atomic.Int64 // requests sent (delivery ids taken)
	stored atomic.Int64 // requests answered 2xx (fresh ids: events stored)
}

func newWorkload(addr string, c config, bodySize int) *workload {
	body := bytes.Repeat([]byte("x"), bodySize)
	copy(body, `{"action":"opened","number":1,"pad":"`)
	body[len(body)-2], body[len(body)-1] = '"', '}'
	mac := hmac.New(sha256.New, []byte(benchSecret))
	mac.Write(body)
	return &workload{
		url:    "http://" + addr + c.Path,
		body:   body,
		signed: c.Signed,
		sig:    "sha256=" + hex.EncodeToString(mac.Sum(nil)),
	}
}

// headers calls set for each header of the next request.
func (w *workload) headers(set func(k, v string)) {
	id := strconv.FormatInt(w.seq.Add(1), 10)
	set("Content-Type", "application/json")
	if w.signed {
		set("X-Hub-Signature-256", w.sig)
		set("X-GitHub-Event", "pull_request")
		set("X-GitHub-Delivery", id)
		return
	}
	set("X-Id", id)
}

// probe sends one request and fails unless it is answered 2xx.
func (w *workload) probe() error {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	w.fill(req)
	w.headers(req.Header.Set)
	if err := fasthttp.DoTimeout(req, resp, 5*time.Second); err != nil {
		return err
	}
	if resp.StatusCode()/100 != 2 {
		return fmt.Errorf("probe: status %d", resp.StatusCode())
	}
	w.stored.Add(1)
	return nil
}

// fill sets what every request carries; headers sets the rest (and takes
// a delivery id, so that w.seq counts the requests sent).
func (w *workload) fill(req *fasthttp.Request) {
	req.SetRequestURI(w.url)
	req.Header.SetMethod(http.MethodPost)
	req.SetBodyRaw(w.body)
}

// closedResult is what a closed-loop run measured.
type closedResult struct {
	Requests int64
	Failed   int64
	Elapsed  time.Duration
	P50, P99 time.Duration
}

// closedLoop runs conns clients for d, each sending its next request as
// soon as the previous one is answered, over its own kept-alive
// connection (fasthttp's HostClient, the lightest client at hand, so the
// load generator's core is not the limit).
func closedLoop(w *workload, conns int, d time.Duration) closedResult {
	deadline := time.Now().Add(d)
	return closedLoopWhile(w, conns, func() bool { return time.Now().Before(deadline) })
}

// closedLoopUntil is closedLoop until the workload has sent n requests in
// all (w.seq reaches n; the last round of clients may send up to conns
// more).
func closedLoopUntil(w *workload, conns int, n int64) closedResult {
	return closedLoopWhile(w, conns, func() bool { return w.seq.Load() < n })
}

// closedLoopWhile is closedLoop for as long as more says so; every client
// asks it before each request.
func closedLoopWhile(w *workload, conns int, more func() bool) closedResult {
	hc := &fasthttp.HostClient{
		Addr:                     w.url[len("http://"):indexPath(w.url)],
		MaxConns:                 conns,
		MaxIdleConnDuration:      time.Minute,
		NoDefaultUserAgentHeader: true,
	}
	var (
		failed atomic.Int64
		mu     sync.Mutex
		lat    []time.Duration
		wg     sync.WaitGroup
	)
	start := time.Now()
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := client(hc, w, more, &failed)
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	r := closedResult{Requests: int64(len(lat)), Failed: failed.Load(), Elapsed: time.Since(start)}
	slices.Sort(lat)
	if len(lat) > 0 {
		r.P50, r.P99 = lat[len(lat)/2], lat[len(lat)*99/100]
	}
	return r
}

// client sends requests while more says so and returns the latencies of
// the 2xx answers; the others count as failed.
func client(hc *fasthttp.HostClient, w *workload, more func() bool, failed *atomic.Int64) []time.Duration {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	w.fill(req)
	local := make([]time.Duration, 0, 1<<14)
	for more() {
		t0 := time.Now()
		w.headers(req.Header.Set)
		err := hc.DoTimeout(req, resp, 30*time.Second)
		if err != nil || resp.StatusCode()/100 != 2 {
			failed.Add(1)
			continue
		}
		local = append(local, time.Since(t0))
		w.stored.Add(1)
	}
	return local
}

// indexPath returns where the path of an http:// URL starts.
func indexPath(url string) int {
	return len("http://") + strings.IndexByte(url[len("http://"):], '/')
}

// rateResult is what a constant-rate run measured.
type rateResult struct {
	Offered  float64
	Achieved float64
	Requests uint64
	Failed   uint64
	P50, P99 time.Duration
	Max      time.Duration
}

// pacer offers a constant rate with vegeta (open loop: a request is sent
// on schedule whether or not earlier ones were answered, so a slow answer
// shows in the latency instead of slowing the load). One pacer keeps its
// kept-alive connections from one run to the next, so a warm-up run with
// it opens the connections the measured run uses.
type pacer struct {
	w    *workload
	rate int
	// client is shared by the pacer's runs (a vegeta Attacker stops for
	// good after one attack): its transport keeps the connections alive.
	client *http.Client
}

func newPacer(w *workload, rate int) *pacer {
	tr := &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}
	return &pacer{w: w, rate: rate, client: &http.Client{
		Transport:     tr,
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// constantRate offers rate requests/s for d with a fresh pacer.
func constantRate(w *workload, rate int, d time.Duration) rateResult {
	return newPacer(w, rate).run(d)
}

// run offers p.rate requests/s for d.
func (p *pacer) run(d time.Duration) rateResult {
	w := p.w
	targeter := func(t *vegeta.Target) error {
		t.Method, t.URL, t.Body = http.MethodPost, w.url, w.body
		t.Header = http.Header{}
		w.headers(t.Header.Set)
		return nil
	}
	var m vegeta.Metrics
	atk := vegeta.NewAttacker(vegeta.Client(p.client))
	for res := range atk.Attack(targeter, vegeta.Rate{Freq: p.rate, Per: time.Second}, d, "compare") {
		m.Add(res)
		if res.Code/100 == 2 {
			w.stored.Add(1)
		}
	}
	m.Close()
	var ok uint64
	for code, n := range m.StatusCodes {
		if len(code) == 3 && code[0] == '2' {
			ok += uint64(n)
		}
	}
	return rateResult{
		Offered:  m.Rate,
		Achieved: m.Throughput,
		Requests: m.Requests,
		Failed:   m.Requests - ok,
		P50:      m.Latencies.P50,
		P99:      m.Latencies.P99,
		Max:      m.Latencies.Max,
	}
}
