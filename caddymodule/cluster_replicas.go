package caddymodule

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/hookgate/hookgate/forwarder"
)

// replicatedStreams are the streams besides WEBHOOKS and WEBHOOKS_DLQ
// (which setup creates or updates from a.streams) whose replicas follow
// the app's: the event log's, the advisories, and the KV buckets (a
// bucket is the stream KV_<bucket>). The replay stream and the heartbeat
// bucket are updated by their own CreateOrUpdate too; listing them here
// costs one look-up and keeps the log complete.
var replicatedStreams = []string{
	replayStream,
	forwarder.AttemptStream,
	forwarder.AdvisoryStream,
	forwarder.StateStream,
	"KV_" + forwarder.OwnerBucket,
	"KV_" + nodesBucket,
}

// applyReplicas sets the replicas of every existing stream and bucket of
// replicatedStreams to the app's, as a reload that changes replicas asks.
// JetStream scales a stream in place (the leader sends the new peers a
// copy), and a consumer whose own Replicas is 0, as all the gateway's
// consumers are (fwd-*, adv-*, replay-*), follows its stream. What
// JetStream refuses is logged with what to do, and the rest goes on: the
// events' own streams were updated already, and a bucket with fewer
// copies than asked loses no event.
func (a *App) applyReplicas(ctx context.Context) {
	want := max(1, a.Replicas)
	for _, name := range replicatedStreams {
		if err := a.scaleStream(ctx, name, want); err != nil {
			a.logger.Warn("could not change the replicas of a stream; the rest of the reload applies",
				zap.String("stream", name), zap.Int("replicas", want), zap.Error(err))
		}
	}
}

// errAsyncPersist is why a stream made with asynchronous persistence
// cannot be replicated.
var errAsyncPersist = errors.New("the stream was created with asynchronous persistence on one replica (by a gateway before this version), which JetStream allows only unreplicated and never changes; delete it with `nats stream rm` and reload, and the gateway re-creates it replicated (it holds delivery history, not events)")

// scaleStream updates the replicas of the named stream to want, when it
// exists and has another number.
func (a *App) scaleStream(ctx context.Context, name string, want int) error {
	s, err := a.engine.js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil // created later with the right replicas
	}
	if err != nil {
		return err
	}
	cfg := s.CachedInfo().Config
	if cfg.Replicas == want {
		return nil
	}
	if want > 1 && cfg.PersistMode == jetstream.AsyncPersistMode {
		return errAsyncPersist
	}
	from := cfg.Replicas
	cfg.Replicas = want
	if _, err := a.engine.js.UpdateStream(ctx, cfg); err != nil {
		return err
	}
	a.logger.Info("stream replicas changed", zap.String("stream", name), zap.Int("from", from), zap.Int("to", want))
	return nil
}
