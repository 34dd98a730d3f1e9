package forwarder

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookgate/hookgate/event"
)

// RecordRestoredConsumers renews, after a restore from a backup, the
// records of OwnerBucket: a restored consumer is made anew, with a new
// Created time (nats-server v2.15.2 does not keep the old one), so the
// restored records would no longer match and Start would take the
// gateway's own consumers for a NATS client's and start them afresh,
// delivering every stored event again. The consumers the restored bucket
// names are the gateway's: each is recorded with its new Created time,
// and a record whose consumer is gone is removed. Call it with the
// gateway's own connection, once every stream is restored and before the
// forwarders start. A backup without the bucket leaves nothing to do.
func RecordRestoredConsumers(ctx context.Context, js jetstream.JetStream) error {
	kv, err := js.KeyValue(ctx, OwnerBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", OwnerBucket, err)
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		return fmt.Errorf("list %s: %w", OwnerBucket, err)
	}
	var names []string
	for name := range keys.Keys() {
		names = append(names, name)
	}
	for _, name := range names {
		cons, err := js.Consumer(ctx, event.StreamName, name)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			if err := kv.Delete(ctx, name); err != nil {
				return fmt.Errorf("remove the record of %s: %w", name, err)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("consumer %s: %w", name, err)
		}
		if _, err := kv.Put(ctx, name, []byte(createdStamp(cons.CachedInfo().Created))); err != nil {
			return fmt.Errorf("record consumer %s in %s: %w", name, OwnerBucket, err)
		}
	}
	return nil
}
