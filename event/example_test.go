package event_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookgate/hookgate/event"
)

// An internal service reads Stripe's v1 invoice events straight from the
// stream with its own durable consumer. Here an in-process server stands in
// for the gateway's (by default at nats://127.0.0.1:4222), and the event is
// published the way the gateway stores it.
func Example() {
	srv, nc := startServer()
	defer srv.Shutdown()
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	js, _ := jetstream.New(nc)

	// What the gateway does when Stripe posts evt_1 to /webhooks/v1/stripe.
	_, _ = js.CreateStream(ctx, jetstream.StreamConfig{Name: event.StreamName, Subjects: []string{"webhooks.>"}})
	msg := nats.NewMsg(event.Subject("v1", "stripe", "invoice.paid"))
	msg.Data = []byte(`{"id":"evt_1","type":"invoice.paid"}`)
	msg.Header.Set(event.HeaderID, "stripe:evt_1")
	msg.Header.Set(event.HeaderSource, "stripe")
	msg.Header.Set(event.HeaderVersion, "v1")
	msg.Header.Set(event.HeaderType, "invoice.paid")
	msg.Header.Set(event.HeaderReceivedAt, "2026-11-28T12:00:00Z")
	msg.Header.Set("Stripe-Signature", "t=1,v1=...")
	_, _ = js.PublishMsg(ctx, msg)

	// What the internal service does.
	cons, err := js.CreateOrUpdateConsumer(ctx, event.StreamName, jetstream.ConsumerConfig{
		Durable:       "billing",
		FilterSubject: "webhooks.v1.stripe.invoice.>",
		AckPolicy:     jetstream.AckExplicitPolicy,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	batch, _ := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	for m := range batch.Messages() {
		e, err := event.DecodeJetStream(m)
		if err != nil {
			_ = m.Term() // not a Hookgate event
			continue
		}
		// Process e.Body idempotently, keyed by e.ID, then:
		_ = m.Ack()
		fmt.Println(e.ID, e.Source, e.Version, e.Type, e.Subject)
		fmt.Println(e.ReceivedAt.Format(time.RFC3339), e.Header.Get("Stripe-Signature"), string(e.Body))
	}
	// Output:
	// stripe:evt_1 stripe v1 invoice.paid webhooks.v1.stripe.invoice.paid
	// 2026-11-28T12:00:00Z t=1,v1=... {"id":"evt_1","type":"invoice.paid"}
}

func startServer() (*server.Server, *nats.Conn) {
	dir, _ := os.MkdirTemp("", "hookgate-example")
	srv, err := server.NewServer(&server.Options{JetStream: true, StoreDir: dir, DontListen: true})
	if err != nil {
		panic(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		panic("nats server not ready")
	}
	nc, err := nats.Connect("", nats.InProcessServer(srv))
	if err != nil {
		panic(err)
	}
	return srv, nc
}
