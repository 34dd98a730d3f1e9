package caddymodule

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Lazy sync (sync <interval>): "written before the 2xx, fsynced within
// <interval>".
//
// nats-server v2.15.2 would keep that promise itself with its
// SyncInterval, but its timer (filestore.go, fileStore.syncBlocks) fsyncs
// each block file while holding that block's lock, and the newest block
// is the one the stream's single writer appends to: every publish waits
// for that fsync, which took up to 1.82 s on a busy disk
// (docs/PERFORMANCE.md, "Why sync 1s came out below sync always"). So the
// engine leaves nats-server's timer at its default (2 minutes, as group
// commit does; engine.serverOptions) and a background pass of the
// committer syncs every <interval> instead, outside nats-server's locks:
//
//   - the events: fdatasync(2) of the stream's block files written since
//     the previous pass, through the same blockSyncer as group commit's
//     rounds (store_sync_linux.go), so a pass costs what the events
//     wrote, not a flush of the whole filesystem (syncfs flushes every
//     dirty page of every process on it: on this shared disk about three
//     times slower than one fdatasync, and unbounded when another job
//     writes a lot, which would stretch "within <interval>");
//   - the rest (stream and consumer metadata, index files, the DLQ, the
//     delivery-state bucket): the blockSyncer's syncfs every second, or
//     every <interval> when that is longer, as with group commit.
//
// No request waits for a pass, and a pass runs only when events were
// acknowledged since the previous one. A failed pass is sticky as a
// failed round is (fsync errors may drop the dirty pages): the events
// acknowledged since the last good pass may be lost on power loss, and
// the promise no longer holds for later ones, so from then on every
// publish fails with errStoreSyncFailed (503), caddy_webhooks_store_up
// and the readiness check say the store is down, and the log says why
// once, with how many acknowledged events are at risk.

// newLazyCommit starts the committer of a lazy sync interval every over
// the store directory dir; publishRaw is the store's own publish.
func newLazyCommit(dir string, publishRaw func(context.Context, *nats.Msg) (*jetstream.PubAck, error), every time.Duration, log *zap.Logger) (*groupCommit, error) {
	syncFn, closeFn, err := storeSyncer(dir, every, log)
	if err != nil {
		return nil, fmt.Errorf("store %s: sync %s: %w", dir, every, err)
	}
	return startLazyCommit(publishRaw, syncFn, closeFn, every, log), nil
}

// startLazyCommit starts a lazy committer over any sync function: publish
// answers at the PubAck, and syncFn runs every `every` in the background.
func startLazyCommit(publishRaw func(context.Context, *nats.Msg) (*jetstream.PubAck, error), syncFn, closeFn func() error, every time.Duration, log *zap.Logger) *groupCommit {
	g := &groupCommit{
		publishRaw: publishRaw,
		sync:       syncFn,
		closeSync:  closeFn,
		log:        log,
		every:      every,
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	go g.runLazy()
	return g
}

// runLazy runs a pass every g.every until close, or until a pass fails
// (nothing can be proven after that). At close it runs a last pass for
// what was acknowledged since the previous one: nats-server does not
// fsync its blocks when it stops (filestore.go, fileStore.stop →
// closeAllMsgBlocks(false)), and the engine closes the committer once no
// publish can start, so a clean stop keeps "fsynced within <interval>".
func (g *groupCommit) runLazy() {
	defer close(g.done)
	t := time.NewTicker(g.every)
	defer t.Stop()
	for {
		select {
		case <-g.stop:
			if g.unsynced.Load() > 0 {
				_ = g.pass() // a failure is logged; nothing waits for it
			}
			return
		case <-t.C:
		}
		if g.unsynced.Load() == 0 {
			continue // nothing acknowledged since the last pass
		}
		if g.pass() != nil {
			return
		}
	}
}

// pass syncs what was acknowledged before it started and makes a failure
// sticky.
func (g *groupCommit) pass() error {
	n := g.unsynced.Load()
	o := g.observer.Load()
	if o != nil && o.PassStarted != nil {
		o.PassStarted()
	}
	err := g.sync()
	if o != nil && o.PassDone != nil {
		o.PassDone(err)
	}
	if err == nil {
		g.unsynced.Add(-n)
		return nil
	}
	sticky := g.fail(err)
	g.log.Error("event store fsync failed: every request gets 503 until Caddy is restarted; events acknowledged since the last good sync were not fsynced and may be lost on power loss (check the disk, then restart Caddy)",
		zap.Error(err), zap.Duration("sync", g.every), zap.Int64("acknowledged_events_at_risk", g.unsynced.Load()))
	return sticky
}
