package caddymodule

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookgate/hookgate/event"
)

// TestSubscriberCannotPreTakeDestination: a subscriber (the generated
// credential, a real nats.go client) creates fwd-future, the consumer of a
// destination not configured yet, and pulls and acks events through it.
// When the operator then adds destination future and reloads, the gateway
// deletes that consumer and makes its own: every stored event reaches the
// destination. A later reload keeps the gateway's own consumer.
func TestSubscriberCannotPreTakeDestination(t *testing.T) {
	sk := newSink(t, always(http.StatusOK))
	future := newSink(t, always(http.StatusOK))
	listen := freeAddr(t)
	g := startGateway(t, gatewayConfig{Global: "\t\tlisten " + listen, Destinations: destination("sink", sk.srv.URL, "")})
	const n = 13
	for i := range n {
		if status, _, b := g.post("/webhooks/v1/demo", []byte(`{}`), map[string]string{"X-Id": fmt.Sprint("e", i)}); status != 200 {
			t.Fatalf("status %d %s", status, b)
		}
	}

	nkeyOpt, err := nats.NkeyOptionFromSeed(filepath.Join(g.store, subscriberSeedFile))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect("nats://"+listen, nkeyOpt)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cons, err := js.CreateOrUpdateConsumer(ctx, event.StreamName, jetstream.ConsumerConfig{
		Durable: "fwd-future", FilterSubject: "webhooks.>", AckPolicy: jetstream.AckExplicitPolicy,
	})
	if err != nil {
		t.Fatalf("subscriber cannot create fwd-future (the test needs it to): %v", err)
	}
	batch, err := cons.Fetch(5, jetstream.FetchMaxWait(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	acked := 0
	for m := range batch.Messages() {
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
		acked++
	}
	if acked != 5 {
		t.Fatalf("subscriber acked %d events, want 5", acked)
	}

	cfg := g.cfg
	cfg.Destinations += destination("future", future.srv.URL, "")
	g.load(cfg)
	waitFor(t, 15*time.Second, "every event at destination future", func() bool {
		_, hdrs := future.received()
		ids := map[string]bool{}
		for _, h := range hdrs {
			ids[h.Get("Webhook-Id")] = true
		}
		return len(ids) == n
	})
	own, err := g.engine().js.Consumer(ctx, event.StreamName, "fwd-future")
	if err != nil {
		t.Fatal(err)
	}

	cfg.Destinations += destination("other", sk.srv.URL, "")
	g.load(cfg)
	again, err := g.engine().js.Consumer(ctx, event.StreamName, "fwd-future")
	if err != nil {
		t.Fatal(err)
	}
	if !again.CachedInfo().Created.Equal(own.CachedInfo().Created) {
		t.Fatal("a reload deleted the gateway's own consumer fwd-future")
	}
	if got := future.calls.Load(); got != n {
		t.Errorf("destination future got %d deliveries, want %d", got, n)
	}
}
