package forwarder

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/hookgate/hookgate/event"
)

// DestinationStatus is what an operator sees of a running destination.
type DestinationStatus struct {
	// Name is the destination's name.
	Name string `json:"name"`
	// URL is the destination's URL with any password redacted.
	URL string `json:"url"`
	// Subjects are the subject filters of the destination's consumer.
	Subjects []string `json:"subjects"`
	// Concurrency is the most requests in flight to the destination.
	Concurrency int `json:"concurrency"`
	// Consumer is the durable JetStream consumer, "fwd-<name>".
	Consumer string `json:"consumer"`
	// Headers names the headers added to every delivery; their values are
	// secrets and always read "REDACTED".
	Headers map[string]string `json:"headers,omitempty"`
	// Paused is true while the destination is handed no events, whatever
	// the cause; PausedReason says why and what to do, in words.
	Paused       bool   `json:"paused"`
	PausedReason string `json:"paused_reason,omitempty"`
	// PausedUntil is when the pause ends by itself: null when the
	// destination is not paused or paused until an operator resumes it
	// (after a 410 Gone).
	PausedUntil *time.Time `json:"paused_until"`
	// Circuit is the circuit breaker's state: closed, open or half-open.
	// A 410 pauses the destination without opening the circuit.
	Circuit string `json:"circuit"`
	// OpenUntil is when an open circuit lets its probe through.
	OpenUntil *time.Time `json:"open_until,omitempty"`
	// Pending counts matching events not yet handed out, AckPending those
	// handed out and not yet acked (in an attempt or waiting out a retry
	// delay), Redelivered those handed out more than once.
	Pending     uint64 `json:"pending"`
	AckPending  int    `json:"ack_pending"`
	Redelivered int    `json:"redelivered"`
}

// Redacted stands for a configured header's value wherever it is shown.
const Redacted = "REDACTED"

// ErrNotPaused is what Resume returns for a destination that is not
// paused: there is nothing to resume.
var ErrNotPaused = errors.New("destination is not paused")

// Name returns the destination's name.
func (f *Forwarder) Name() string { return f.cfg.Name }

// Status reports why the destination is paused (if it is), its circuit and
// its consumer's counts.
func (f *Forwarder) Status(ctx context.Context) (*DestinationStatus, error) {
	st := &DestinationStatus{
		Name:        f.cfg.Name,
		URL:         RedactURL(f.cfg.URL),
		Subjects:    f.cfg.Subjects,
		Concurrency: f.cfg.Concurrency,
		Consumer:    f.consumer,
	}
	for name := range f.cfg.Headers {
		if st.Headers == nil {
			st.Headers = make(map[string]string, len(f.cfg.Headers))
		}
		st.Headers[name] = Redacted
	}
	circuit, until, goneAt := f.breaker.snapshot()
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
	p := explainPause(pauseFacts{
		name: f.cfg.Name, now: time.Now(), circuit: circuit, openUntil: until,
		goneAt: goneAt, consumerPause: info.Config.PauseUntil,
	})
	st.Paused, st.PausedReason, st.PausedUntil = p.paused, p.reason, p.until
	return st, nil
}

// pauseFacts is what explainPause weighs.
type pauseFacts struct {
	name string
	now  time.Time
	// circuit and openUntil are this process's breaker.
	circuit   breakerState
	openUntil time.Time
	// goneAt is when a 410 held this process's forwarder, zero if none.
	goneAt time.Time
	// consumerPause is the durable consumer's PauseUntil, which outlives
	// the process: a 410 sets it `forever` ahead.
	consumerPause *time.Time
}

// pauseExplained is explainPause's answer.
type pauseExplained struct {
	paused bool
	reason string
	until  *time.Time
}

// explainPause says whether a destination is paused, why, and until when,
// in words an operator can act on. A 410 is recognised from this
// process's breaker or, after a restart, from the consumer's pause lying
// `forever` ahead of when it was set.
func explainPause(p pauseFacts) pauseExplained {
	resume := "resume it with 'caddy webhooks resume " + p.name + "'"
	goneAt := p.goneAt
	if goneAt.IsZero() && p.consumerPause != nil && p.consumerPause.Sub(p.now) > forever/2 {
		goneAt = p.consumerPause.Add(-forever)
	}
	switch {
	case !goneAt.IsZero():
		return pauseExplained{paused: true, reason: "destination answered 410 Gone at " +
			goneAt.UTC().Format(time.RFC3339) + ": paused until resumed; fix its url and reload, or " + resume}
	case p.circuit == circuitOpen:
		until := p.openUntil.UTC()
		return pauseExplained{paused: true, until: &until, reason: "circuit open after repeated failed attempts: one probe goes at " +
			until.Format(time.RFC3339) + " and its success closes the circuit; or " + resume + " to try now"}
	case p.circuit == circuitHalfOpen:
		return pauseExplained{paused: true, reason: "circuit half-open: one probe attempt decides whether the destination is healthy again"}
	case p.consumerPause != nil && p.consumerPause.Sub(p.now) > 2*resumeKick:
		// (A pause ending sooner is Resume's own kick.)
		until := p.consumerPause.UTC()
		return pauseExplained{paused: true, until: &until, reason: "consumer paused until " + until.Format(time.RFC3339) +
			" by an open circuit of an earlier run or another gateway; or " + resume + " to lift it now"}
	}
	return pauseExplained{}
}

// RedactURL returns raw with the password of its userinfo hidden, for
// logs, errors and status; "(unparsable URL)" when raw does not parse.
// The gateway's NATS and cluster URLs use it too.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
