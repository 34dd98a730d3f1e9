package forwarder

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/hookgate/hookgate/event"
)

// delivery is one event on its way to this destination.
type delivery struct {
	msg jetstream.Msg
	ev  *event.Event
	// stored holds ev when open decoded it: one allocation for both.
	stored  event.Event
	md      *jetstream.MsgMetadata
	attempt int
	// received is when the gateway took the event, the origin of MaxAge.
	received time.Time
	// traceparent, during a traced attempt, is the traceparent the
	// destination receives: the attempt span's.
	traceparent string
	// out is the request to send: the stored body and Content-Type, or
	// what the destination's transformation made of them.
	out outgoing
	// replay marks a delivery made by a replay or a redrive: it goes out
	// with Webhook-Replay: true.
	replay bool
	// sent digests out.body when the destination transforms (nil when
	// it has no transform or transform_headers), for the state and the
	// attempt history.
	sent *Sent
}

// handle takes one event from its first look to its fate for this
// delivery: acked, dead-lettered, or handed back with a delay. decide
// chooses the fate; handle carries it out.
func (r *run) handle(m jetstream.Msg) {
	if r.isStopping() {
		r.nak(m, 0)
		return
	}
	d, ok := r.open(m)
	if !ok || !r.route(d) {
		return
	}
	for {
		if r.cfg.MaxAge > 0 && time.Since(d.received) > r.cfg.MaxAge {
			r.deadLetter(d, reasonMaxAge, result{err: fmt.Sprintf("older than max_age %v", r.cfg.MaxAge)})
			return
		}
		probe, ok := r.admit(d)
		if !ok {
			r.nak(m, 0)
			return
		}
		res := r.tracedAttempt(d)
		r.recordAttempt(d, res)
		r.obs.Attempted(res.outcome.String(), res.latency)
		if res.outcome == delivered {
			observeDelivered(r.obs, d.received)
		}
		r.recordBreaker(probe, res)
		if !r.settle(d, res) {
			return
		}
		d.attempt++
	}
}

// open decodes a message into a delivery, numbering its attempt. A message
// that cannot be decoded is dead-lettered (or handed back) here, and ok is
// false.
func (r *run) open(m jetstream.Msg) (d *delivery, ok bool) {
	md, err := m.Metadata()
	if err != nil {
		// Only a message that did not come from a consumer lacks metadata.
		r.log.Error("message without JetStream metadata", zap.String("subject", m.Subject()), zap.Error(err))
		r.nak(m, 0)
		return nil, false
	}
	// DecodeFields skips the metadata DecodeJetStream would parse a second
	// time, and the map of the provider's headers: setHeaders reads them
	// from the message. Only filters and transformations need the map.
	ev, err := event.DecodeFields(m.Subject(), m.Headers(), m.Data())
	if err != nil {
		d := &delivery{msg: m, md: md, ev: &event.Event{ID: fmt.Sprintf("seq:%d", md.Sequence.Stream), Subject: m.Subject()}}
		r.deadLetter(d, reasonUndecodable, result{err: err.Error()})
		return nil, false
	}
	if r.routing != nil {
		ev.Header = event.ProviderHeader(m.Headers())
	}
	ev.Sequence = md.Sequence.Stream
	d = &delivery{msg: m, stored: ev, md: md, received: ev.ReceivedAt}
	d.ev = &d.stored
	if d.received.IsZero() {
		d.received = md.Timestamp
	}
	d.attempt = r.nextAttempt(d)
	return d, true
}

// route applies the destination's filters and transformation, and
// reports whether the event is to be delivered. A filtered event is acked
// with the state "filtered"; an event the transformation fails on is
// dead-lettered. Both are settled before any attempt.
func (r *run) route(d *delivery) bool {
	if r.routing == nil {
		d.out = outgoing{body: d.ev.Body, contentType: d.ev.ContentType}
		return true
	}
	act := vars(d.ev)
	defer act.release()
	ok, err := r.routing.filters.match(act)
	if !ok {
		res := result{}
		if err != nil {
			res.err = err.Error()
		}
		d.attempt = 0
		r.ack(d.msg)
		r.attempts.forget(d.md.Sequence.Stream)
		r.writeState(d, StatusFiltered, res, time.Time{})
		r.obs.Filtered()
		if ce := r.log.Check(zapcore.DebugLevel, "filtered"); ce != nil {
			ce.Write(zap.String("event_id", d.ev.ID), zap.String("filter_error", res.err))
		}
		return false
	}
	if err := r.transform(d, act); err != nil {
		d.attempt = 0
		r.deadLetter(d, reasonTransform, result{err: err.Error()})
		return false
	}
	return true
}

// transform sets the request d sends: the stored body and Content-Type,
// or what the running config's transformation makes of them. Every
// attempt and every replay goes through it; the stored event never
// changes.
func (f *Forwarder) transform(d *delivery, act *celVars) error {
	d.out = outgoing{body: d.ev.Body, contentType: d.ev.ContentType}
	if f.routing == nil {
		return nil
	}
	if act == nil {
		act = vars(d.ev)
		defer act.release()
	}
	if err := f.routing.apply(act, &d.out); err != nil {
		return err
	}
	if f.Transforms() {
		d.sent = sentOf(d.out.body)
	}
	return nil
}

// settle carries out decide's verdict on an attempt's result. It reports
// true when the event stays in hand for another attempt (ordered events,
// which keep their key's turn).
func (r *run) settle(d *delivery, res result) (again bool) {
	in := decisionInput{
		outcome:     res.outcome,
		ordered:     r.keyOf != nil,
		attempt:     d.attempt,
		maxAttempts: r.cfg.MaxAttempts,
		now:         time.Now(),
		received:    d.received,
		maxAge:      r.cfg.MaxAge,
		delivered:   int(d.md.NumDelivered),
		maxDeliver:  r.maxDeliver,
	}
	if res.outcome == retryable {
		in.delay = r.cfg.retryDelay(d.attempt, res.retryAfter)
	}
	dec := decide(in)
	switch dec.verdict {
	case ack:
		r.ack(d.msg)
		r.attempts.forget(d.md.Sequence.Stream)
		r.writeState(d, StatusDelivered, res, time.Time{})
		// Checked here, not in r.debug: its variadic fields would be
		// allocated for every delivery even with debug logging off.
		if ce := r.log.Check(zapcore.DebugLevel, "delivered"); ce != nil {
			ce.Write(logFields(d, res)...)
		}
		return false
	case deadLetter:
		r.deadLetter(d, dec.reason, res)
		return false
	case pauseAndNak, pauseInTurn:
		r.pauseGone(res)
		r.attempts.set(d.md.Sequence.Stream, d.attempt)
		r.writeState(d, StatusRetrying, res, time.Time{})
		if dec.verdict == pauseAndNak {
			r.nak(d.msg, 0) // delivered again once the consumer is resumed
			return false
		}
		// The breaker gate holds the next attempt until resumed.
		return true
	}
	r.attempts.set(d.md.Sequence.Stream, d.attempt)
	r.writeState(d, StatusRetrying, res, dec.next)
	if ce := r.log.Check(zapcore.WarnLevel, "delivery failed; will retry"); ce != nil {
		ce.Write(append(logFields(d, res), zap.String("error", res.err), zap.Duration("delay", in.delay))...)
	}
	if dec.verdict == retryLater {
		r.nak(d.msg, in.delay)
		return false
	}
	// Ordered: the event keeps its key's turn and waits in hand, so no
	// later event of the key overtakes it.
	if !r.wait(d.msg, in.delay) {
		r.nak(d.msg, 0)
		return false
	}
	return true
}

// admit waits until the breaker and the rate limiter let an attempt go. It
// reports whether this attempt is the breaker's half-open probe, and false
// for ok when the forwarder is stopping.
func (r *run) admit(d *delivery) (probe, ok bool) {
	if r.breaker.closed() && (r.limiter == nil || r.limiter.Allow()) {
		return false, true
	}
	r.held.add(d.msg)
	defer r.held.remove(d.msg)
	probe, err := r.breaker.enter(r.stopCtx)
	if err != nil {
		return false, false
	}
	if r.limiter != nil {
		if err := r.limiter.Wait(r.stopCtx); err != nil {
			r.breaker.abandon(probe)
			return false, false
		}
	}
	return probe, true
}

// nextAttempt returns the number of the attempt this delivery is about to
// make. JetStream's delivery count also counts deliveries that made no
// attempt (handed back on shutdown), so a redelivery asks this process's
// memory, then the delivery state.
func (r *run) nextAttempt(d *delivery) int {
	if d.md.NumDelivered <= 1 {
		return 1
	}
	if n, ok := r.attempts.get(d.md.Sequence.Stream); ok {
		return n + 1
	}
	ctx, cancel := context.WithTimeout(r.hardCtx, 5*time.Second)
	defer cancel()
	st, err := r.readState(ctx, d.ev.ID)
	if err == nil && st.Sequence == d.md.Sequence.Stream {
		return st.Attempts + 1
	}
	if err != nil && !errors.Is(err, ErrNoDelivery) {
		r.log.Warn("read delivery state", zap.String("event_id", d.ev.ID), zap.Error(err))
	}
	return int(d.md.NumDelivered)
}
