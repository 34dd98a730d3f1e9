package caddymodule

import (
	"context"
	"crypto/tls"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookgate/hookgate/event"
	"github.com/hookgate/hookgate/internal/testcert"
)

// TestNATSListener: an internal service connects to the embedded server's
// client listener — over TLS, with a password — and reads a delivered event
// with its own durable consumer; wrong or missing credentials and plain
// TCP are refused.
func TestNATSListener(t *testing.T) {
	certs := testcert.New(t)
	dir := writeTLSFiles(t, certs)
	certFile, keyFile, pool := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem"), certs.CAPool
	listen := freeAddr(t)
	g := startGateway(t, gatewayConfig{Global: "\t\tlisten " + listen + "\n\t\tuser billing\n\t\tpassword {env.HOOKGATE_TEST_NATS_PASSWORD}\n\t\ttls " + certFile + " " + keyFile})
	_ = g

	tlsOpt := nats.Secure(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
	if nc, err := nats.Connect("nats://"+listen, tlsOpt, nats.UserInfo("billing", "wrong"), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("a wrong password was accepted")
	}
	if nc, err := nats.Connect("nats://"+listen, nats.UserInfo("billing", testNATSPassword), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("a plain-text client was accepted by a TLS listener")
	}
	nc, err := nats.Connect("nats://"+listen, tlsOpt, nats.UserInfo("billing", testNATSPassword))
	if err != nil {
		t.Fatalf("internal service cannot connect: %v", err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := js.CreateOrUpdateConsumer(ctx, event.StreamName, jetstream.ConsumerConfig{
		Durable: "billing", FilterSubject: "webhooks.v1.demo.invoice.>", AckPolicy: jetstream.AckExplicitPolicy,
	})
	if err != nil {
		t.Fatal(err)
	}
	g.post("/webhooks/v1/demo", []byte(`{"other":true}`), map[string]string{"X-Id": "o1", "X-Type": "customer.created"})
	if status, _, b := g.post("/webhooks/v1/demo", []byte(`{"invoice":7}`), map[string]string{"X-Id": "i7", "X-Type": "invoice.paid"}); status != 200 {
		t.Fatalf("status %d %s", status, b)
	}
	batch, err := cons.Fetch(2, jetstream.FetchMaxWait(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var got []*event.Event
	for m := range batch.Messages() {
		e, err := event.DecodeJetStream(m)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, e)
		_ = m.Ack()
	}
	if len(got) != 1 || got[0].ID != "demo:i7" || string(got[0].Body) != `{"invoice":7}` || got[0].Type != "invoice.paid" || got[0].Sequence == 0 {
		t.Fatalf("the filtered consumer read %+v", got)
	}
}

const testNATSPassword = "s3cret-for-tests"

func init() { os.Setenv("HOOKGATE_TEST_NATS_PASSWORD", testNATSPassword) }
