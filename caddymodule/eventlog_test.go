package caddymodule

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookgate/hookgate/event"
	"github.com/hookgate/hookgate/forwarder"
)

// recorder is a destination that records every request and answers 422
// with a reason while failing is set, 200 otherwise.
type recorder struct {
	srv     *httptest.Server
	failing atomic.Bool
	mu      sync.Mutex
	reqs    []http.Header
}

func newRecorder(t *testing.T, failing bool) *recorder {
	rc := &recorder{}
	rc.failing.Store(failing)
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		rc.mu.Lock()
		rc.reqs = append(rc.reqs, r.Header.Clone())
		rc.mu.Unlock()
		if rc.failing.Load() {
			w.Header().Set("X-Reason", "validation")
			w.Header().Set("Set-Cookie", "session=secret")
			w.WriteHeader(http.StatusUnprocessableEntity)
			_, _ = w.Write([]byte(`{"error":"customer missing"}`))
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

// received returns the headers of every request carrying the event id.
func (rc *recorder) received(id string) []http.Header {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []http.Header
	for _, h := range rc.reqs {
		if h.Get(event.HeaderIdempotencyKey) == id {
			out = append(out, h)
		}
	}
	return out
}

func (rc *recorder) replays() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	n := 0
	for _, h := range rc.reqs {
		if h.Get(forwarder.HeaderWebhookReplay) == "true" {
			n++
		}
	}
	return n
}

// adminJSON makes an admin request with an optional JSON body, checks the
// status and decodes the answer into out (when not nil).
func adminJSON(t *testing.T, addr, method, path, body string, want int, out any) []byte {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, b, want)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %s: %v", method, path, b, err)
		}
	}
	return b
}

func listIDs(t *testing.T, addr, query string) []string {
	t.Helper()
	var p EventPage
	adminJSON(t, addr, http.MethodGet, "/webhooks/events?"+query, "", http.StatusOK, &p)
	ids := []string{}
	for _, e := range p.Events {
		ids = append(ids, e.ID)
	}
	return ids
}

// eventLogGateway runs a gateway with a destination "ok" that takes every
// event and a destination "bad" that takes order.* events and refuses them
// while its recorder is failing.
func eventLogGateway(t *testing.T) (g *gateway, admin string, ok, bad *recorder) {
	ok, bad = newRecorder(t, false), newRecorder(t, true)
	admin = freeAddr(t)
	g = startGateway(t, gatewayConfig{
		Admin: admin,
		Destinations: destination("ok", ok.srv.URL, "") +
			"\n\t\tdestination bad {\n\t\t\turl " + bad.srv.URL + "\n\t\t\tsubjects webhooks.v1.demo.order.>\n\t\t\tmax_attempts 2\n\t\t\tbackoff 10ms 20ms\n\t\t}",
	})
	return g, admin, ok, bad
}

func postTyped(t *testing.T, g *gateway, id, typ string) {
	t.Helper()
	hdr := map[string]string{"X-Id": id, "X-Type": typ, "X-Hub-Signature-256": "sha256=abc", "Stripe-Signature": "t=1,v1=x", "X-Custom": "kept"}
	if st, _, b := g.post("/webhooks/v1/demo", []byte(`{"id":"`+id+`"}`), hdr); st != http.StatusOK {
		t.Fatalf("post %s: %d %s", id, st, b)
	}
}

// settled waits until every listed event has left pending/retrying.
func settled(t *testing.T, admin string, n int) {
	t.Helper()
	waitFor(t, 15*time.Second, "every delivery to settle", func() bool {
		var p EventPage
		adminJSON(t, admin, http.MethodGet, "/webhooks/events?limit=1000", "", http.StatusOK, &p)
		if len(p.Events) != n {
			return false
		}
		for _, e := range p.Events {
			for _, st := range e.Status {
				if st != forwarder.StatusDelivered && st != forwarder.StatusFailed {
					return false
				}
			}
		}
		return true
	})
}

// TestEventLogListAndFilters: events posted to a succeeding and a failing
// destination are listed newest first with their status per destination,
// and every filter narrows the list.
func TestEventLogListAndFilters(t *testing.T) {
	g, admin, _, _ := eventLogGateway(t)
	for i := 1; i <= 6; i++ {
		typ := "order.created"
		if i%2 == 0 {
			typ = "user.signup"
		}
		postTyped(t, g, fmt.Sprintf("e%d", i), typ)
	}
	settled(t, admin, 6)

	var p EventPage
	adminJSON(t, admin, http.MethodGet, "/webhooks/events", "", http.StatusOK, &p)
	if got := len(p.Events); got != 6 || p.NextCursor != "" {
		t.Fatalf("list: %d events, cursor %q", got, p.NextCursor)
	}
	first := p.Events[0]
	if first.ID != "demo:e6" || first.Source != "demo" || first.Version != "v1" || first.Type != "user.signup" ||
		first.Subject != "webhooks.v1.demo.user.signup" || first.StreamSeq == 0 || first.Size != len(`{"id":"e6"}`) || first.ReceivedAt.IsZero() {
		t.Errorf("newest entry: %+v", first)
	}
	if len(first.Status) != 1 || first.Status["ok"] != forwarder.StatusDelivered {
		t.Errorf("user.signup status %v: only ok matches it", first.Status)
	}
	if st := p.Events[1].Status; st["ok"] != forwarder.StatusDelivered || st["bad"] != forwarder.StatusFailed {
		t.Errorf("order.created status %v", st)
	}
	for i := 1; i < len(p.Events); i++ {
		if p.Events[i].StreamSeq >= p.Events[i-1].StreamSeq {
			t.Fatalf("not newest first: %+v", p.Events)
		}
	}

	future := url.QueryEscape(time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"type=order.created", []string{"demo:e5", "demo:e3", "demo:e1"}},
		{"source=demo&version=v1&type=user.signup", []string{"demo:e6", "demo:e4", "demo:e2"}},
		{"source=other", []string{}},
		{"version=v2", []string{}},
		{"destination=bad", []string{"demo:e5", "demo:e3", "demo:e1"}},
		{"status=failed", []string{"demo:e5", "demo:e3", "demo:e1"}},
		{"status=failed&destination=ok", []string{}},
		{"status=delivered&destination=bad", []string{}},
		{"status=delivered&type=user.signup", []string{"demo:e6", "demo:e4", "demo:e2"}},
		{"status=pending", []string{}},
		{"since=1h&limit=2", []string{"demo:e6", "demo:e5"}},
		{"since=" + future, []string{}},
		{"until=" + future + "&type=user.signup&limit=1", []string{"demo:e6"}},
		{"until=2000-01-01T00:00:00Z", []string{}},
		{"q=demo:e3", []string{"demo:e3"}},
		{"q=e4", []string{"demo:e4"}},
		{"q=nope", []string{}},
	} {
		if got := listIDs(t, admin, tc.query); !slices.Equal(got, tc.want) {
			t.Errorf("?%s = %v, want %v", tc.query, got, tc.want)
		}
	}
	for _, q := range []string{"status=lost", "since=yesterday", "limit=-1", "cursor=abc", "source=a.b"} {
		adminJSON(t, admin, http.MethodGet, "/webhooks/events?"+q, "", http.StatusBadRequest, nil)
	}
	adminJSON(t, admin, http.MethodGet, "/webhooks/events?destination=nope", "", http.StatusNotFound, nil)
	adminJSON(t, admin, http.MethodDelete, "/webhooks/events", "", http.StatusMethodNotAllowed, nil)
}

// TestEventLogPagination: following next_cursor while new events arrive
// yields every event that was there once, in order, with no repeats.
func TestEventLogPagination(t *testing.T) {
	g, admin, _, _ := eventLogGateway(t)
	var want []string
	for i := 1; i <= 7; i++ {
		postTyped(t, g, fmt.Sprintf("p%d", i), "user.signup")
		want = append([]string{fmt.Sprintf("demo:p%d", i)}, want...)
	}
	var got []string
	cursor := ""
	for page := 0; ; page++ {
		var p EventPage
		adminJSON(t, admin, http.MethodGet, "/webhooks/events?limit=2&cursor="+cursor, "", http.StatusOK, &p)
		for _, e := range p.Events {
			got = append(got, e.ID)
		}
		postTyped(t, g, fmt.Sprintf("new%d", page), "user.signup") // arrives between pages
		if p.NextCursor == "" {
			break
		}
		if page > 10 {
			t.Fatal("pagination does not end")
		}
		cursor = p.NextCursor
	}
	if !slices.Equal(got, want) {
		t.Fatalf("pages gave %v, want %v", got, want)
	}
	// A filtered walk pages the same way.
	got = got[:0]
	cursor = ""
	for {
		var p EventPage
		adminJSON(t, admin, http.MethodGet, "/webhooks/events?limit=3&type=user.signup&since=1h&cursor="+cursor, "", http.StatusOK, &p)
		for _, e := range p.Events {
			got = append(got, e.ID)
		}
		if p.NextCursor == "" {
			break
		}
		cursor = p.NextCursor
	}
	if len(got) != 7+4 || got[len(got)-1] != "demo:p1" {
		t.Errorf("filtered pages: %v", got)
	}
}

// TestEventLogReadAndReplay: one event in full (signatures redacted, the
// seed's delivery shape, the attempt history with the destination's
// answer), a single replay (same idempotency key, Webhook-Replay, the
// attempt number continuing, no second event) and a bulk replay by time
// range with the exact count.
func TestEventLogReadAndReplay(t *testing.T) {
	g, admin, ok, bad := eventLogGateway(t)
	postTyped(t, g, "r1", "order.created")
	postTyped(t, g, "r2", "user.signup")
	settled(t, admin, 2)

	var d EventDetail
	raw := adminJSON(t, admin, http.MethodGet, "/webhooks/events/demo:r1", "", http.StatusOK, &d)
	if d.ID != "demo:r1" || d.DeliveryID != "r1" || d.Body != nil {
		t.Errorf("detail: %s", raw)
	}
	for _, h := range []string{"X-Hub-Signature-256", "Stripe-Signature"} {
		if v := d.Headers[h]; len(v) != 1 || v[0] != forwarder.Redacted {
			t.Errorf("header %s = %v, want it redacted", h, v)
		}
	}
	if d.Headers["X-Custom"][0] != "kept" || d.Headers[event.HeaderID][0] != "demo:r1" {
		t.Errorf("headers: %v", d.Headers)
	}
	if bytes.Contains(raw, []byte("sha256=abc")) || bytes.Contains(raw, []byte("session=secret")) {
		t.Errorf("a credential leaked: %s", raw)
	}
	if !bytes.Contains(raw, []byte(`{"destination":"bad","event":"order.created","status":"failed","retry_attempts":0,"next_retry_in":null,"last_status_code":422,"last_error":"HTTP 422 Unprocessable Entity","delivered_at":null}`)) {
		t.Errorf("deliveries not in the seed's shape: %s", raw)
	}
	var badAttempt *forwarder.Attempt
	for i := range d.Attempts {
		if d.Attempts[i].Destination == "bad" {
			badAttempt = &d.Attempts[i]
		}
	}
	if badAttempt == nil || badAttempt.StatusCode != 422 || badAttempt.Attempt != 1 || badAttempt.Response == nil ||
		badAttempt.Response.Body != `{"error":"customer missing"}` || badAttempt.Response.Header["X-Reason"][0] != "validation" ||
		badAttempt.Response.Header["Set-Cookie"][0] != forwarder.Redacted {
		t.Errorf("attempt history: %+v", d.Attempts)
	}
	adminJSON(t, admin, http.MethodGet, "/webhooks/events/demo:r1?body=1", "", http.StatusOK, &d)
	if d.Body == nil || *d.Body != `{"id":"r1"}` || d.BodyEncoding != "" {
		t.Errorf("body: %v %q", d.Body, d.BodyEncoding)
	}
	adminJSON(t, admin, http.MethodGet, "/webhooks/events/demo:none", "", http.StatusNotFound, nil)

	// Single replay to one destination.
	before := len(g.stored(event.StreamName))
	var q ReplayQueued
	adminJSON(t, admin, http.MethodPost, "/webhooks/events/demo:r1/replay", `{"destination":"ok"}`, http.StatusAccepted, &q)
	if q.EventID != "demo:r1" || !slices.Equal(q.Destinations, []string{"ok"}) {
		t.Errorf("replay answer %+v", q)
	}
	waitFor(t, 10*time.Second, "the replay at ok", func() bool { return len(ok.received("demo:r1")) == 2 })
	h := ok.received("demo:r1")[1]
	if h.Get(event.HeaderWebhookID) != "demo:r1" || h.Get(forwarder.HeaderWebhookReplay) != "true" || h.Get(event.HeaderWebhookAttempt) != "2" {
		t.Errorf("replayed request headers: %v", h)
	}
	if len(bad.received("demo:r1")) != 1 {
		t.Errorf("a replay to ok reached bad")
	}
	waitFor(t, 5*time.Second, "the replay in the history", func() bool {
		adminJSON(t, admin, http.MethodGet, "/webhooks/events/demo:r1", "", http.StatusOK, &d)
		return slices.ContainsFunc(d.Attempts, func(a forwarder.Attempt) bool { return a.Replay && a.Destination == "ok" && a.Attempt == 2 })
	})
	if after := len(g.stored(event.StreamName)); after != before {
		t.Errorf("replay stored a second event: %d → %d", before, after)
	}
	adminJSON(t, admin, http.MethodPost, "/webhooks/events/demo:r2/replay", `{"destination":"bad"}`, http.StatusConflict, nil)
	adminJSON(t, admin, http.MethodPost, "/webhooks/events/demo:r2/replay", `{"destination":"http://evil"}`, http.StatusNotFound, nil)

	// Bulk replay of a time range.
	mid := time.Now().UTC()
	time.Sleep(20 * time.Millisecond)
	for i := 1; i <= 4; i++ {
		postTyped(t, g, fmt.Sprintf("b%d", i), "user.signup")
	}
	settled(t, admin, 6)
	replaysBefore := ok.replays()
	var job ReplayJob
	adminJSON(t, admin, http.MethodPost, "/webhooks/replay", `{"since":"`+mid.Format(time.RFC3339Nano)+`","destination":"ok"}`, http.StatusAccepted, &job)
	if job.Matched != 4 || job.ID == "" {
		t.Fatalf("bulk replay job %+v, want 4 matched", job)
	}
	waitFor(t, 15*time.Second, "the bulk replay", func() bool {
		adminJSON(t, admin, http.MethodGet, "/webhooks/replay/"+job.ID, "", http.StatusOK, &job)
		return job.State == "done"
	})
	if job.Queued != 4 || job.Delivered != 4 || ok.replays()-replaysBefore != 4 {
		t.Errorf("bulk replay: %+v, %d replays seen", job, ok.replays()-replaysBefore)
	}
	for i := 1; i <= 4; i++ {
		if n := len(ok.received(fmt.Sprintf("demo:b%d", i))); n != 2 {
			t.Errorf("demo:b%d reached ok %d times, want 2", i, n)
		}
	}
	adminJSON(t, admin, http.MethodGet, "/webhooks/replay/nope", "", http.StatusNotFound, nil)
}

// recordOf returns the dead letter of an event in a page.
func recordOf(t *testing.T, p DLQPage, eventID string) DeadLetter {
	t.Helper()
	for _, d := range p.DeadLetters {
		if d.EventID == eventID {
			return d
		}
	}
	t.Fatalf("no dead letter of %s in %+v", eventID, p)
	return DeadLetter{}
}

// TestEventLogDLQ: dead letters are listed, read, redriven (same
// idempotency key; the record goes once the redrive is queued), redriven
// in bulk and deleted.
func TestEventLogDLQ(t *testing.T) {
	g, admin, _, bad := eventLogGateway(t)
	for i := 1; i <= 4; i++ {
		postTyped(t, g, fmt.Sprintf("d%d", i), "order.paid")
	}
	settled(t, admin, 4)
	var p DLQPage
	adminJSON(t, admin, http.MethodGet, "/webhooks/dlq?destination=bad", "", http.StatusOK, &p)
	if len(p.DeadLetters) != 4 {
		t.Fatalf("dlq: %+v", p)
	}
	// Dead letters come newest failure first; the four failed in any order.
	dl := p.DeadLetters[0]
	for _, d := range p.DeadLetters {
		if d.EventID == "demo:d4" {
			dl = d
		}
	}
	if dl.EventID != "demo:d4" || dl.Destination != "bad" || dl.Reason != "rejected" || dl.LastStatusCode != 422 || dl.StreamSeq == 0 {
		t.Errorf("dead letter %+v", dl)
	}
	seen := map[string]bool{}
	adminJSON(t, admin, http.MethodGet, "/webhooks/dlq?limit=3", "", http.StatusOK, &p)
	if len(p.DeadLetters) != 3 || p.NextCursor == "" {
		t.Errorf("first page of 3: %+v", p)
	}
	for _, d := range p.DeadLetters {
		seen[d.EventID] = true
	}
	adminJSON(t, admin, http.MethodGet, "/webhooks/dlq?limit=3&cursor="+p.NextCursor, "", http.StatusOK, &p)
	if len(p.DeadLetters) != 1 || seen[p.DeadLetters[0].EventID] || p.NextCursor != "" {
		t.Errorf("second page: %+v after %v", p, seen)
	}
	var detail DeadLetterDetail
	adminJSON(t, admin, http.MethodGet, "/webhooks/dlq/"+dl.ID+"?body=1", "", http.StatusOK, &detail)
	if detail.Body == nil || *detail.Body != `{"id":"d4"}` || detail.Headers["Stripe-Signature"][0] != forwarder.Redacted {
		t.Errorf("dead letter detail %+v", detail)
	}

	// A redrive that fails again is dead-lettered again, inside the
	// dead-letter stream's duplicate window of the first failure.
	adminJSON(t, admin, http.MethodGet, "/webhooks/dlq", "", http.StatusOK, &p)
	adminJSON(t, admin, http.MethodPost, "/webhooks/dlq/"+recordOf(t, p, "demo:d2").ID+"/redrive", "", http.StatusAccepted, nil)
	waitFor(t, 10*time.Second, "d2 dead-lettered again", func() bool {
		adminJSON(t, admin, http.MethodGet, "/webhooks/dlq", "", http.StatusOK, &p)
		return len(p.DeadLetters) == 4 && slices.ContainsFunc(p.DeadLetters, func(d DeadLetter) bool { return d.EventID == "demo:d2" && d.Attempts == 2 })
	})

	bad.failing.Store(false)
	var rd Redrive
	adminJSON(t, admin, http.MethodPost, "/webhooks/dlq/"+dl.ID+"/redrive", "", http.StatusAccepted, &rd)
	if rd.EventID != "demo:d4" || rd.Status != "queued" {
		t.Errorf("redrive answer %+v", rd)
	}
	adminJSON(t, admin, http.MethodGet, "/webhooks/dlq/"+dl.ID, "", http.StatusNotFound, nil)
	waitFor(t, 10*time.Second, "the redrive", func() bool { return len(bad.received("demo:d4")) == 2 })
	if h := bad.received("demo:d4")[1]; h.Get(event.HeaderIdempotencyKey) != "demo:d4" || h.Get(forwarder.HeaderWebhookReplay) != "true" {
		t.Errorf("redriven request: %v", h)
	}
	waitFor(t, 5*time.Second, "d4 delivered at bad", func() bool {
		var e EventDetail
		adminJSON(t, admin, http.MethodGet, "/webhooks/events/demo:d4", "", http.StatusOK, &e)
		return e.Status["bad"] == forwarder.StatusDelivered
	})
	if ids := listIDs(t, admin, "status=failed"); len(ids) != 3 || slices.Contains(ids, "demo:d4") {
		t.Errorf("failed after one redrive: %v", ids)
	}

	// Delete one, redrive the rest in bulk.
	adminJSON(t, admin, http.MethodGet, "/webhooks/dlq", "", http.StatusOK, &p)
	d3 := recordOf(t, p, "demo:d3").ID
	adminJSON(t, admin, http.MethodDelete, "/webhooks/dlq/"+d3, "", http.StatusOK, nil)
	adminJSON(t, admin, http.MethodDelete, "/webhooks/dlq/"+d3, "", http.StatusNotFound, nil)
	var job ReplayJob
	adminJSON(t, admin, http.MethodPost, "/webhooks/dlq/redrive", `{"destination":"bad"}`, http.StatusAccepted, &job)
	if job.Matched != 2 {
		t.Fatalf("bulk redrive: %+v", job)
	}
	waitFor(t, 15*time.Second, "the bulk redrive", func() bool {
		adminJSON(t, admin, http.MethodGet, "/webhooks/replay/"+job.ID, "", http.StatusOK, &job)
		return job.State == "done"
	})
	if job.Delivered != 2 || len(bad.received("demo:d1")) != 2 || len(bad.received("demo:d2")) != 3 || len(bad.received("demo:d3")) != 1 {
		t.Errorf("bulk redrive %+v; d1 seen %d times, d2 %d, deleted d3 %d", job,
			len(bad.received("demo:d1")), len(bad.received("demo:d2")), len(bad.received("demo:d3")))
	}
	adminJSON(t, admin, http.MethodGet, "/webhooks/dlq", "", http.StatusOK, &p)
	if len(p.DeadLetters) != 0 {
		t.Errorf("dlq after redrive: %+v", p)
	}
	adminJSON(t, admin, http.MethodGet, "/webhooks/dlq/abc", "", http.StatusBadRequest, nil)
	adminJSON(t, admin, http.MethodPost, "/webhooks/dlq/abc/nope", "", http.StatusNotFound, nil)

	var st GatewayStatus
	adminJSON(t, admin, http.MethodGet, "/webhooks/status", "", http.StatusOK, &st)
	if !st.Store.Up || st.Store.Sync != "always" || st.Store.Events != 4 || st.Store.OldestEvent == nil || len(st.Destinations) != 2 {
		t.Errorf("status %+v", st)
	}
	// Other tests of this process may have counted too: demo has at least
	// this test's four.
	if i := slices.IndexFunc(st.Sources, func(s SourceStatus) bool { return s.Source == "demo" }); i < 0 || st.Sources[i].Outcomes["accepted"] < 4 {
		t.Errorf("sources in the last minute: %+v", st.Sources)
	}
}
