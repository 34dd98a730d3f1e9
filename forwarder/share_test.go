package forwarder

import (
	"context"
	"testing"

	"golang.org/x/time/rate"

	"github.com/hookgate/hookgate/event"
)

// TestSharedConsumerWindow: a consumer shared with other gateways gets
// MaxAckPending = Concurrency, so JetStream caps what all of them take; a
// consumer of one gateway keeps room for events waiting to retry.
func TestSharedConsumerWindow(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct {
		shared bool
		want   int
	}{{false, 3 + 16}, {true, 3}} {
		cfg := fast("win", "http://127.0.0.1:1/")
		cfg.Concurrency, cfg.Shared = 3, c.shared
		f := e.start(cfg)
		cons, err := e.js.Consumer(context.Background(), event.StreamName, ConsumerName("win"))
		if err != nil {
			t.Fatal(err)
		}
		if got := cons.CachedInfo().Config.MaxAckPending; got != c.want {
			t.Errorf("shared %v: MaxAckPending %d, want %d", c.shared, got, c.want)
		}
		if err := f.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSetRateShare: n gateways sharing a destination each run its rate
// divided by n, with the burst divided and rounded up; fewer than one
// gateway counts as one.
func TestSetRateShare(t *testing.T) {
	e := newEnv(t)
	cfg := fast("rated", "http://127.0.0.1:1/")
	cfg.Rate, cfg.Burst = 30, 4
	f, err := New(e.js, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		n     int
		limit rate.Limit
		burst int
	}{{1, 30, 4}, {3, 10, 2}, {4, 7.5, 1}, {0, 30, 4}} {
		f.SetRateShare(c.n)
		if f.limiter.Limit() != c.limit || f.limiter.Burst() != c.burst {
			t.Errorf("%d gateways: %v/s burst %d, want %v/s burst %d", c.n, f.limiter.Limit(), f.limiter.Burst(), c.limit, c.burst)
		}
		if int(f.rateShare.Load()) != max(1, c.n) {
			t.Errorf("%d gateways: RateShare %d", c.n, int(f.rateShare.Load()))
		}
	}
}
