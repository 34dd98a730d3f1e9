package caddymodule

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookgate/hookgate/forwarder"
)

// replayRulesGateway runs a gateway with three destinations: "tf", whose
// transformation fails on an event without body.a; "bad", which answers
// 422 while its recorder fails (max_attempts 1); and "flt", whose filter
// takes only events of type "keep". It posts e1 (type drop, no a) and e2
// (type keep, with a) and waits until both are settled everywhere.
func replayRulesGateway(t *testing.T) (admin string, tf, bad, flt *recorder) {
	t.Helper()
	tf, bad, flt = newRecorder(t, false), newRecorder(t, true), newRecorder(t, false)
	admin = freeAddr(t)
	g := startGateway(t, gatewayConfig{
		Admin: admin,
		Destinations: destination("tf", tf.srv.URL, "\t\t\tmax_attempts 2\n\t\t\ttransform "+bt(`{"a": body.a}`)) +
			destination("bad", bad.srv.URL, "\t\t\tmax_attempts 1") +
			destination("flt", flt.srv.URL, "\t\t\tfilter "+bt(`type == "keep"`)),
	})
	for _, e := range []struct{ id, typ, body string }{{"e1", "drop", `{"id":"e1"}`}, {"e2", "keep", `{"id":"e2","a":1}`}} {
		if st, _, b := g.post("/webhooks/v1/demo", []byte(e.body), map[string]string{"X-Id": e.id, "X-Type": e.typ}); st != http.StatusOK {
			t.Fatalf("post %s: %d %s", e.id, st, b)
		}
	}
	want := map[string]map[string]forwarder.Status{
		"demo:e1": {"tf": forwarder.StatusFailed, "bad": forwarder.StatusFailed, "flt": forwarder.StatusFiltered},
		"demo:e2": {"tf": forwarder.StatusDelivered, "bad": forwarder.StatusFailed, "flt": forwarder.StatusDelivered},
	}
	waitFor(t, 15*time.Second, "e1 and e2 settled", func() bool {
		var p EventPage
		adminJSON(t, admin, http.MethodGet, "/webhooks/events", "", http.StatusOK, &p)
		n := 0
		for _, e := range p.Events {
			for d, st := range want[e.ID] {
				if e.Status[d] == st {
					n++
				}
			}
		}
		return n == 6
	})
	return admin, tf, bad, flt
}

// waitJob waits until the job is done and returns it.
func waitJob(t *testing.T, admin, id string) ReplayJob {
	t.Helper()
	var job ReplayJob
	waitFor(t, 20*time.Second, "job "+id+" done", func() bool {
		adminJSON(t, admin, http.MethodGet, "/webhooks/replay/"+id, "", http.StatusOK, &job)
		return job.State == "done"
	})
	return job
}

// dlqOf returns the dead letters of destination dest.
func dlqOf(t *testing.T, admin, dest string) []DeadLetter {
	t.Helper()
	var p DLQPage
	adminJSON(t, admin, http.MethodGet, "/webhooks/dlq?destination="+dest, "", http.StatusOK, &p)
	return p.DeadLetters
}

// TestReplayRules: a redrive whose transformation fails is dead-lettered
// again (transform_failed) rather than retried forever, and a later
// replay to the same destination is delivered; an event the destination's
// filter rejects is refused on a single replay (409) and skipped by a bulk
// one; a bulk redrive sends an event with two dead letters at one
// destination once and removes both.
func TestReplayRules(t *testing.T) {
	admin, tf, bad, flt := replayRulesGateway(t)

	t.Run("transform failure dead-letters again", func(t *testing.T) {
		if dl := dlqOf(t, admin, "tf"); len(dl) != 1 || dl[0].Reason != "transform_failed" {
			t.Fatalf("tf dead letters before: %+v", dl)
		}
		var job ReplayJob
		adminJSON(t, admin, http.MethodPost, "/webhooks/dlq/redrive", `{"destination":"tf"}`, http.StatusAccepted, &job)
		if job = waitJob(t, admin, job.ID); job.Failed != 1 || job.Delivered != 0 {
			t.Errorf("redrive job %+v, want one failed", job)
		}
		if dl := dlqOf(t, admin, "tf"); len(dl) != 1 || dl[0].EventID != "demo:e1" || dl[0].Reason != "transform_failed" {
			t.Errorf("tf dead letters after the redrive: %+v", dl)
		}
		if ids := listIDs(t, admin, "status=failed&destination=tf"); !slices.Equal(ids, []string{"demo:e1"}) {
			t.Errorf("failed at tf: %v", ids)
		}
		before := tf.replays()
		adminJSON(t, admin, http.MethodPost, "/webhooks/events/demo:e2/replay", `{"destination":"tf"}`, http.StatusAccepted, nil)
		waitFor(t, 10*time.Second, "the replay queued after it delivered", func() bool { return tf.replays() == before+1 })
	})

	t.Run("filter decides on replay", func(t *testing.T) {
		b := adminJSON(t, admin, http.MethodPost, "/webhooks/events/demo:e1/replay", `{"destination":"flt"}`, http.StatusConflict, nil)
		if !strings.Contains(string(b), "the destination's filter rejects this event") {
			t.Errorf("409 body %s", b)
		}
		var job ReplayJob
		adminJSON(t, admin, http.MethodPost, "/webhooks/replay", `{"destination":"flt"}`, http.StatusAccepted, &job)
		if job = waitJob(t, admin, job.ID); job.Matched != 2 || job.Delivered != 1 || job.Skipped != 1 || job.Failed != 0 {
			t.Errorf("bulk replay to flt %+v, want 1 delivered and 1 skipped", job)
		}
		if n := len(flt.received("demo:e1")); n != 0 {
			t.Errorf("flt received the event its filter rejects %d times", n)
		}
		if n := len(flt.received("demo:e2")); n != 2 {
			t.Errorf("flt received e2 %d times, want 2 (fresh and replay)", n)
		}
	})

	t.Run("bulk redrive once per destination", func(t *testing.T) {
		// A replay that fails again leaves a second dead letter of e1 at bad.
		adminJSON(t, admin, http.MethodPost, "/webhooks/events/demo:e1/replay", `{"destination":"bad"}`, http.StatusAccepted, nil)
		waitFor(t, 10*time.Second, "two dead letters of e1 at bad", func() bool {
			n := 0
			for _, d := range dlqOf(t, admin, "bad") {
				if d.EventID == "demo:e1" {
					n++
				}
			}
			return n == 2
		})
		bad.failing.Store(false)
		var job ReplayJob
		adminJSON(t, admin, http.MethodPost, "/webhooks/dlq/redrive", `{"destination":"bad"}`, http.StatusAccepted, &job)
		if job = waitJob(t, admin, job.ID); job.Matched != 3 || job.Queued != 2 || job.Delivered != 2 {
			t.Errorf("redrive job %+v, want 3 dead letters matched, 2 deliveries", job)
		}
		// The fresh attempt, the failed replay, one redrive.
		if n := len(bad.received("demo:e1")); n != 3 {
			t.Errorf("bad received e1 %d times, want 3: the redrive went more than once", n)
		}
		if dl := dlqOf(t, admin, "bad"); len(dl) != 0 {
			t.Errorf("bad dead letters left: %+v", dl)
		}
	})

	t.Run("too many unfinished jobs", func(t *testing.T) {
		jobs.mu.Lock()
		kept := jobs.m
		jobs.m = map[string]*job{}
		jobs.mu.Unlock()
		t.Cleanup(func() {
			jobs.mu.Lock()
			jobs.m = kept
			jobs.mu.Unlock()
		})
		for range maxJobs {
			mustAdd(t, jobs, "replay", EventFilter{}, 1) // queuing, never finished
		}
		for _, path := range []string{"/webhooks/replay", "/webhooks/dlq/redrive"} {
			req, _ := http.NewRequest(http.MethodPost, "http://"+admin+path, strings.NewReader(`{"destination":"flt"}`))
			resp, err := testClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "60" ||
				!strings.Contains(string(b), "bulk jobs are still queuing or running") {
				t.Errorf("POST %s with %d jobs unfinished: %d, Retry-After %q, %s; want 429, 60", path, maxJobs, resp.StatusCode, resp.Header.Get("Retry-After"), b)
			}
		}
		if n := len(jobs.m); n != maxJobs {
			t.Errorf("%d jobs kept, want the %d unfinished", n, maxJobs)
		}
	})
}

// TestReplayBodiesStrict: a misspelled field in a replay or redrive body
// answers 400 naming it and the fields allowed, and so does a redrive
// given status or cursor; q and until select dead letters; a limit above 1000 is
// a 400 too.
func TestReplayBodiesStrict(t *testing.T) {
	admin, _, _, _ := replayRulesGateway(t)
	for _, c := range []struct{ path, body, field, allowed string }{
		{"/webhooks/replay", `{"destination":"tf","sorce":"demo"}`, `"sorce"`, "source"},
		{"/webhooks/dlq/redrive", `{"destinaton":"bad"}`, `"destinaton"`, "destination"},
		{"/webhooks/events/demo:e1/replay", `{"dest":"bad"}`, `"dest"`, "destination"},
	} {
		var e struct{ Error string }
		adminJSON(t, admin, http.MethodPost, c.path, c.body, http.StatusBadRequest, &e)
		if !strings.Contains(e.Error, "unknown field "+c.field) || !strings.Contains(e.Error, c.allowed) {
			t.Errorf("%s %s: %s", c.path, c.body, e.Error)
		}
	}
	// A redrive applies no status or cursor: one given is refused, not
	// ignored (which redrove every dead letter of the destination).
	for _, body := range []string{`{"destination":"bad","status":"delivered"}`, `{"destination":"bad","cursor":"1"}`} {
		var e struct{ Error string }
		adminJSON(t, admin, http.MethodPost, "/webhooks/dlq/redrive", body, http.StatusBadRequest, &e)
		if !strings.Contains(e.Error, "not status or cursor") {
			t.Errorf("redrive %s: %s", body, e.Error)
		}
	}
	// q (an event id or the provider's delivery id) selects dead letters
	// as it selects events.
	for _, q := range []string{"demo:e2", "e2"} {
		var p DLQPage
		adminJSON(t, admin, http.MethodGet, "/webhooks/dlq?destination=bad&q="+q, "", http.StatusOK, &p)
		if len(p.DeadLetters) != 1 || p.DeadLetters[0].EventID != "demo:e2" {
			t.Errorf("dead letters at bad with q=%s: %+v, want e2's only", q, p.DeadLetters)
		}
	}
	if dl := dlqOf(t, admin, "bad"); len(dl) != 2 {
		t.Errorf("a refused redrive changed the dead letters: %+v", dl)
	}
	// until applies to the list as to 'redrive --all' (the event's
	// received time): the list shows what a redrive of the same filter takes.
	var before DLQPage
	adminJSON(t, admin, http.MethodGet, "/webhooks/dlq?destination=bad&until=2000-01-01T00:00:00Z", "", http.StatusOK, &before)
	if len(before.DeadLetters) != 0 {
		t.Errorf("dead letters at bad until 2000: %+v, want none", before.DeadLetters)
	}
	b := adminJSON(t, admin, http.MethodGet, "/webhooks/events?limit=100000", "", http.StatusBadRequest, nil)
	if !strings.Contains(string(b), "1000") {
		t.Errorf("limit=100000: %s", b)
	}
	adminJSON(t, admin, http.MethodGet, "/webhooks/dlq?limit=1001", "", http.StatusBadRequest, nil)
	adminJSON(t, admin, http.MethodGet, "/webhooks/events?limit=1000", "", http.StatusOK, nil)
}
