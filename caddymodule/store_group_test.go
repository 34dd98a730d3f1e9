package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/hookgate/hookgate/event"
)

// trace is one ordered log of what the store and the client saw. Every
// entry is appended under one mutex at the moment it happens, so the
// order of entries is the real order of the steps.
type trace struct {
	mu      sync.Mutex
	entries []traceEntry
	round   int
}

type traceEntry struct {
	kind  string // "written", "sync-start", "sync-done", "2xx"
	id    string // event id, for written and 2xx
	round int    // sync round, for sync-start and sync-done
	n     int    // requests in the round
}

func (tr *trace) add(e traceEntry) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if e.kind == "sync-start" {
		tr.round++
	}
	if e.kind == "sync-start" || e.kind == "sync-done" {
		e.round = tr.round
	}
	tr.entries = append(tr.entries, e)
}

// observer returns the hooks that fill the trace.
func (tr *trace) observer() *commitObserver {
	return &commitObserver{
		Written: func(msg *nats.Msg, _ *jetstream.PubAck) {
			tr.add(traceEntry{kind: "written", id: msg.Header.Get(event.HeaderID)})
		},
		SyncStarted: func(n int) { tr.add(traceEntry{kind: "sync-start", n: n}) },
		SyncDone:    func(n int, _ error) { tr.add(traceEntry{kind: "sync-done", n: n}) },
		// A lazy pass fsyncs events too: it counts as a round of no
		// waiting request.
		PassStarted: func() { tr.add(traceEntry{kind: "sync-start"}) },
		PassDone:    func(error) { tr.add(traceEntry{kind: "sync-done"}) },
	}
}

// rounds returns how many fsync rounds or lazy passes started.
func (tr *trace) rounds() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.round
}

// covered reports, for every event answered 2xx, whether a sync round
// started after its bytes were written and completed before its 2xx.
func (tr *trace) covered() (covered, uncovered []string, maxRound int) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	written := map[string]int{}
	started := map[int]int{}
	for i, e := range tr.entries {
		switch e.kind {
		case "written":
			if _, ok := written[e.id]; !ok {
				written[e.id] = i
			}
		case "sync-start":
			started[e.round] = i
		case "sync-done":
			maxRound = max(maxRound, e.n)
		}
	}
	for i, e := range tr.entries {
		if e.kind != "2xx" {
			continue
		}
		w, ok := written[e.id]
		ok = ok && tr.syncBetween(w, i, started)
		if ok {
			covered = append(covered, e.id)
		} else {
			uncovered = append(uncovered, e.id)
		}
	}
	return covered, uncovered, maxRound
}

// syncBetween reports whether a round started after entry from and was
// done before entry to.
func (tr *trace) syncBetween(from, to int, started map[int]int) bool {
	for i := from + 1; i < to; i++ {
		if e := tr.entries[i]; e.kind == "sync-done" && started[e.round] > from {
			return true
		}
	}
	return false
}

// postConcurrently sends workers × each deliveries with ids from idOf and
// records each 2xx in tr; it returns how many were not 2xx.
func postConcurrently(t *testing.T, g *gateway, workers, each int, idOf func(w, i int) string, tr *trace) int64 {
	t.Helper()
	var failed atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				id := idOf(w, i)
				status, b := postOne(g, id)
				if status/100 != 2 {
					if failed.Add(1) == 1 {
						t.Logf("first failure: %d %s", status, b)
					}
					continue
				}
				if tr != nil {
					tr.add(traceEntry{kind: "2xx", id: "demo:" + id})
				}
			}
		}()
	}
	wg.Wait()
	return failed.Load()
}

// postOne posts one small delivery with id; status 0 means no answer.
func postOne(g *gateway, id string) (int, []byte) {
	req, err := http.NewRequest(http.MethodPost, g.url("/webhooks/v1/demo"), strings.NewReader(`{"id":"`+id+`"}`))
	if err != nil {
		return 0, []byte(err.Error())
	}
	req.Header.Set("X-Id", id)
	resp, err := testClient.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestGroupCommitFsyncBeforeEvery2xx is the promise of sync always under
// concurrent load, proven from the store's own trace: for every event
// answered 2xx, an fsync of the store started after the event's bytes were
// written and completed before its 2xx reached the client; and rounds are
// shared (one fsync answered several requests). With a lazy interval the
// same check, which counts the background passes as fsyncs too, finds
// one only for events in flight while a pass ran (at most the 16
// concurrent requests a pass): that mode answers at the write.
func TestGroupCommitFsyncBeforeEvery2xx(t *testing.T) {
	for _, mode := range []string{"always", "1s"} {
		t.Run("sync="+mode, func(t *testing.T) {
			g := startGateway(t, gatewayConfig{Global: "\t\tsync " + mode})
			tr := &trace{}
			g.engine().commit.observer.Store(tr.observer())
			failed := postConcurrently(t, g, 16, 15, func(w, i int) string { return fmt.Sprintf("%s-%d-%d", mode, w, i) }, tr)
			if failed > 0 {
				t.Fatalf("%d deliveries not answered 2xx", failed)
			}
			covered, uncovered, maxRound := tr.covered()
			t.Logf("sync %s: %d events covered by an fsync before their 2xx, %d not; largest round %d requests", mode, len(covered), len(uncovered), maxRound)
			if mode == "always" {
				if len(uncovered) > 0 || len(covered) != 16*15 {
					t.Fatalf("%d events answered 2xx without an fsync between their write and their 2xx (e.g. %v)", len(uncovered), uncovered[:min(3, len(uncovered))])
				}
				if maxRound < 2 {
					t.Fatal("no fsync round answered more than one request: group commit did not group")
				}
				return
			}
			if passes := tr.rounds(); len(covered) > 16*passes || len(uncovered) == 0 {
				t.Fatalf("lazy mode: %d events answered after an fsync between their write and their 2xx, with %d passes: the 2xx waited for the sync", len(covered), passes)
			}
		})
	}
}

// TestGroupCommitDuplicates: deliveries of the same id posted at the same
// time land in the same rounds; exactly one per id is stored and answered
// "duplicate": false, every other one "duplicate": true, as without group
// commit.
func TestGroupCommitDuplicates(t *testing.T) {
	g := startGateway(t, gatewayConfig{})
	const ids, copies = 20, 4
	var mu sync.Mutex
	fresh := map[string]int{}
	dups := map[string]int{}
	var wg sync.WaitGroup
	for c := range copies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ids {
				id := fmt.Sprint("dup-", (i+c)%ids)
				status, b := postOne(g, id)
				if status != http.StatusOK {
					t.Errorf("status %d %s", status, b)
					return
				}
				a := decodeAccept(t, b)
				mu.Lock()
				if a.Duplicate {
					dups[id]++
				} else {
					fresh[id]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for i := range ids {
		id := fmt.Sprint("dup-", i)
		if fresh[id] != 1 || dups[id] != copies-1 {
			t.Errorf("%s: %d fresh and %d duplicate answers, want 1 and %d", id, fresh[id], dups[id], copies-1)
		}
	}
	if n := len(g.stored(event.StreamName)); n != ids {
		t.Fatalf("%d events stored, want %d", n, ids)
	}
}

// replaceCommit swaps the engine's group commit for one over syncFn (a
// fault the disk cannot be made to produce on demand) before any request.
func replaceCommit(t *testing.T, g *gateway, syncFn func() error, log *zap.Logger) {
	swapCommit(t, g, func(e *engine) *groupCommit {
		return startGroupCommit(e.publishRaw, syncFn, func() error { return nil }, log)
	})
}

// swapCommit closes the engine's committer and puts the one made by
// start in its place, with no publish running.
func swapCommit(t *testing.T, g *gateway, start func(*engine) *groupCommit) {
	t.Helper()
	e := g.engine()
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.commit.close(); err != nil {
		t.Fatal(err)
	}
	e.commit = start(e)
}

// TestGroupCommitSyncFailureIsSticky: once an fsync fails, the request it
// would have answered and every later one get 503 with Retry-After (never
// 2xx), no further fsync is even tried, and the log says why once.
func TestGroupCommitSyncFailureIsSticky(t *testing.T) {
	g := startGateway(t, gatewayConfig{})
	var calls atomic.Int64
	core, logs := observer.New(zap.ErrorLevel)
	replaceCommit(t, g, func() error {
		calls.Add(1)
		return fmt.Errorf("syncfs: %w", syscall.EIO)
	}, zap.New(core))
	for i := range 5 {
		req, _ := http.NewRequest(http.MethodPost, g.url("/webhooks/v1/demo"), strings.NewReader(`{}`))
		req.Header.Set("X-Id", fmt.Sprint("eio-", i))
		resp, err := testClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("request %d after a failed fsync: status %d %s, want 503 with Retry-After", i, resp.StatusCode, b)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("fsync tried %d times, want once (a failure is sticky)", n)
	}
	entries := logs.FilterMessageSnippet("event store fsync failed").All()
	if len(entries) != 1 || !strings.Contains(fmt.Sprint(entries[0].ContextMap()["error"]), "input/output error") {
		t.Fatalf("log entries %v, want one saying the fsync failed and why", entries)
	}
}

// TestGroupCommitTimeout: a request whose fsync has not completed within
// publish_timeout gets 503, and so does every one behind it.
func TestGroupCommitTimeout(t *testing.T) {
	g := startGateway(t, gatewayConfig{Ingest: "\t\tpublish_timeout 300ms\n\t\tretry_after 7s"})
	release := make(chan struct{})
	replaceCommit(t, g, func() error { <-release; return nil }, zapNop())
	defer close(release)
	for i := range 2 {
		status, hdr, b := g.post("/webhooks/v1/demo", []byte(`{}`), map[string]string{"X-Id": fmt.Sprint("stuck-", i)})
		if status != http.StatusServiceUnavailable || hdr.Get("Retry-After") != "7" {
			t.Fatalf("status %d Retry-After %q (%s), want 503 and 7", status, hdr.Get("Retry-After"), b)
		}
	}
}

// TestGroupCommitUnit drives the committer alone: rounds run back to back,
// a round answers only requests that joined before it started, and a
// closed committer fails a waiting request instead of leaving it hanging.
func TestGroupCommitUnit(t *testing.T) {
	var seq atomic.Uint64
	publish := func(context.Context, *nats.Msg) (*jetstream.PubAck, error) {
		return &jetstream.PubAck{Stream: "T", Sequence: seq.Add(1)}, nil
	}
	entered := make(chan struct{}, 10)
	release := make(chan struct{})
	g := startGroupCommit(publish, func() error {
		entered <- struct{}{}
		<-release
		return nil
	}, func() error { return nil }, zapNop())

	ctx := context.Background()
	first := make(chan error, 1)
	go func() { _, err := g.publish(ctx, nats.NewMsg("a")); first <- err }()
	<-entered // round 1 is running with the first request only
	second := make(chan error, 1)
	go func() { _, err := g.publish(ctx, nats.NewMsg("b")); second <- err }()
	waitFor(t, 5*time.Second, "the second request to join the next round", func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.next.waiters == 1
	})
	release <- struct{}{}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-second:
		t.Fatalf("the second request was answered (%v) by a round that started before its write", err)
	case <-entered: // round 2 started for it
	}
	release <- struct{}{}
	if err := <-second; err != nil {
		t.Fatal(err)
	}

	// A request waiting when the committer closes fails.
	third := make(chan error, 1)
	go func() { _, err := g.publish(ctx, nats.NewMsg("c")); third <- err }()
	<-entered
	closed := make(chan error, 1)
	go func() { closed <- g.close() }()
	release <- struct{}{}
	if err := <-third; err != nil {
		t.Fatalf("the request of a round that ran: %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if _, err := g.publish(ctx, nats.NewMsg("d")); !errors.Is(err, errEngineClosed) {
		t.Fatalf("publish after close: %v, want errEngineClosed", err)
	}
}
