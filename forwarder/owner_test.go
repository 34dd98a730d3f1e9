package forwarder

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookgate/hookgate/event"
)

// TestOwnerRecordsOnUpgrade: a gateway that finds no OwnerBucket (it was
// made by a version that kept no records) adopts the consumer of a
// destination it delivered through, so nothing is sent again, but not a
// fwd-* consumer someone else made and pulled from: that destination,
// configured later, still gets every stored event.
func TestOwnerRecordsOnUpgrade(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, id := range []string{"a", "b", "c"} {
		e.publish("demo:"+id, "demo", "t", []byte(`{}`), nil)
	}
	sk := newSink(t, status(http.StatusOK))
	f := e.start(fast("old", sk.srv.URL))
	waitFor(t, 10*time.Second, "3 deliveries", func() bool { return sk.ackedCount() == 3 })
	if err := f.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	before, err := e.js.Consumer(ctx, event.StreamName, ConsumerName("old"))
	if err != nil {
		t.Fatal(err)
	}

	foreign, err := e.js.CreateOrUpdateConsumer(ctx, event.StreamName, jetstream.ConsumerConfig{Durable: ConsumerName("later"), AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := foreign.Fetch(2, jetstream.FetchMaxWait(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.js.DeleteKeyValue(ctx, OwnerBucket); err != nil {
		t.Fatal(err)
	}

	e.start(fast("old", sk.srv.URL))
	after, err := e.js.Consumer(ctx, event.StreamName, ConsumerName("old"))
	if err != nil {
		t.Fatal(err)
	}
	if !after.CachedInfo().Created.Equal(before.CachedInfo().Created) {
		t.Fatal("the upgrade replaced the consumer of a destination the gateway delivered through")
	}
	later := newSink(t, status(http.StatusOK))
	e.start(fast("later", later.srv.URL))
	waitFor(t, 10*time.Second, "every event at destination later", func() bool { return later.ackedCount() == 3 })
}
