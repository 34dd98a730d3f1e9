package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/hookgate/hookgate/event"
)

// What happens when the store's disk is full.
//
// nats-server 2.15.2 answers a publish whose write fails with ENOSPC with
// nothing at all (stream.go processJetStreamMsg: "We don't want to respond
// back to the user"), and marks the stream and its file store with a write
// error that it never clears (stream.go setWriteErrLocked, filestore.go
// setWriteErr): every later publish would wait publish_timeout and the store
// would stay dead until a restart. So the engine watches the server's log
// for "no space left on device", and from then on:
//
//   - publish fails at once with errStoreFull (the handler's 503 +
//     Retry-After), including publishes already waiting for their PubAck;
//   - writable reports false, for readiness checks and other publishers;
//   - every spaceCheckEvery it looks at the free space of the store's
//     filesystem; once spaceNeeded bytes are free it restarts JetStream in
//     the running server (ShutdownJetStream, then ReloadOptions, which
//     re-enables it from disk, as a config reload that turns JetStream back
//     on does). The streams are read back from disk, a record cut short by
//     the full disk is dropped, and ingestion resumes without a restart.
//
// Acknowledged events are on disk before their PubAck, so none is lost; an
// event whose publish failed was answered 503, and its retry is stored once
// (the dedup window is rebuilt from the stream).

// spaceCheckEvery is how often a full store looks for free space again.
const spaceCheckEvery = time.Second

// errStoreFull means the store refused a write for lack of disk space.
var errStoreFull = errors.New("event store is out of disk space and refuses new events; free space on its filesystem (or grow it) and ingestion resumes by itself within seconds")

// storeHealth is one period of the store's write health: its context is
// cancelled when the store stops taking writes, which also ends the waits
// of publishes in flight. A recovered store gets a new storeHealth.
type storeHealth struct {
	ctx  context.Context
	full context.CancelFunc
	// streamFullAt is when (Unix nanoseconds) the WEBHOOKS stream last
	// refused an event for its max_store; 0 for never.
	streamFullAt atomic.Int64
	// streamFullLog lets the refusal be logged once per streamFullLogEvery.
	streamFullLog rate.Sometimes
}

func newStoreHealth() *storeHealth {
	ctx, cancel := context.WithCancel(context.Background())
	return &storeHealth{ctx: ctx, full: cancel, streamFullLog: rate.Sometimes{Interval: streamFullLogEvery}}
}

func (h *storeHealth) isFull() bool { return h.ctx.Err() != nil }

// writable reports whether the store takes new events now. It is cheap
// (an atomic load and a context's Err, no I/O): any publisher may call it
// per request to fail fast with errStoreFull, and the readiness check does.
func (e *engine) writable() bool {
	return !e.health.Load().isFull()
}

// markFull records that the store refused a write for lack of space. The
// first call per period fails waiting publishes and starts the recovery.
// nats-server's logger calls it, from any goroutine.
func (e *engine) markFull() {
	e.healthMu.Lock()
	defer e.healthMu.Unlock()
	h := e.health.Load()
	if h.isFull() {
		return
	}
	select {
	case <-e.stopping:
		return // shutting down: nothing to recover
	default:
	}
	h.full()
	// No optsMu here: the server may log this while a reload holds it.
	e.log.Error("event store: the disk is full; answering 503 + Retry-After until space is freed, then resuming by itself",
		zap.String("store", e.dir))
	e.recovery.Add(1)
	go e.recoverWhenSpace()
}

// spaceNeeded is the free space after which a full store tries to take
// writes again: room for a few of the largest events, at least 1 MiB.
func (e *engine) spaceNeeded() int64 {
	e.optsMu.Lock()
	defer e.optsMu.Unlock()
	return max(4*int64(e.cfg.MaxPayload), 1<<20)
}

// recoverWhenSpace waits for free space, then restarts JetStream; it tries
// again while the restart fails, and stops when the engine shuts down.
func (e *engine) recoverWhenSpace() {
	defer e.recovery.Done()
	tick := time.NewTicker(spaceCheckEvery)
	defer tick.Stop()
	e.log.Info("event store: waiting for free space", zap.String("store", e.dir), zap.Int64("free_bytes_needed", e.spaceNeeded()))
	for {
		select {
		case <-e.stopping:
			return
		case <-tick.C:
		}
		if free, err := freeBytes(e.dir); err == nil && free < e.spaceNeeded() {
			continue
		}
		if err := e.restartJetStream(); err != nil {
			e.log.Warn("event store: still not writable after space was freed; trying again", zap.Error(err))
			continue
		}
		e.healthMu.Lock()
		e.health.Store(newStoreHealth())
		e.healthMu.Unlock()
		e.log.Info("event store: space is back; accepting events again", zap.String("store", e.dir))
		return
	}
}

// restartJetStream reloads every stream from disk in the running server,
// clearing the write errors a full disk left.
func (e *engine) restartJetStream() error {
	e.optsMu.Lock()
	defer e.optsMu.Unlock()
	if err := e.srv.ShutdownJetStream(); err != nil {
		return fmt.Errorf("stop JetStream: %w", err)
	}
	opts, err := e.serverOptions(e.cfg)
	if err != nil {
		return err
	}
	// Options that ask for JetStream on a server where it is off make
	// ReloadOptions start it again (server/reload.go, "jetstream").
	if err := e.srv.ReloadOptions(opts); err != nil {
		return fmt.Errorf("start JetStream: %w", err)
	}
	if !e.srv.JetStreamEnabled() {
		return errors.New("JetStream did not start again; see the nats log lines above")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, name := range eventStreams {
		if _, err := e.js.Stream(ctx, name); err != nil {
			return fmt.Errorf("stream %s after restart: %w", name, err)
		}
	}
	return nil
}

// publish stores msg in the WEBHOOKS stream and returns the PubAck. It
// fails at once with errStoreFull while the disk is full, and gives up
// waiting for the PubAck as soon as the disk turns out to be full.
func (e *engine) publish(ctx context.Context, msg *nats.Msg) (*jetstream.PubAck, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return nil, errEngineClosed
	}
	h := e.health.Load()
	if h.isFull() {
		return nil, errStoreFull
	}
	ack, err := e.commit.publish(ctx, msg)
	switch {
	case err == nil:
		return ack, nil
	case h.isFull():
		return nil, fmt.Errorf("%w (%v)", errStoreFull, err)
	case isMaxBytes(err):
		return nil, e.streamFull(h, err)
	}
	return nil, err
}

// What happens when the WEBHOOKS stream reaches its max_store.
//
// The stream discards new events (DiscardNew): nats-server refuses the
// publish with JSStreamStoreFailedF (10077) and the description of its
// ErrMaxBytes, "maximum bytes exceeded" (server/store.go). Events leave a
// limits-retention stream only by age, so the refusals go on until the
// operator makes room. The engine logs that once per streamFullLogEvery,
// with what to do; the handler answers 503 without logging each refusal,
// and the readiness check answers 503 store-full for streamFullWindow
// after the last one.
const (
	streamFullWindow   = 10 * time.Second
	streamFullLogEvery = time.Minute
)

// errStreamFull means the WEBHOOKS stream refused an event for its
// max_store.
var errStreamFull = errors.New("the stream " + event.StreamName + " is at max_store and refuses new events; raise max_store (a reload applies it), shorten retention, or wait for the oldest events to age out")

// isMaxBytes reports whether err is nats-server's refusal of a publish for
// the stream's MaxBytes.
func isMaxBytes(err error) bool {
	return strings.Contains(err.Error(), server.ErrMaxBytes.Error())
}

// turn reports whether s lets its action run now (at most once per its
// Interval). Only the turn is taken under s's lock: the caller then logs
// outside it, so the other callers (requests, some of them) never wait
// for a log writer or for what the line reads.
func turn(s *rate.Sometimes) (ok bool) {
	s.Do(func() { ok = true })
	return ok
}

// streamFull records a max_store refusal in h, logs it at most once per
// streamFullLogEvery, and returns the error the handler answers with.
func (e *engine) streamFull(h *storeHealth, err error) error {
	h.streamFullAt.Store(time.Now().UnixNano())
	if turn(&h.streamFullLog) { // the line reads the stream's info
		e.log.Error("the stream "+event.StreamName+" is at max_store: raise max_store, shorten retention, or wait for the oldest events to age out; events are refused with 503 until there is room (logged once a minute)",
			zap.Int64("max_store", e.streamMaxBytes()), zap.String("nats_error", err.Error()))
	}
	return fmt.Errorf("%w (%v)", errStreamFull, err)
}

// streamMaxBytes is the WEBHOOKS stream's MaxBytes, or -1 when it cannot
// be read.
func (e *engine) streamMaxBytes() int64 {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	s, err := e.js.Stream(ctx, event.StreamName)
	if err != nil {
		return -1
	}
	return s.CachedInfo().Config.MaxBytes
}

// streamRecentlyFull reports whether the WEBHOOKS stream refused an event
// for its max_store in the last streamFullWindow. Cheap: an atomic load.
func (e *engine) streamRecentlyFull() bool {
	at := e.health.Load().streamFullAt.Load()
	return at != 0 && time.Since(time.Unix(0, at)) < streamFullWindow
}

// publishRaw stores msg and returns once nats-server acknowledged it.
// Its wait also ends when the store turns full (ackMux.publish).
func (e *engine) publishRaw(ctx context.Context, msg *nats.Msg) (*jetstream.PubAck, error) {
	return e.acks.publish(ctx, e.health.Load().ctx.Done(), msg)
}
