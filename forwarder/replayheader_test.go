package forwarder

import (
	"testing"
	"time"
)

// TestProviderReplayHeaderDropped: a Webhook-Replay header the provider
// sent is stored as received but never forwarded, so a fresh delivery
// cannot pass for a replay at the internal service.
func TestProviderReplayHeaderDropped(t *testing.T) {
	e := newEnv(t)
	s := newSink(t, nil)
	e.start(fast("replayhdr", s.srv.URL))
	e.publish("x:forged", "x", "t", []byte(`{}`), map[string]string{HeaderWebhookReplay: "true"})
	waitFor(t, 10*time.Second, "the delivery", func() bool { return s.ackedCount() == 1 })
	s.mu.Lock()
	defer s.mu.Unlock()
	if got := s.all[0].header.Get(HeaderWebhookReplay); got != "" {
		t.Fatalf("a fresh delivery went out with Webhook-Replay %q", got)
	}
}
