package forwarder

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/hookgate/hookgate/event"
)

// OwnerBucket is the KV bucket in which the gateway records the durable
// consumers it created on the WEBHOOKS stream: key the consumer name
// ("fwd-<destination>"), value the consumer's Created time (RFC 3339 with
// nanoseconds, UTC), which JetStream sets and no client can choose.
//
// NATS permissions match whole subject tokens, so a subscriber cannot be
// refused "every consumer whose name starts with fwd-": it may create
// fwd-<name> for a destination not configured yet, pull and ack. Only the
// gateway may write this bucket (subscribers may touch no stream but
// WEBHOOKS and WEBHOOKS_DLQ), so at Start a consumer without a matching
// record was made by someone else: it is deleted, with an error in the
// log, and created afresh before any delivery.
const OwnerBucket = "WEBHOOKS_CONSUMERS"

// ownedConsumerPrefix is the name prefix of the consumers the bucket
// vouches for; the bucket is seeded with the existing ones when it is made.
const ownedConsumerPrefix = "fwd-"

// maxClaims bounds how often Start deletes a consumer someone else made
// between its look-up and its creation before it gives up.
const maxClaims = 3

// ensureOwnerBucket opens OwnerBucket, or creates it with as many replicas
// as the WEBHOOKS stream. On creation it adopts the fwd-* consumers that a
// gateway without records (an older version) ran: deleting them would
// deliver every stored event again.
func ensureOwnerBucket(ctx context.Context, js jetstream.JetStream, log *zap.Logger) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, OwnerBucket)
	if err == nil {
		return kv, nil
	}
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("open consumer record bucket %s: %w", OwnerBucket, err)
	}
	s, err := js.Stream(ctx, event.StreamName)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", event.StreamName, err)
	}
	kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      OwnerBucket,
		Description: "Hookgate: the consumers the gateway created on " + event.StreamName,
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    max(1, s.CachedInfo().Config.Replicas),
	})
	if errors.Is(err, jetstream.ErrBucketExists) {
		return js.KeyValue(ctx, OwnerBucket)
	}
	if err != nil {
		return nil, fmt.Errorf("create consumer record bucket %s: %w", OwnerBucket, err)
	}
	return kv, adoptConsumers(ctx, js, s, kv, log)
}

// adoptConsumers records as the gateway's own every fwd-<name> consumer
// of s for whose destination the gateway wrote a delivery state (only the
// gateway writes StateBucket). Others are left to claimConsumer.
func adoptConsumers(ctx context.Context, js jetstream.JetStream, s jetstream.Stream, kv jetstream.KeyValue, log *zap.Logger) error {
	stateStream, err := js.Stream(ctx, StateStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil // no delivery state: no gateway ran a forwarder here
	}
	if err != nil {
		return fmt.Errorf("stream %s: %w", StateStream, err)
	}
	infos := s.ListConsumers(ctx)
	for info := range infos.Info() {
		dest, ok := strings.CutPrefix(info.Name, ownedConsumerPrefix)
		if !ok {
			continue
		}
		if _, err := stateStream.GetLastMsgForSubject(ctx, "$KV."+StateBucket+".*."+dest); err != nil {
			continue // the gateway never delivered through it
		}
		if _, err := kv.Create(ctx, info.Name, []byte(createdStamp(info.Created))); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("record consumer %s in %s: %w", info.Name, OwnerBucket, err)
		}
		log.Info("recorded an existing forwarder consumer as the gateway's own", zap.String("consumer", info.Name))
	}
	if err := infos.Err(); err != nil {
		return fmt.Errorf("list consumers of %s: %w", event.StreamName, err)
	}
	return nil
}

// createdStamp is the form of a consumer's Created time kept in OwnerBucket.
func createdStamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// claimConsumer deletes the destination's consumer if it exists and the
// gateway did not create it, so that Start makes a fresh one whose acks
// are all the gateway's. It reports whether the consumer (still) exists.
func (f *Forwarder) claimConsumer(ctx context.Context, owners jetstream.KeyValue) (bool, error) {
	cons, err := f.js.Consumer(ctx, event.StreamName, f.consumer)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("destination %q: look up consumer %q: %w", f.cfg.Name, f.consumer, err)
	}
	info := cons.CachedInfo()
	rec, err := owners.Get(ctx, f.consumer)
	switch {
	case err == nil && string(rec.Value()) == createdStamp(info.Created):
		return true, nil
	case err != nil && !errors.Is(err, jetstream.ErrKeyNotFound):
		return false, fmt.Errorf("destination %q: read %s: %w", f.cfg.Name, OwnerBucket, err)
	case info.Delivered.Consumer == 0:
		// Nothing was taken through it: keeping it loses no event. This
		// is also another gateway node that created it and has not
		// recorded it yet (it records before it delivers).
		return true, f.recordOwner(ctx, owners, info)
	}
	f.log.Error("the destination's consumer was not created by the gateway: a NATS client made it, maybe before the destination was configured, and may have taken events from it; deleting it so that every stored event is delivered",
		zap.String("consumer", f.consumer),
		zap.Time("created", info.Created),
		zap.Uint64("delivered", info.Delivered.Consumer),
		zap.Uint64("ack_floor", info.AckFloor.Consumer))
	if err := f.js.DeleteConsumer(ctx, event.StreamName, f.consumer); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return false, fmt.Errorf("destination %q: delete foreign consumer %q: %w; delete it with `nats consumer rm %s %s` and reload", f.cfg.Name, f.consumer, err, event.StreamName, f.consumer)
	}
	return false, nil
}

// createOwnedConsumer creates or updates the destination's consumer and
// records it in owners. A consumer that did not exist must come out of
// creation untouched: if someone else created it in between and took
// events, it is deleted and created again.
func (f *Forwarder) createOwnedConsumer(ctx context.Context, owners jetstream.KeyValue, ccfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	for range maxClaims {
		existed, err := f.claimConsumer(ctx, owners)
		if err != nil {
			return nil, err
		}
		if existed {
			if err := f.keepPause(ctx, &ccfg); err != nil {
				return nil, err
			}
			return f.updateConsumer(ctx, ccfg)
		}
		cons, err := f.js.CreateConsumer(ctx, event.StreamName, ccfg)
		if errors.Is(err, jetstream.ErrConsumerExists) {
			continue // made by someone else in between: claim again
		}
		if err != nil {
			return nil, fmt.Errorf("destination %q: create consumer %q on stream %s: %w", f.cfg.Name, f.consumer, event.StreamName, err)
		}
		info := cons.CachedInfo()
		if info.Delivered.Consumer != 0 {
			continue // an identical consumer someone else made and used
		}
		if err := f.recordOwner(ctx, owners, info); err != nil {
			return nil, err
		}
		return cons, nil
	}
	return nil, fmt.Errorf("destination %q: consumer %q is re-created by a NATS client each time the gateway deletes it; revoke that client's credential and reload", f.cfg.Name, f.consumer)
}

// recordOwner records the consumer described by info as the gateway's own.
func (f *Forwarder) recordOwner(ctx context.Context, owners jetstream.KeyValue, info *jetstream.ConsumerInfo) error {
	if _, err := owners.Put(ctx, f.consumer, []byte(createdStamp(info.Created))); err != nil {
		return fmt.Errorf("destination %q: record consumer %q in %s: %w", f.cfg.Name, f.consumer, OwnerBucket, err)
	}
	return nil
}

// updateConsumer updates the gateway's own consumer to ccfg.
func (f *Forwarder) updateConsumer(ctx context.Context, ccfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	cons, err := f.js.CreateOrUpdateConsumer(ctx, event.StreamName, ccfg)
	if err != nil {
		return nil, fmt.Errorf("destination %q: update consumer %q on stream %s: %w", f.cfg.Name, f.consumer, event.StreamName, err)
	}
	return cons, nil
}
