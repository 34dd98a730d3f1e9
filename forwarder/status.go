package forwarder

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/hookgate/hookgate/event"
)

// DestinationStatus is what an operator sees of a running destination.
type DestinationStatus struct {
	Name string `json:"name"`
	// URL is the destination's URL with any password redacted.
	URL         string   `json:"url"`
	Subjects    []string `json:"subjects"`
	Concurrency int      `json:"concurrency"`
	Consumer    string   `json:"consumer"`
	// Circuit is closed, open or half-open; OpenUntil is set while it is
	// not closed (far in the future after a 410).
	Circuit   string     `json:"circuit"`
	OpenUntil *time.Time `json:"open_until,omitempty"`
	// PausedUntil is the consumer's pause, set by an open circuit or a
	// 410, and kept across restarts.
	PausedUntil *time.Time `json:"paused_until,omitempty"`
	// Pending counts matching events not yet handed out, AckPending those
	// handed out and not yet acked (in an attempt or waiting out a retry
	// delay), Redelivered those handed out more than once.
	Pending     uint64 `json:"pending"`
	AckPending  int    `json:"ack_pending"`
	Redelivered int    `json:"redelivered"`
}

// Name returns the destination's name.
func (f *Forwarder) Name() string { return f.cfg.Name }

// Status reports the destination's circuit and its consumer's counts.
func (f *Forwarder) Status(ctx context.Context) (*DestinationStatus, error) {
	st := &DestinationStatus{
		Name:        f.cfg.Name,
		URL:         redactURL(f.cfg.URL),
		Subjects:    f.cfg.Subjects,
		Concurrency: f.cfg.Concurrency,
		Consumer:    f.consumer,
	}
	circuit, until := f.breaker.snapshot()
	st.Circuit = circuit.String()
	if !until.IsZero() {
		st.OpenUntil = &until
	}
	cons, err := f.js.Consumer(ctx, event.StreamName, f.consumer)
	if err != nil {
		return nil, fmt.Errorf("destination %q: consumer %q: %w", f.cfg.Name, f.consumer, err)
	}
	info := cons.CachedInfo()
	st.Pending = info.NumPending
	st.AckPending = info.NumAckPending
	st.Redelivered = info.NumRedelivered
	if p := info.Config.PauseUntil; p != nil && p.After(time.Now()) {
		st.PausedUntil = p
	}
	return st, nil
}

// redactURL hides the password of a URL's userinfo.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Redacted()
}
