package forwarder

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/hookgate/hookgate/event"
)

// ErrNotRunning means the destination's forwarder is not started, so it
// cannot make a replay attempt now; the caller retries later.
var ErrNotRunning = errors.New("forwarder: destination is not running")

// ErrEventGone means the event is no longer in the WEBHOOKS stream (its
// retention ran out): it cannot be replayed.
var ErrEventGone = errors.New("forwarder: event no longer stored")

// ErrFiltered means the destination's filter rejects the event: a replay
// does not deliver it (the filter of the running config decides, as for
// a fresh event).
var ErrFiltered = errors.New("forwarder: the destination's filter rejects this event")

// ReplayResult is what one replay attempt came to.
type ReplayResult struct {
	// EventID is the replayed event's id.
	EventID string
	// Attempt is the Webhook-Attempt number the attempt carried.
	Attempt int
	// Status is the event's delivery status at the destination afterwards:
	// delivered, retrying (RetryIn says when to try again) or failed (the
	// event was dead-lettered again).
	Status Status
	// RetryIn is the backoff before the next replay attempt, while
	// retrying.
	RetryIn time.Duration
	// StatusCode and Error describe the attempt.
	StatusCode int
	Error      string
}

// Replay delivers the stored event at stream sequence seq to this
// destination once more: the stored bytes and headers, the same Webhook-Id
// and Idempotency-Key, Webhook-Attempt continuing from the last attempt
// recorded in the delivery state, and Webhook-Replay: true. It waits for
// the destination's rate limiter and does not call a destination whose
// circuit is open (the result is then retrying). The attempt is written to
// the attempt history and the delivery state. replayAttempts counts the
// replay attempts made so far for this replay (0 for the first); when it
// reaches MaxAttempts a retryable failure dead-letters the event again.
//
// Replay does not use the destination's consumer, so the event is never
// stored twice and fresh events keep their own workers; callers run
// replays one at a time per destination.
func (f *Forwarder) Replay(ctx context.Context, seq uint64, replayAttempts int) (*ReplayResult, error) {
	f.mu.Lock()
	r := f.run
	f.mu.Unlock()
	if r == nil || r.isStopping() {
		return nil, ErrNotRunning
	}
	d, err := r.loadForReplay(ctx, seq)
	if err != nil {
		return nil, err
	}
	out := &ReplayResult{EventID: d.ev.ID, Attempt: d.attempt}
	// The filters and the transformation share one parse of the body, as
	// on a first delivery (route).
	act := vars(d.ev)
	defer act.release()
	if f.routing != nil {
		if ok, _ := f.routing.filters.match(act); !ok {
			return nil, fmt.Errorf("destination %q: event %q: %w", f.cfg.Name, d.ev.ID, ErrFiltered)
		}
	}
	// The transformation of the running config, as on every attempt. It
	// fails the same way every time, so the event is dead-lettered again
	// at once, as a fresh event is.
	if err := f.transform(d, act); err != nil {
		return f.redeadLetter(r, d, out, result{err: err.Error(), reason: reasonTransform})
	}
	if !f.breaker.closed() {
		out.Status, out.RetryIn, out.Error = StatusRetrying, f.cfg.retryDelay(replayAttempts+1, 0), "the destination's circuit is open"
		return out, nil
	}
	if f.limiter != nil {
		if err := f.limiter.Wait(ctx); err != nil {
			return nil, fmt.Errorf("destination %q: wait for the rate limit: %w", f.cfg.Name, err)
		}
	}
	res := r.attemptOnce(d)
	f.recordAttempt(d, res)
	f.obs.Attempted(res.outcome.String(), res.latency)
	r.recordBreaker(false, res)
	out.StatusCode, out.Error = res.status, res.err
	switch {
	case res.outcome == delivered:
		out.Status = StatusDelivered
		f.writeState(d, StatusDelivered, res, time.Time{})
	case res.outcome == rejected || replayAttempts+1 >= f.cfg.MaxAttempts:
		res.reason = reasonRejected
		if res.outcome != rejected {
			res.reason = reasonMaxAttempts
		}
		if _, err := f.redeadLetter(r, d, out, res); err != nil {
			return nil, err
		}
	default:
		if res.outcome == gone {
			r.pauseGone(res)
		}
		out.Status = StatusRetrying
		out.RetryIn = f.cfg.retryDelay(replayAttempts+1, res.retryAfter)
		f.writeState(d, StatusRetrying, res, time.Now().Add(out.RetryIn))
	}
	f.log.Info("event replayed", zap.String("event_id", d.ev.ID), zap.Int("attempt", d.attempt),
		zap.String("status", string(out.Status)), zap.Int("status_code", res.status))
	return out, nil
}

// Accepts reports whether the destination's filters (of the running
// config) pass ev; true when it has none.
func (f *Forwarder) Accepts(ev *event.Event) bool {
	if f.routing == nil {
		return true
	}
	act := vars(ev)
	defer act.release()
	ok, _ := f.routing.filters.match(act)
	return ok
}

// ReplayRetryDelay is the backoff after the attempt-th failed replay
// attempt (1-based): the destination's retry schedule or backoff.
func (f *Forwarder) ReplayRetryDelay(attempt int) time.Duration {
	return f.cfg.retryDelay(attempt, 0)
}

// AbandonReplay dead-letters the stored event at seq again with the reason
// max_attempts and cause as its last error: the replay could not be made
// in the destination's max_attempts tries. It returns ErrEventGone when
// the event expired, or the error of the dead-letter stream.
func (f *Forwarder) AbandonReplay(ctx context.Context, seq uint64, cause error) error {
	f.mu.Lock()
	r := f.run
	f.mu.Unlock()
	if r == nil || r.isStopping() {
		return ErrNotRunning
	}
	d, err := r.loadForReplay(ctx, seq)
	if err != nil {
		return err
	}
	out := &ReplayResult{EventID: d.ev.ID, Attempt: d.attempt}
	_, err = f.redeadLetter(r, d, out, result{err: cause.Error(), reason: reasonMaxAttempts})
	return err
}

// redeadLetter copies a replayed event to the dead letters again with
// res.reason and records the failure; out becomes its failed result.
func (f *Forwarder) redeadLetter(r *run, d *delivery, out *ReplayResult, res result) (*ReplayResult, error) {
	seq := d.md.Sequence.Stream
	// A replay fails again within the dead-letter stream's duplicate
	// window of the first failure: its own id keeps it from being taken
	// for that one.
	res.dlqID = fmt.Sprintf("dlq:%s:%d:replay:%d", f.cfg.Name, seq, d.attempt)
	if err := r.copyToDLQ(d.ev.Subject, d.msg.Headers(), d.ev.Body, seq, d.attempt, res); err != nil {
		return nil, fmt.Errorf("destination %q: dead-letter replayed event %q: %w", f.cfg.Name, d.ev.ID, err)
	}
	out.Status, out.Error = StatusFailed, res.err
	f.writeState(d, StatusFailed, res, time.Time{})
	f.obs.DeadLettered(res.reason)
	if res.reason != reasonMaxAttempts && res.reason != reasonRejected {
		f.log.Error("replayed event dead-lettered", zap.String("event_id", d.ev.ID),
			zap.String("reason", res.reason), zap.String("last_error", res.err))
	}
	return out, nil
}

// loadForReplay reads the stored event and numbers the attempt.
func (r *run) loadForReplay(ctx context.Context, seq uint64) (*delivery, error) {
	msgs, err := DirectBatch(ctx, r.js.Conn(), event.StreamName, DirectRequest{Seq: seq})
	if err != nil {
		return nil, fmt.Errorf("destination %q: read event %d: %w", r.cfg.Name, seq, err)
	}
	if len(msgs) == 0 || msgs[0].Header.Get(jetstream.SequenceHeader) != fmt.Sprint(seq) {
		return nil, fmt.Errorf("destination %q: event %d: %w", r.cfg.Name, seq, ErrEventGone)
	}
	raw := msgs[0]
	subject := raw.Header.Get(jetstream.SubjectHeader)
	ev, err := event.Decode(&nats.Msg{Subject: subject, Header: raw.Header, Data: raw.Data})
	if err != nil {
		return nil, fmt.Errorf("destination %q: event %d: %w", r.cfg.Name, seq, err)
	}
	ev.Sequence = seq
	d := &delivery{
		replay:   true,
		msg:      &storedMsg{subject: subject, header: raw.Header, data: raw.Data},
		ev:       ev,
		md:       &jetstream.MsgMetadata{Sequence: jetstream.SequencePair{Stream: seq}},
		attempt:  1,
		received: ev.ReceivedAt,
		// As open does for a consumer's message: the stored body goes out.
		out: outgoing{body: ev.Body, contentType: ev.ContentType},
	}
	st, err := r.readState(ctx, ev.ID)
	switch {
	case err == nil && st.Sequence == seq:
		d.attempt = st.Attempts + 1
	case err != nil && !errors.Is(err, ErrNoDelivery):
		return nil, fmt.Errorf("destination %q: %w", r.cfg.Name, err)
	}
	return d, nil
}

// storedMsg is a stored event read by direct get, standing in for a
// consumer's message where a delivery needs one; it cannot be acked.
type storedMsg struct {
	jetstream.Msg
	subject string
	header  nats.Header
	data    []byte
}

func (m *storedMsg) Subject() string      { return m.subject }
func (m *storedMsg) Headers() nats.Header { return m.header }
func (m *storedMsg) Data() []byte         { return m.data }
