package caddymodule

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/hookgate/hookgate/event"
	"github.com/hookgate/hookgate/forwarder"
)

// writeStoreFixture rewrites testdata/store-v1 from this version's code:
//
//	go test ./caddymodule -run TestStoreCompatibility -args -write-store-fixture
//
// Do it only for a new fixture version (store-v2 beside v1): the point of
// the old one is that it was written by old code.
var writeStoreFixture = flag.Bool("write-store-fixture", false, "write testdata/store-v1 (a store for the compatibility test) instead of reading it")

// storeFixture is the compatibility fixture: a store directory written by
// Hookgate (events.json lists what it holds). Its subscriber credential and
// lock file are left out; the gateway makes new ones.
const storeFixture = "testdata/store-v1"

// fixtureEvent is one event of the fixture, as events.json lists it.
type fixtureEvent struct {
	ID      string `json:"id"`
	Subject string `json:"subject"`
	Body    string `json:"body"`
	// Outcome is the delivery state it was left in: delivered or failed
	// (dead-lettered).
	Outcome string `json:"outcome"`
}

// fixtureEvents are the events the fixture was written with.
var fixtureEvents = []fixtureEvent{
	{ID: "demo:compat-1", Subject: "webhooks.v1.demo.order.created", Body: `{"order":1}`, Outcome: "delivered"},
	{ID: "demo:compat-2", Subject: "webhooks.v1.demo.order.paid", Body: `{"order":1,"paid":true}`, Outcome: "delivered"},
	{ID: "demo:compat-3", Subject: "webhooks.v1.demo.unknown", Body: "not json \xff", Outcome: "delivered"},
	{ID: "demo:compat-4", Subject: "webhooks.v1.demo.order.refused", Body: `{"refuse":true}`, Outcome: "failed"},
}

// fixtureSink answers 400 to bodies holding "refuse" (dead-lettered at
// once) and 204 to the rest, counting calls.
func fixtureSink(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		b, _ := io.ReadAll(r.Body)
		if strings.Contains(string(b), "refuse") {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

// TestStoreCompatibility opens a store written by an earlier build with
// the current dependencies (nats-server above all): every event is there
// with its subject and body, the dead letter too, the delivery states read
// back, and the forwarder's consumer resumes where it was — nothing is
// delivered again. A dependency upgrade that cannot read the store fails
// here.
func TestStoreCompatibility(t *testing.T) {
	if *writeStoreFixture {
		writeFixture(t)
		return
	}
	dir := t.TempDir()
	if err := os.CopyFS(filepath.Join(dir, "store"), os.DirFS(storeFixture+"/store")); err != nil {
		t.Fatal(err)
	}
	srv, calls := fixtureSink(t)
	g := startGateway(t, gatewayConfig{Store: dir, Destinations: destination("sink", srv.URL, "\t\t\tmax_attempts 3\n\t\t\tbreaker off")})

	stored := map[string]fixtureEvent{}
	for _, m := range g.stored(event.StreamName) {
		stored[m.Header.Get(event.HeaderID)] = fixtureEvent{Subject: m.Subject, Body: string(m.Data)}
	}
	if len(stored) != len(fixtureEvents) {
		t.Errorf("%d events in the fixture's stream, want %d", len(stored), len(fixtureEvents))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, want := range fixtureEvents {
		got, ok := stored[want.ID]
		if !ok || got.Subject != want.Subject || got.Body != want.Body {
			t.Errorf("event %s: got subject %q body %q (present %v), want %q %q", want.ID, got.Subject, got.Body, ok, want.Subject, want.Body)
		}
		states, err := forwarder.ReadDeliveries(ctx, g.engine().js, want.ID)
		if err != nil || len(states) != 1 || string(states[0].Status) != want.Outcome {
			t.Errorf("event %s: delivery states %+v (%v), want one %s", want.ID, states, err, want.Outcome)
		}
	}
	if dlq := g.stored(event.DLQStreamName); len(dlq) != 1 || dlq[0].Header.Get(event.HeaderID) != "demo:compat-4" {
		t.Errorf("dead letters: %d, want demo:compat-4 alone", len(dlq))
	}
	// The consumer's state came back too: a new event is delivered, the
	// old ones are not delivered again.
	if status, _, b := g.post("/webhooks/v1/demo", []byte(`{"new":true}`), map[string]string{"X-Id": "compat-new"}); status != http.StatusOK {
		t.Fatalf("new event: %d %s", status, b)
	}
	waitFor(t, 10*time.Second, "the new event's delivery", func() bool { return calls.Load() >= 1 })
	time.Sleep(500 * time.Millisecond)
	if n := calls.Load(); n != 1 {
		t.Errorf("the sink got %d calls after the restart, want 1 (the new event): old events were delivered again", n)
	}
}

// writeFixture writes the fixture: the events, delivered (one refused and
// dead-lettered), then a clean stop, then a copy of the store without its
// lock and credential.
func writeFixture(t *testing.T) {
	dir := t.TempDir()
	srv, _ := fixtureSink(t)
	g := startGateway(t, gatewayConfig{Store: dir, Destinations: destination("sink", srv.URL, "\t\t\tmax_attempts 3\n\t\t\tbreaker off")})
	for _, e := range fixtureEvents {
		id := strings.TrimPrefix(e.ID, "demo:")
		typ := strings.TrimPrefix(e.Subject, "webhooks.v1.demo.")
		if status, _, b := g.post("/webhooks/v1/demo", []byte(e.Body), map[string]string{"X-Id": id, "X-Type": typ}); status != http.StatusOK {
			t.Fatalf("%s: %d %s", e.ID, status, b)
		}
	}
	ctx := context.Background()
	waitFor(t, 20*time.Second, "every delivery state", func() bool {
		for _, e := range fixtureEvents {
			states, err := forwarder.ReadDeliveries(ctx, g.engine().js, e.ID)
			if err != nil || len(states) != 1 || string(states[0].Status) != e.Outcome {
				return false
			}
		}
		return len(g.stored(event.DLQStreamName)) == 1
	})
	time.Sleep(time.Second) // consumer acks reach the disk
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(storeFixture); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "store")
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() || rel == "hookgate.lock" || rel == subscriberSeedFile {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		dst := filepath.Join(storeFixture, "store", rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.MarshalIndent(fixtureEvents, "", "  ")
	if err := os.WriteFile(filepath.Join(storeFixture, "events.json"), append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", storeFixture)
	fmt.Println("fixture written; commit testdata/store-v1")
}
