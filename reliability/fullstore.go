package main

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"time"
)

// fullResult is the outcome of filling the store.
type fullResult struct {
	report
	// fillCounts counts the answers; Slowest503 far below publish_timeout
	// means the gateway knew at once.
	fillCounts
	// PublishTimeout is the handler's publish_timeout in this run.
	PublishTimeout time.Duration `json:"publish_timeout"`
}

// fullStorePublishTimeout is long, so a 503 that waited for it stands out.
const fullStorePublishTimeout = 20 * time.Second

// runFullStore posts into a gateway whose max_store is tiny until it says
// 503, goes on posting, and checks: no 2xx once full, Retry-After on every
// 503, every acknowledged event stored.
func runFullStore(bin, dir string, after int, logf func(string, ...any)) (*fullResult, error) {
	cfg := newGWConfig(filepath.Join(dir, "fullstore"))
	cfg.MaxStore = "256KiB"
	cfg.Ingest = fmt.Sprintf("\t\tpublish_timeout %s\n\t\tretry_after 7s", fullStorePublishTimeout)
	rec := newRecorder()
	g, err := startReady(bin, cfg, 60*time.Second, rec)
	if err != nil {
		return nil, err
	}
	defer g.stop()
	res := &fullResult{PublishTimeout: fullStorePublishTimeout}
	// max_store promises a 503 to every request once full: a refusal
	// without an answer counts as one without Retry-After.
	full := res.postUntilFull(rec, newLoadClient(1), g.demoURL(), "full", 100000, after, true)
	logf("store full after %d events; %d more requests, %d of them 2xx", res.AckedBeforeFull, res.RefusedAfterFull, res.OKAfterFull)
	if !full {
		return nil, fmt.Errorf("the store never filled: %d events acknowledged", res.AckedBeforeFull)
	}
	if res.report, err = checkStored(rec, cfg, nil, 0); err != nil {
		return nil, err
	}
	return res, nil
}

// fillCounts counts the answers while a scenario fills the store until the
// gateway refuses.
type fillCounts struct {
	// AckedBeforeFull counts 2xx answers before the first refusal.
	AckedBeforeFull int `json:"acked_before_full"`
	// RefusedAfterFull counts requests from the first refusal on;
	// OKAfterFull those of them answered 2xx (a false 2xx).
	RefusedAfterFull int `json:"refused_after_full"`
	OKAfterFull      int `json:"ok_after_full"`
	// MissingRetryAfter counts 503s without Retry-After: must be 0.
	MissingRetryAfter int `json:"missing_retry_after"`
	// Slowest503 is the longest a refusal took.
	Slowest503 time.Duration `json:"slowest_503"`
}

// postUntilFull posts events with ids "<prefix>-<n>" to url one at a time
// through c (one client, one request at a time: once refused, a later 2xx
// can only be a false one), at most maxPosts, until refusedAfter requests
// followed the first refusal. A refusal without an answer (a transport
// error) counts as missing Retry-After when noAnswerMissing is set. It
// reports whether the gateway refused at all.
func (f *fillCounts) postUntilFull(rec *recorder, c *http.Client, url, prefix string, maxPosts, refusedAfter int, noAnswerMissing bool) (full bool) {
	for i := 0; i < maxPosts && f.RefusedAfterFull < refusedAfter; i++ {
		o, hdr, d := postTimed(rec, c, url, rec.nextID(prefix))
		switch {
		case o == outcomeOK && !full:
			f.AckedBeforeFull++
		case o == outcomeOK:
			f.OKAfterFull++
			f.RefusedAfterFull++
		default:
			full = true
			f.RefusedAfterFull++
			f.Slowest503 = max(f.Slowest503, d)
			if (hdr != nil || noAnswerMissing) && hdr.Get("Retry-After") == "" {
				f.MissingRetryAfter++
			}
		}
	}
	return full
}

// postTimed posts one event and returns its outcome, the answer's headers
// (nil on a transport error) and how long it took.
func postTimed(rec *recorder, c *http.Client, url, id string) (outcome, http.Header, time.Duration) {
	var hdr http.Header
	tc := *c
	tr := c.Transport
	tc.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
		resp, err := tr.RoundTrip(r)
		if err == nil {
			hdr = resp.Header
		}
		return resp, err
	})
	start := time.Now()
	o := rec.post(context.Background(), &tc, url, id, nil)
	return o, hdr, time.Since(start)
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// explainNonOK says why a gateway answered a non-2xx during a scenario, or
// "" when nothing explains it.
func explainNonOK(key string) string {
	switch {
	case key == "connection reset", strings.Contains(key, "server closed idle connection"):
		return "a keep-alive request raced the old server's shutdown on reload: no answer, the provider retries (unknown outcome, nothing lost)"
	case strings.HasPrefix(key, "503 not-ready"):
		return "the new config's handler answered before its app had the store (503 + Retry-After: the provider retries)"
	case strings.HasPrefix(key, "503 store-unavailable") && !strings.Contains(key, "no Retry-After"):
		return "the store did not acknowledge in time (503 + Retry-After: the provider retries)"
	case key == "connection refused":
		return "the gateway was down (killed): the request never reached it"
	}
	return ""
}

// fullViolations lists what broke the promise.
func (r *fullResult) fullViolations() []string {
	v := r.violations()
	if r.OKAfterFull > 0 {
		v = append(v, fmt.Sprintf("%d false 2xx after the store was full", r.OKAfterFull))
	}
	if r.MissingRetryAfter > 0 {
		v = append(v, fmt.Sprintf("%d 503s without Retry-After", r.MissingRetryAfter))
	}
	if r.Slowest503 >= r.PublishTimeout {
		v = append(v, fmt.Sprintf("a 503 took %s: the gateway waited for publish_timeout instead of knowing the store was full", r.Slowest503))
	}
	if r.FailedStored > 0 {
		v = append(v, fmt.Sprintf("%d refused events were stored", r.FailedStored))
	}
	return v
}
