package forwarder

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookgate/hookgate/event"
)

// TestHeldSetKeepsMessagesAlive holds a real message past its consumer's
// AckWait: JetStream must not hand it out again while it is held, and must
// once it is released.
func TestHeldSetKeepsMessagesAlive(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cons, err := e.js.CreateOrUpdateConsumer(ctx, event.StreamName, jetstream.ConsumerConfig{
		Durable: "held", AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.publish("h:1", "s", "t", []byte(`{}`), nil)
	m := fetchOne(t, cons, time.Second)
	if m == nil {
		t.Fatal("no message")
	}

	s := newHeldSet()
	s.add(m)
	if got := s.snapshot(); len(got) != 1 || got[0] != m {
		t.Fatalf("snapshot %v, want the held message", got)
	}
	kctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { s.keepAlive(kctx, 250*time.Millisecond); close(done) }()
	if again := fetchOne(t, cons, 2500*time.Millisecond); again != nil {
		t.Fatal("a held message was handed out again after its AckWait")
	}
	stop()
	<-done
	s.remove(m)
	if got := s.snapshot(); len(got) != 0 {
		t.Fatalf("snapshot after remove: %d messages", len(got))
	}
	again := fetchOne(t, cons, 3*time.Second)
	if again == nil {
		t.Fatal("a released message was not handed out again after its AckWait")
	}
	_ = again.Ack()
}

// fetchOne fetches one message within d, nil when none came.
func fetchOne(t *testing.T, cons jetstream.Consumer, d time.Duration) jetstream.Msg {
	t.Helper()
	m, err := cons.Next(jetstream.FetchMaxWait(d))
	if errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, jetstream.ErrMsgIteratorClosed) || errors.Is(err, nats.ErrTimeout) {
		return nil
	}
	if err != nil {
		if errors.Is(err, jetstream.ErrNoHeartbeat) {
			return nil
		}
		t.Fatalf("fetch: %v", err)
	}
	return m
}
