package forwarder

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/hookgate/hookgate/event"
)

// Why an event was dead-lettered (event.HeaderDLQReason).
const (
	reasonMaxAttempts   = "max_attempts"
	reasonMaxAge        = "max_age"
	reasonRejected      = "rejected"
	reasonMaxDeliveries = "max_deliveries"
	reasonUndecodable   = "undecodable"
	reasonTransform     = "transform_failed"
)

// AdvisoryStream captures JetStream's max-deliveries advisories for the
// WEBHOOKS stream, so that an event whose deliveries ran out while no
// forwarder could finish it (a crash during the last attempts) still
// reaches the dead letters: each Forwarder consumes its own advisories
// from here, even those published while it was down.
const AdvisoryStream = "WEBHOOKS_ADVISORIES"

const advisoryPrefix = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + event.StreamName + "."

// dlqMsgID is the dead letter's Nats-Msg-Id: the same event dead-lettered
// twice by one destination (by the forwarder and by the advisory safety
// net) is stored once.
func dlqMsgID(destination string, seq uint64) string {
	return "dlq:" + destination + ":" + strconv.FormatUint(seq, 10)
}

// dlqRetry is how long an event waits when the dead-letter stream could not
// take it, before the forwarder tries again.
const dlqRetry = 30 * time.Second

// deadLetter copies the event to WEBHOOKS_DLQ with why it died, then
// terminates it. When the copy fails the event is handed back, never
// dropped.
func (r *run) deadLetter(d *delivery, reason string, res result) {
	res.reason = reason
	err := r.copyToDLQ(d.msg.Subject(), d.msg.Headers(), d.msg.Data(), d.md.Sequence.Stream, d.attempt, res)
	if err != nil {
		r.log.Error("dead letter failed; will retry", zap.String("event_id", d.ev.ID), zap.String("reason", reason), zap.Error(err))
		r.nak(d.msg, dlqRetry)
		return
	}
	if err := d.msg.TermWithReason(reason); err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
		r.log.Warn("term failed", zap.String("event_id", d.ev.ID), zap.Error(err))
	}
	r.attempts.forget(d.md.Sequence.Stream)
	r.writeState(d, StatusFailed, res, time.Time{})
	r.obs.DeadLettered(reason)
	r.log.Error("event dead-lettered",
		append(logFields(d, res), zap.String("reason", reason), zap.String("last_error", res.err))...)
}

// copyToDLQ publishes the dead letter and waits for its PubAck.
func (r *run) copyToDLQ(subject string, h nats.Header, data []byte, seq uint64, attempts int, res result) error {
	out := nats.NewMsg(event.DLQSubject(r.cfg.Name, subject))
	for k, v := range h {
		// JetStream's own headers (the original Nats-Msg-Id above all)
		// would make the dead letter a duplicate of something else.
		if len(k) >= 5 && strings.EqualFold(k[:5], "Nats-") {
			continue
		}
		out.Header[k] = v
	}
	out.Data = data
	out.Header.Set(event.HeaderDLQDestination, r.cfg.Name)
	out.Header.Set(event.HeaderDLQReason, res.reason)
	out.Header.Set(event.HeaderDLQAttempts, strconv.Itoa(attempts))
	out.Header.Set(event.HeaderDLQLastStatus, strconv.Itoa(res.status))
	if res.err != "" {
		out.Header.Set(event.HeaderDLQLastError, oneLine(res.err))
	}
	out.Header.Set(event.HeaderDLQFailedAt, time.Now().UTC().Format(time.RFC3339Nano))
	out.Header.Set(event.HeaderDLQStreamSeq, strconv.FormatUint(seq, 10))
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.hardCtx), 10*time.Second)
	defer cancel()
	_, err := r.js.PublishMsg(ctx, out, jetstream.WithMsgID(cmp.Or(res.dlqID, dlqMsgID(r.cfg.Name, seq))), jetstream.WithExpectStream(event.DLQStreamName))
	if err != nil {
		return fmt.Errorf("publish to %s subject %q: %w", event.DLQStreamName, out.Subject, err)
	}
	return nil
}

// oneLine keeps a header value on one line: NATS headers cannot hold CR or
// LF, and an error text may.
func oneLine(s string) string {
	s = strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
	if len(s) > 512 {
		s = s[:512]
	}
	return s
}

// startAdvisories makes sure the advisory stream exists and consumes this
// destination's max-deliveries advisories from it.
func (r *run) startAdvisories(ctx context.Context) error {
	events, err := r.js.Stream(ctx, event.StreamName)
	if err != nil {
		return fmt.Errorf("destination %q: stream %s: %w", r.cfg.Name, event.StreamName, err)
	}
	replicas := max(1, events.CachedInfo().Config.Replicas)
	_, err = r.js.CreateStream(ctx, jetstream.StreamConfig{
		Name:        AdvisoryStream,
		Description: "JetStream max-deliveries advisories of Hookgate's forwarders",
		Subjects:    []string{advisoryPrefix + "*"},
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      7 * 24 * time.Hour,
		MaxMsgs:     100_000,
		Discard:     jetstream.DiscardOld,
	})
	if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return fmt.Errorf("destination %q: create stream %s: %w", r.cfg.Name, AdvisoryStream, err)
	}
	cons, err := r.js.CreateOrUpdateConsumer(ctx, AdvisoryStream, jetstream.ConsumerConfig{
		Durable:       "adv-" + r.consumer,
		FilterSubject: advisoryPrefix + r.consumer,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       time.Minute,
		MaxAckPending: 1,
	})
	if err != nil {
		return fmt.Errorf("destination %q: create advisory consumer: %w", r.cfg.Name, err)
	}
	r.advCC, err = cons.Consume(func(m jetstream.Msg) { r.onAdvisory(events, m) },
		jetstream.PullMaxMessages(1),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			r.log.Debug("consume advisories", zap.Error(err))
		}))
	if err != nil {
		return fmt.Errorf("destination %q: consume advisories: %w", r.cfg.Name, err)
	}
	return nil
}

// maxDeliveriesAdvisory is the part of JetStream's
// JSConsumerDeliveryExceededAdvisory the safety net needs.
type maxDeliveriesAdvisory struct {
	Stream     string `json:"stream"`
	Consumer   string `json:"consumer"`
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries uint64 `json:"deliveries"`
}

// onAdvisory dead-letters the event JetStream gave up on.
func (r *run) onAdvisory(events jetstream.Stream, m jetstream.Msg) {
	var a maxDeliveriesAdvisory
	if err := json.Unmarshal(m.Data(), &a); err != nil || a.StreamSeq == 0 {
		r.log.Error("unreadable max-deliveries advisory", zap.Error(err))
		_ = m.Term()
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.hardCtx), 10*time.Second)
	defer cancel()
	raw, err := events.GetMsg(ctx, a.StreamSeq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		r.log.Warn("event gone before it could be dead-lettered", zap.Uint64("stream_seq", a.StreamSeq))
		_ = m.Ack()
		return
	}
	if err != nil {
		r.log.Warn("read event for dead letter", zap.Uint64("stream_seq", a.StreamSeq), zap.Error(err))
		r.nak(m, 5*time.Second)
		return
	}
	ev, err := event.Decode(&nats.Msg{Subject: raw.Subject, Header: raw.Header, Data: raw.Data})
	if err != nil {
		ev = &event.Event{ID: fmt.Sprintf("seq:%d", a.StreamSeq), Subject: raw.Subject}
	}
	d := &delivery{ev: ev, md: &jetstream.MsgMetadata{Sequence: jetstream.SequencePair{Stream: a.StreamSeq}}, attempt: int(a.Deliveries)}
	res := result{reason: reasonMaxDeliveries, err: fmt.Sprintf("JetStream stopped after %d deliveries: no forwarder finished the event", a.Deliveries)}
	if st, err := r.readState(ctx, ev.ID); err == nil && st.Sequence == a.StreamSeq {
		if st.Status == StatusFailed || st.Status == StatusDelivered {
			_ = m.Ack() // already settled; the advisory is late news
			return
		}
		d.attempt, res.status = st.Attempts, st.LastStatusCode
		if st.LastError != "" {
			res.err = st.LastError + "; " + res.err
		}
	}
	if err := r.copyToDLQ(raw.Subject, raw.Header, raw.Data, a.StreamSeq, d.attempt, res); err != nil {
		r.log.Error("dead letter from advisory failed; will retry", zap.String("event_id", ev.ID), zap.Error(err))
		r.nak(m, 5*time.Second)
		return
	}
	r.writeState(d, StatusFailed, res, time.Time{})
	r.obs.DeadLettered(res.reason)
	r.log.Warn("event dead-lettered after JetStream's last delivery",
		zap.String("event_id", ev.ID), zap.Uint64("deliveries", a.Deliveries))
	_ = m.Ack()
}
