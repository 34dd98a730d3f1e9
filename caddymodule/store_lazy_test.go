package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
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

// passTrace records, in the order they happen and with their times, the
// writes of a lazy store and its background passes.
type passTrace struct {
	mu      sync.Mutex
	entries []passEntry
}

type passEntry struct {
	kind string // "written", "pass-start", "pass-done"
	id   string // event id, for written
	at   time.Time
	err  error // for pass-done
}

func (tr *passTrace) add(e passEntry) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	e.at = time.Now()
	tr.entries = append(tr.entries, e)
}

func (tr *passTrace) observer() *commitObserver {
	return &commitObserver{
		Written: func(msg *nats.Msg, _ *jetstream.PubAck) {
			tr.add(passEntry{kind: "written", id: msg.Header.Get(event.HeaderID)})
		},
		PassStarted: func() { tr.add(passEntry{kind: "pass-start"}) },
		PassDone:    func(err error) { tr.add(passEntry{kind: "pass-done", err: err}) },
		// Rounds are group commit's: a lazy store must not run any.
		SyncStarted: func(int) { tr.add(passEntry{kind: "round"}) },
	}
}

// passCoverage is what passTrace.coverage found for one event.
type passCoverage struct {
	id string
	// startLate is how much later than allowed its pass started (≤ 0:
	// in time); done is from its write to its pass's end.
	startLate, done time.Duration
}

// coverage finds, for every written event, the first pass that started
// after the write, and checks that it completed without error. A pass
// must start within limit of the write or of the end of the pass before
// it, whichever is later (a pass that overran delays the next one; the
// disk's speed is not under test). ok is false while some event has no
// completed pass yet.
func (tr *passTrace) coverage(limit time.Duration) (cov []passCoverage, ok bool, err error) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for i, e := range tr.entries {
		switch {
		case e.kind == "round":
			return nil, false, errors.New("a lazy store ran a group-commit round")
		case e.kind != "written":
			continue
		}
		start := tr.nextAfter(i, "pass-start")
		if start < 0 {
			return cov, false, nil
		}
		done := tr.nextAfter(start, "pass-done")
		if done < 0 {
			return cov, false, nil
		}
		if err := tr.entries[done].err; err != nil {
			return nil, false, fmt.Errorf("the pass after %s failed: %w", e.id, err)
		}
		from := e.at
		if prev := tr.lastBefore(start, "pass-done"); prev >= 0 && tr.entries[prev].at.After(from) {
			from = tr.entries[prev].at
		}
		cov = append(cov, passCoverage{id: e.id,
			startLate: tr.entries[start].at.Sub(from) - limit,
			done:      tr.entries[done].at.Sub(e.at)})
	}
	return cov, true, nil
}

func (tr *passTrace) nextAfter(i int, kind string) int {
	for j := i + 1; j < len(tr.entries); j++ {
		if tr.entries[j].kind == kind {
			return j
		}
	}
	return -1
}

func (tr *passTrace) lastBefore(i int, kind string) int {
	for j := i - 1; j >= 0; j-- {
		if tr.entries[j].kind == kind {
			return j
		}
	}
	return -1
}

func (tr *passTrace) count(kind string) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	n := 0
	for _, e := range tr.entries {
		if e.kind == kind {
			n++
		}
	}
	return n
}

// TestLazySyncCoversEveryEventWithinInterval is the promise of sync
// <interval>, "written before the 2xx, fsynced within <interval>", from
// the store's own trace: with sync 200ms and events arriving over about a
// second, every event answered 2xx is followed by a background pass (an
// fdatasync of the blocks written since the previous pass, outside
// nats-server's locks) that started after its write and completed without
// error; that pass started within 3 × 200ms of the write (or of the end
// of the pass before it, when the disk made that one overrun); no request
// waited for a group-commit round; and with nothing written, no pass
// runs. nats-server's own timer is left at its default meanwhile
// (TestPinLazyLeavesServerTimerAtDefault).
func TestLazySyncCoversEveryEventWithinInterval(t *testing.T) {
	const interval = 200 * time.Millisecond
	g := startGateway(t, gatewayConfig{Global: "\t\tsync 200ms"})
	tr := &passTrace{}
	g.engine().commit.observer.Store(tr.observer())
	failed := postConcurrently(t, g, 8, 1, func(w, i int) string { return "warm-" + fmt.Sprint(w) }, nil)
	for batch := range 5 {
		failed += postConcurrently(t, g, 8, 10, func(w, i int) string { return fmt.Sprintf("lazy-%d-%d-%d", batch, w, i) }, nil)
		time.Sleep(interval)
	}
	if failed > 0 {
		t.Fatalf("%d deliveries not answered 2xx", failed)
	}
	var cov []passCoverage
	waitFor(t, 30*time.Second, "a completed pass after every write", func() bool {
		c, ok, err := tr.coverage(3 * interval)
		if err != nil {
			t.Fatal(err)
		}
		cov = c
		return ok
	})
	if n := tr.count("written"); len(cov) != n || n < 8+5*8*10 {
		t.Fatalf("%d events covered of %d written, want all of at least %d", len(cov), n, 8+5*8*10)
	}
	var dones []time.Duration
	for _, c := range cov {
		if c.startLate > 0 {
			t.Errorf("%s: its first pass started %v later than %v after its write (or the previous pass)", c.id, c.startLate, 3*interval)
		}
		dones = append(dones, c.done)
	}
	slices.Sort(dones)
	passes := tr.count("pass-done")
	t.Logf("sync 200ms: %d events in %d passes; write → pass done: median %v, max %v", len(cov), passes, dones[len(dones)/2], dones[len(dones)-1])
	if passes < 3 {
		t.Fatalf("%d passes for events written over about a second, want several", passes)
	}
	time.Sleep(5 * interval)
	if n := tr.count("pass-start"); n != passes {
		t.Fatalf("%d passes started with nothing written since the last one", n-passes)
	}
}

// replaceLazyCommit swaps the engine's committer for a lazy one every
// interval over syncFn.
func replaceLazyCommit(t *testing.T, g *gateway, syncFn func() error, every time.Duration, log *zap.Logger) {
	swapCommit(t, g, func(e *engine) *groupCommit {
		return startLazyCommit(e.publishRaw, syncFn, func() error { return nil }, every, log)
	})
}

// TestLazySyncFailureIsSticky: with a lazy interval, once a background
// pass fails (an injected EIO: the disk cannot be made to fail on
// demand) the promise no longer holds, so every later request gets 503
// with Retry-After, no further pass is tried, the log says why once with
// how many acknowledged events are at risk, caddy_webhooks_store_up is 0
// and the readiness check answers 503 store-unavailable.
func TestLazySyncFailureIsSticky(t *testing.T) {
	const every = 20 * time.Millisecond
	admin := freeAddr(t)
	g := startReadyGateway(t, gatewayConfig{Global: "\t\tsync 1s", Admin: admin})
	var calls atomic.Int64
	core, logs := observer.New(zap.ErrorLevel)
	fail := make(chan struct{})
	replaceLazyCommit(t, g, func() error {
		calls.Add(1)
		<-fail
		return fmt.Errorf("fdatasync: %w", syscall.EIO)
	}, every, zap.New(core))
	for i := range 3 {
		if status, b := postOne(g, fmt.Sprint("before-", i)); status != http.StatusOK {
			t.Fatalf("lazy request %d while its pass runs: %d %s, want 200 at the write", i, status, b)
		}
	}
	close(fail)
	waitFor(t, 10*time.Second, "the failed pass to make the store refuse events", g.engine().syncFailed)
	for i := range 3 {
		status, hdr, b := g.post("/webhooks/v1/demo", []byte(`{}`), map[string]string{"X-Id": fmt.Sprint("after-", i)})
		if status != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" {
			t.Fatalf("request %d after a failed pass: %d %s, want 503 with Retry-After", i, status, b)
		}
	}
	time.Sleep(10 * every)
	if n := calls.Load(); n != 1 {
		t.Fatalf("background fsync tried %d times, want once (a failure is sticky)", n)
	}
	entries := logs.FilterMessageSnippet("event store fsync failed").All()
	if len(entries) != 1 {
		t.Fatalf("%d log lines about the failed fsync, want 1: %v", len(entries), entries)
	}
	fields := entries[0].ContextMap()
	if !strings.Contains(fmt.Sprint(fields["error"]), "input/output error") || fields["acknowledged_events_at_risk"] != int64(3) {
		t.Fatalf("log fields %v, want the reason and acknowledged_events_at_risk 3", fields)
	}
	if up := scrape(t, admin)["caddy_webhooks_store_up"]; up != 0 {
		t.Fatalf("caddy_webhooks_store_up %v after a failed fsync, want 0", up)
	}
	status, hdr, body := g.readiness(http.MethodGet)
	assertNotReady(t, status, hdr, body, "store-unavailable")
}

// TestLazySyncUnit drives the lazy committer alone: a publish is answered
// at its PubAck without waiting for any sync, no pass runs while nothing
// was acknowledged, an event acknowledged during a pass is left to the
// next one, and close stops the passes.
func TestLazySyncUnit(t *testing.T) {
	var seq atomic.Uint64
	passes := make(chan struct{}, 10)
	block := make(chan struct{})
	g := startLazyCommit(func(context.Context, *nats.Msg) (*jetstream.PubAck, error) {
		return &jetstream.PubAck{Stream: "T", Sequence: seq.Add(1)}, nil
	}, func() error {
		passes <- struct{}{}
		<-block
		return nil
	}, func() error { return nil }, 10*time.Millisecond, zapNop())
	select {
	case <-passes:
		t.Fatal("a pass ran with nothing acknowledged")
	case <-time.After(100 * time.Millisecond):
	}
	if _, err := g.publish(t.Context(), nats.NewMsg("a")); err != nil {
		t.Fatal(err)
	}
	<-passes // the first pass started, and hangs
	// The second publish is answered while the sync hangs.
	if _, err := g.publish(t.Context(), nats.NewMsg("b")); err != nil {
		t.Fatal(err)
	}
	close(block)
	<-passes // the next pass, for the event the first did not cover
	if err := g.close(); err != nil {
		t.Fatal(err)
	}
	if n := g.unsynced.Load(); n != 0 {
		t.Fatalf("%d events left unsynced after two passes, want 0", n)
	}
}

// TestReloadRefusesSyncChange: the committer is made with the store, so a
// reload that changes sync (to always, or another interval) is refused
// with an error that says to restart, and the running config keeps
// answering with its own setting. (Before the lazy passes nats-server
// refused these reloads itself, as its sync_interval changed.)
func TestReloadRefusesSyncChange(t *testing.T) {
	g := startGateway(t, gatewayConfig{Global: "\t\tsync 1s"})
	for _, to := range []string{"always", "2s"} {
		cfg := g.cfg
		cfg.Global = "\t\tsync " + to
		err := loadCaddyfile(cfg.caddyfile())
		if err == nil || !strings.Contains(err.Error(), "sync "+to+" (running: sync 1s)") || !strings.Contains(err.Error(), errSyncReload.Error()) {
			t.Fatalf("reload to sync %s: %v, want it refused with errSyncReload", to, err)
		}
	}
	if every := g.engine().commit.every; every != time.Second {
		t.Fatalf("committer's interval %v after refused reloads, want 1s", every)
	}
	if status, b := postOne(g, "after-refused-reload"); status != http.StatusOK {
		t.Fatalf("after refused reloads: %d %s", status, b)
	}
}

// TestLazySyncPassAtStop: with sync 1m, an event acknowledged just before
// the store stops is covered by a last pass at the stop (nats-server does
// not fsync its blocks when it stops), so a clean stop keeps "fsynced
// within <interval>"; a store with nothing acknowledged since its last
// pass stops without one.
func TestLazySyncPassAtStop(t *testing.T) {
	for _, publish := range []bool{true, false} {
		a := provisionApp(t, &App{Store: t.TempDir(), Listen: "off", Sync: "1m"})
		if err := a.Start(); err != nil {
			t.Fatal(err)
		}
		tr := &passTrace{}
		a.engine.commit.observer.Store(tr.observer())
		if publish {
			msg := nats.NewMsg(event.SubjectRoot + ".v1.stop.test")
			msg.Header.Set(event.HeaderID, "stop:1")
			if _, err := a.engine.publish(t.Context(), msg); err != nil {
				t.Fatal(err)
			}
		}
		if err := a.Stop(); err != nil {
			t.Fatal(err)
		}
		cov, ok, err := tr.coverage(time.Minute)
		switch {
		case err != nil:
			t.Fatal(err)
		case publish && (!ok || len(cov) != 1):
			t.Fatalf("the event acknowledged before the stop has no completed pass after it: %+v", tr.entries)
		case !publish && tr.count("pass-start") != 0:
			t.Fatal("a pass ran at the stop with nothing acknowledged")
		}
	}
}
