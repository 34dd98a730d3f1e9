// Package forwarder delivers the events of Hookgate's WEBHOOKS stream to
// internal HTTP services, one durable JetStream pull consumer per
// destination ("fwd-<name>"), at least once.
package forwarder

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Config describes one destination.
type Config struct {
	// Name identifies the destination; its consumer is "fwd-<Name>".
	Name string
	// URL receives a POST per event.
	URL string
	// Subjects filter the events this destination gets (NATS wildcards).
	// Empty means every event ("webhooks.>").
	Subjects []string
	// Timeout bounds one delivery attempt.
	Timeout time.Duration
	// MaxAttempts is how many attempts an event gets before it is
	// dead-lettered.
	MaxAttempts int
	// BackoffBase and BackoffCap shape the capped exponential backoff with
	// full jitter between attempts.
	BackoffBase, BackoffCap time.Duration
}

// Validate reports the first problem with c, naming the field.
func (c *Config) Validate() error { return errors.New("forwarder: not implemented") }

// Forwarder delivers the events of one destination.
type Forwarder struct{}

// New checks cfg and returns a Forwarder that is not yet running.
func New(js jetstream.JetStream, cfg Config, logger *zap.Logger) (*Forwarder, error) {
	return nil, errors.New("forwarder: not implemented")
}

// Start creates or updates the destination's durable consumer and starts
// delivering. It returns once the consumer exists.
func (f *Forwarder) Start(ctx context.Context) error { return errors.New("not implemented") }

// Stop stops pulling new events and waits until in-flight deliveries have
// finished (acked or nak'd), or ctx is done.
func (f *Forwarder) Stop(ctx context.Context) error { return nil }
