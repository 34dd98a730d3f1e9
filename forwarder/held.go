package forwarder

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// heldSet is the keep-alive set: the messages a run has in hand but is not
// attempting (waiting for the breaker, the rate limiter, a retry delay or
// their turn behind an ordering key). keepAlive tells JetStream that they
// are still being worked on, so their AckWait does not expire and JetStream
// does not hand them to another forwarder while they wait.
type heldSet struct {
	mu sync.Mutex
	m  map[jetstream.Msg]struct{}
}

func newHeldSet() *heldSet { return &heldSet{m: make(map[jetstream.Msg]struct{})} }

// add marks m as waiting in hand.
func (s *heldSet) add(m jetstream.Msg) {
	s.mu.Lock()
	s.m[m] = struct{}{}
	s.mu.Unlock()
}

// remove undoes add; removing a message not held is a no-op.
func (s *heldSet) remove(m jetstream.Msg) {
	s.mu.Lock()
	delete(s.m, m)
	s.mu.Unlock()
}

// snapshot returns the messages held now, in no order.
func (s *heldSet) snapshot() []jetstream.Msg {
	s.mu.Lock()
	defer s.mu.Unlock()
	msgs := make([]jetstream.Msg, 0, len(s.m))
	for m := range s.m {
		msgs = append(msgs, m)
	}
	return msgs
}

// keepAlive sends InProgress for every held message each interval until
// ctx ends. Pick an interval well below the consumer's AckWait.
func (s *heldSet) keepAlive(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, m := range s.snapshot() {
			_ = m.InProgress() // fails only once acked: nothing to keep then
		}
	}
}
