package forwarder

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/hookgate/hookgate/event"
)

// delivery is one event on its way to this destination.
type delivery struct {
	msg     jetstream.Msg
	ev      *event.Event
	md      *jetstream.MsgMetadata
	attempt int
	// received is when the gateway took the event, the origin of MaxAge.
	received time.Time
}

// handle takes one event from its first look to its fate for this
// delivery: acked, dead-lettered, or handed back with a delay.
func (f *Forwarder) handle(m jetstream.Msg) {
	if f.isStopping() {
		f.nak(m, 0)
		return
	}
	md, err := m.Metadata()
	if err != nil {
		// Only a message that did not come from a consumer lacks metadata.
		f.log.Error("message without JetStream metadata", zap.String("subject", m.Subject()), zap.Error(err))
		f.nak(m, 0)
		return
	}
	// event.Decode on a message with no reply subject skips the metadata
	// DecodeJetStream would parse a second time.
	ev, err := event.Decode(&nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
	if err != nil {
		d := &delivery{msg: m, md: md, ev: &event.Event{ID: fmt.Sprintf("seq:%d", md.Sequence.Stream), Subject: m.Subject()}}
		f.deadLetter(d, reasonUndecodable, result{err: err.Error()})
		return
	}
	ev.Sequence = md.Sequence.Stream
	d := &delivery{msg: m, ev: ev, md: md, received: ev.ReceivedAt}
	if d.received.IsZero() {
		d.received = md.Timestamp
	}
	d.attempt = f.nextAttempt(d)
	for {
		if f.cfg.MaxAge > 0 && time.Since(d.received) > f.cfg.MaxAge {
			f.deadLetter(d, reasonMaxAge, result{err: fmt.Sprintf("older than max_age %v", f.cfg.MaxAge)})
			return
		}
		probe, ok := f.admit(d)
		if !ok {
			f.nak(m, 0)
			return
		}
		res := f.attemptOnce(d)
		f.recordAttempt(d, res)
		f.obs.Attempted(res.outcome.String(), res.latency)
		f.recordBreaker(probe, res)
		switch res.outcome {
		case delivered:
			f.ack(m)
			f.forget(d)
			f.writeState(d, StatusDelivered, res, time.Time{})
			// Checked here, not in f.debug: its variadic fields would be
			// allocated for every delivery even with debug logging off.
			if ce := f.log.Check(zapcore.DebugLevel, "delivered"); ce != nil {
				ce.Write(zap.String("event_id", ev.ID), zap.Int("attempt", d.attempt), zap.Int("status", res.status), zap.Duration("latency", res.latency))
			}
			return
		case rejected:
			f.deadLetter(d, reasonRejected, res)
			return
		case gone:
			f.pauseGone(res)
			f.remember(d)
			f.writeState(d, StatusRetrying, res, time.Time{})
			if f.keyOf != nil {
				// Keep the key's turn: the breaker gate holds the next
				// attempt until the destination is resumed.
				d.attempt++
				continue
			}
			f.nak(m, 0) // delivered again once the consumer is resumed
			return
		}
		// retryable
		if d.attempt >= f.cfg.MaxAttempts {
			f.deadLetter(d, reasonMaxAttempts, res)
			return
		}
		delay := f.cfg.retryDelay(d.attempt, res.retryAfter)
		next := time.Now().Add(delay)
		if f.cfg.MaxAge > 0 && next.After(d.received.Add(f.cfg.MaxAge)) {
			f.deadLetter(d, reasonMaxAge, res)
			return
		}
		if f.keyOf == nil && int(d.md.NumDelivered) >= f.maxDeliver {
			// JetStream will not deliver it again.
			f.deadLetter(d, reasonMaxDeliveries, res)
			return
		}
		f.remember(d)
		f.writeState(d, StatusRetrying, res, next)
		if ce := f.log.Check(zapcore.DebugLevel, "retrying"); ce != nil {
			ce.Write(zap.String("event_id", ev.ID), zap.Int("attempt", d.attempt), zap.Int("status", res.status), zap.String("error", res.err), zap.Duration("delay", delay))
		}
		if f.keyOf == nil {
			f.nak(m, delay)
			return
		}
		// Ordered: the event keeps its key's turn and waits in hand, so
		// no later event of the key overtakes it.
		if !f.wait(m, delay) {
			f.nak(m, 0)
			return
		}
		d.attempt++
	}
}

// admit waits until the breaker and the rate limiter let an attempt go. It
// reports whether this attempt is the breaker's half-open probe, and false
// for ok when the forwarder is stopping.
func (f *Forwarder) admit(d *delivery) (probe, ok bool) {
	if f.breaker.closed() && (f.limiter == nil || f.limiter.Allow()) {
		return false, true
	}
	f.hold(d.msg)
	defer f.release(d.msg)
	probe, err := f.breaker.enter(f.stopCtx)
	if err != nil {
		return false, false
	}
	if f.limiter != nil {
		if err := f.limiter.Wait(f.stopCtx); err != nil {
			f.breaker.abandon(probe)
			return false, false
		}
	}
	return probe, true
}

// nextAttempt returns the number of the attempt this delivery is about to
// make. JetStream's delivery count also counts deliveries that made no
// attempt (handed back on shutdown), so a redelivery asks this process's
// memory, then the delivery state.
func (f *Forwarder) nextAttempt(d *delivery) int {
	if d.md.NumDelivered <= 1 {
		return 1
	}
	f.mu.Lock()
	n, ok := f.attempts[d.md.Sequence.Stream]
	f.mu.Unlock()
	if ok {
		return n + 1
	}
	ctx, cancel := context.WithTimeout(f.hardCtx, 5*time.Second)
	defer cancel()
	st, err := f.readState(ctx, d.ev.ID)
	if err == nil && st.Sequence == d.md.Sequence.Stream {
		return st.Attempts + 1
	}
	if err != nil && !errors.Is(err, ErrNoDelivery) {
		f.log.Warn("read delivery state", zap.String("event_id", d.ev.ID), zap.Error(err))
	}
	return int(d.md.NumDelivered)
}

func (f *Forwarder) remember(d *delivery) {
	f.mu.Lock()
	f.attempts[d.md.Sequence.Stream] = d.attempt
	f.mu.Unlock()
}

func (f *Forwarder) forget(d *delivery) {
	f.mu.Lock()
	delete(f.attempts, d.md.Sequence.Stream)
	f.mu.Unlock()
}
