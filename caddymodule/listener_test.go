package caddymodule

import (
	"context"
	"crypto/tls"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
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

// TestNATSListenerPermissions: with the defaults, a local process on the
// NATS listener cannot write events or touch the gateway's streams and
// consumers. Without credentials it is refused; with the generated
// subscriber credential it reads events through its own consumer, but
// publishing a "verified" event, purging or deleting a stream, deleting a
// message, and editing, pulling from or deleting the gateway's fwd-*
// consumer are all refused, and nothing changes in the store.
func TestNATSListenerPermissions(t *testing.T) {
	sk := newSink(t, always(http.StatusOK))
	listen := freeAddr(t)
	g := startGateway(t, gatewayConfig{Global: "\t\tlisten " + listen, Destinations: destination("sink", sk.srv.URL, "")})
	if status, _, b := g.post("/webhooks/v1/demo", []byte(`{"n":1}`), map[string]string{"X-Id": "p1", "X-Type": "invoice.paid"}); status != 200 {
		t.Fatalf("status %d %s", status, b)
	}

	if nc, err := nats.Connect("nats://"+listen, nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("a client without credentials was let in")
	}
	creds := filepath.Join(g.store, subscriberSeedFile)
	fi, err := os.Stat(creds)
	if err != nil {
		t.Fatalf("no generated subscriber credential: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("credential %s has mode %v, want 0600", creds, fi.Mode().Perm())
	}
	nkeyOpt, err := nats.NkeyOptionFromSeed(creds)
	if err != nil {
		t.Fatal(err)
	}
	violations := make(chan error, 64)
	nc, err := nats.Connect("nats://"+listen, nkeyOpt, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		violations <- err
	}))
	if err != nil {
		t.Fatalf("the subscriber credential is refused: %v", err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// Allowed: its own consumer, and reading through it.
	cons, err := js.CreateOrUpdateConsumer(ctx, event.StreamName, jetstream.ConsumerConfig{
		Durable: "billing", FilterSubject: "webhooks.v1.demo.>", AckPolicy: jetstream.AckExplicitPolicy,
	})
	if err != nil {
		t.Fatalf("subscriber cannot create its own consumer: %v", err)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	read := 0
	for m := range batch.Messages() {
		e, err := event.DecodeJetStream(m)
		if err != nil || e.ID != "demo:p1" {
			t.Fatalf("read %+v, %v", e, err)
		}
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatalf("subscriber cannot ack on its own consumer: %v", err)
		}
		read++
	}
	if read != 1 {
		t.Fatalf("subscriber read %d events through its consumer, want 1", read)
	}

	refused := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s: allowed, want refused", what)
		}
	}
	short := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, time.Second) }

	forged := nats.NewMsg("webhooks.v1.github.push")
	forged.Data = []byte(`{"forged":true}`)
	forged.Header.Set(event.HeaderID, "github:forged")
	forged.Header.Set("Hookgate-Verified", "github")
	c, cc := short()
	_, err = js.PublishMsg(c, forged)
	cc()
	refused("JetStream publish to an event subject", err)
	if err := nc.PublishMsg(forged); err != nil {
		t.Fatal(err)
	}
	_ = nc.Flush()

	s, err := js.Stream(ctx, event.StreamName)
	if err != nil {
		t.Fatalf("subscriber cannot read stream info: %v", err)
	}
	c, cc = short()
	refused("purge", s.Purge(c))
	cc()
	c, cc = short()
	refused("delete a message", s.DeleteMsg(c, 1))
	cc()
	c, cc = short()
	refused("delete the stream", js.DeleteStream(c, event.StreamName))
	cc()
	c, cc = short()
	_, err = js.UpdateConsumer(c, event.StreamName, jetstream.ConsumerConfig{
		Durable: "fwd-sink", FilterSubject: "webhooks.v1.nothing", AckPolicy: jetstream.AckExplicitPolicy,
	})
	cc()
	refused("edit the gateway's consumer fwd-sink", err)
	c, cc = short()
	refused("delete the gateway's consumer fwd-sink", js.DeleteConsumer(c, event.StreamName, "fwd-sink"))
	cc()
	if fwd, err := js.Consumer(ctx, event.StreamName, "fwd-sink"); err != nil {
		t.Errorf("subscriber cannot read the gateway consumer's info: %v", err)
	} else if b, err := fwd.Fetch(1, jetstream.FetchMaxWait(time.Second)); err == nil {
		for range b.Messages() {
			t.Error("subscriber pulled an event from the gateway's consumer fwd-sink")
		}
	}

	// The server names every refused subject.
	seen := ""
	for _, want := range []string{`"webhooks.v1.github.push"`, "$JS.API.STREAM.PURGE.WEBHOOKS", "$JS.API.STREAM.DELETE.WEBHOOKS",
		"$JS.API.CONSUMER.CREATE.WEBHOOKS.fwd-sink", "$JS.API.CONSUMER.DELETE.WEBHOOKS.fwd-sink", "$JS.API.CONSUMER.MSG.NEXT.WEBHOOKS.fwd-sink"} {
		for !strings.Contains(seen, want) {
			select {
			case err := <-violations:
				seen += err.Error() + "\n"
			case <-time.After(5 * time.Second):
				t.Fatalf("no permissions violation for %s; the server reported:\n%s", want, seen)
			}
		}
	}

	// Nothing changed: one event, not forged; the stream and the
	// gateway's consumer as they were.
	msgs := g.stored(event.StreamName)
	if len(msgs) != 1 || msgs[0].Header.Get(event.HeaderID) != "demo:p1" {
		ids := []string{}
		for _, m := range msgs {
			ids = append(ids, m.Subject+" "+m.Header.Get(event.HeaderID))
		}
		t.Fatalf("stream holds %v, want only demo:p1", ids)
	}
	info, err := g.engine().js.Consumer(ctx, event.StreamName, "fwd-sink")
	if err != nil {
		t.Fatalf("the gateway's consumer is gone: %v", err)
	}
	if f := info.CachedInfo().Config.FilterSubjects; len(f) > 0 && f[0] == "webhooks.v1.nothing" || info.CachedInfo().Config.FilterSubject == "webhooks.v1.nothing" {
		t.Fatal("the subscriber edited the gateway's consumer")
	}

	// A destination added by a reload is the gateway's too.
	cfg := g.cfg
	cfg.Destinations += destination("added", sk.srv.URL, "")
	g.load(cfg)
	c, cc = short()
	_, err = js.CreateOrUpdateConsumer(c, event.StreamName, jetstream.ConsumerConfig{
		Durable: "fwd-added", FilterSubject: "webhooks.v1.nothing", AckPolicy: jetstream.AckExplicitPolicy,
	})
	cc()
	refused("edit fwd-added, the consumer of a destination added by a reload", err)

	// The gateway still stores and forwards.
	if status, _, b := g.post("/webhooks/v1/demo", []byte(`{"n":2}`), map[string]string{"X-Id": "p2"}); status != 200 {
		t.Fatalf("status %d %s", status, b)
	}
	waitFor(t, 10*time.Second, "the events forwarded", func() bool { return sk.calls.Load() >= 3 })
}

// TestSubscriberCredentialReused: the generated credential survives a
// restart, so internal services need no new one.
func TestSubscriberCredentialReused(t *testing.T) {
	listen := freeAddr(t)
	g := startGateway(t, gatewayConfig{Global: "\t\tlisten " + listen})
	creds := filepath.Join(g.store, subscriberSeedFile)
	before, err := os.ReadFile(creds)
	if err != nil {
		t.Fatal(err)
	}
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	g.load(g.cfg)
	after, err := os.ReadFile(creds)
	if err != nil || string(after) != string(before) {
		t.Fatalf("credential changed across a restart (err %v)", err)
	}
	opt, err := nats.NkeyOptionFromSeed(creds)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect("nats://"+listen, opt)
	if err != nil {
		t.Fatalf("the reused credential is refused: %v", err)
	}
	nc.Close()
}
