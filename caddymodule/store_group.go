package caddymodule

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/hookgate/hookgate/event"
)

// groupCommit keeps the promise "a 2xx means the event is on disk" while
// many concurrent requests share one fsync (group commit).
//
// It relies on how nats-server v2.15 stores a message of an R1 file-backed
// stream in the default persist mode with SyncAlways off: the message is
// written (pwrite) into the stream's newest block file before the PubAck
// is sent, and fsynced only on the server's sync_interval timer
// (filestore.go, msgBlock.writeMsgRecordLocked → flushPendingMsgsLocked;
// pinned by TestPinMessageBytesInBlockAtPubAck). So after a PubAck the
// event's bytes are in the page cache; what is missing is the fsync.
//
// publish publishes, then waits for a sync round that started after its
// PubAck. One goroutine runs the rounds back to back: on Linux each is one
// fdatasync of the stream's block files written since the previous round
// (store_sync_linux.go), and it answers every request that joined before
// it started. While a round runs, the next one gathers its requests, so
// under load one fsync answers many requests, and with one request it
// costs one fsync, like SyncAlways.
//
// A failed round is sticky: fsync errors may drop the dirty pages (Linux
// marks them clean), so no later round can prove anything. Every waiting
// and later publish fails with errStoreSyncFailed until the process is
// restarted, and the log says why once.
//
// With a lazy interval (sync <interval>, every > 0) no request waits:
// publish answers at the PubAck, and a background pass runs the same sync
// every interval, outside nats-server's locks (see startLazyCommit).
type groupCommit struct {
	// publishRaw stores msg and returns its PubAck once nats-server has
	// written it (not fsynced it).
	publishRaw func(ctx context.Context, msg *nats.Msg) (*jetstream.PubAck, error)
	// sync makes everything written so far durable.
	sync func() error
	// closeSync releases what sync holds (the store directory's handle).
	closeSync func() error
	log       *zap.Logger
	// observer, when set (tests), hears of every step; see commitObserver.
	observer atomic.Pointer[commitObserver]
	// every is the lazy interval between background passes; 0 with
	// rounds (sync always) or no sync at all.
	every time.Duration
	// unsynced counts the events acknowledged (lazy mode) since the
	// start of the last good pass: the ones a failed pass puts at risk.
	unsynced atomic.Int64

	mu sync.Mutex
	// next is the round that requests join; it has not started.
	next *syncRound
	// failed is the sticky error of a failed round.
	failed error
	// closed is set by close: no round will run any more.
	closed bool
	// wake has room for one signal: "next has waiters".
	wake chan struct{}
	stop chan struct{}
	done chan struct{}
}

// syncRound is one fsync shared by the requests that joined it.
type syncRound struct {
	// done is closed once the round has finished; err is set before.
	done    chan struct{}
	err     error
	waiters int
}

// commitObserver hears each step of the group commit, in the order they
// happen, so a test can prove that an event's fsync completed after its
// bytes were written and before its 2xx. Calls come from many goroutines.
type commitObserver struct {
	// Written is called after the PubAck of msg: its bytes are written.
	Written func(msg *nats.Msg, ack *jetstream.PubAck)
	// SyncStarted and SyncDone bracket one sync round of n requests.
	SyncStarted func(n int)
	SyncDone    func(n int, err error)
	// PassStarted and PassDone bracket one background pass of a lazy
	// interval, which no request waits for.
	PassStarted func()
	PassDone    func(err error)
}

// errStoreSyncFailed is the sticky error after a failed fsync: the store
// can no longer prove any event durable until the process restarts.
var errStoreSyncFailed = errors.New("event store fsync failed earlier; no event can be acknowledged as durable until Caddy is restarted (check the disk and the log line 'event store fsync failed')")

// newGroupCommit starts the sync goroutine of a group commit over the
// store directory dir. publishRaw is the store's own publish. Not grouped
// (nats-server's own per-event SyncAlways, a cluster, an external NATS),
// it answers at the PubAck and runs no rounds; the observer still hears of
// each write. A lazy interval has its own committer: newLazyCommit.
func newGroupCommit(dir string, publishRaw func(context.Context, *nats.Msg) (*jetstream.PubAck, error), grouped bool, log *zap.Logger) (*groupCommit, error) {
	if !grouped {
		return &groupCommit{publishRaw: publishRaw, log: log}, nil
	}
	syncFn, closeFn, err := storeSyncer(dir, 0, log)
	if err != nil {
		return nil, fmt.Errorf("store %s: group commit: %w", dir, err)
	}
	return startGroupCommit(publishRaw, syncFn, closeFn, log), nil
}

// ensureTwoProcs raises GOMAXPROCS to 2 when it is 1 (one CPU in the
// process's affinity mask or cgroup quota). With one P, a goroutine
// blocked in fdatasync holds up the whole request path until the runtime
// hands the P off: measured with bench/compare on one pinned core at 64
// connections, sync always fell from 8,032 to 881 req/s, and sync 1s
// from 4,968 to 2,870. A second P lets requests run while the store waits
// for the disk; on one core it costs little more than scheduling. An
// explicit GOMAXPROCS environment variable is left alone, with a warning.
// Raising it stops Go's automatic GOMAXPROCS updates when the cgroup quota
// changes later.
func ensureTwoProcs(log *zap.Logger) {
	if runtime.GOMAXPROCS(0) >= 2 {
		return
	}
	if os.Getenv("GOMAXPROCS") != "" {
		log.Warn("GOMAXPROCS=1 is set: the event store's fsync waits stall the request path; set GOMAXPROCS=2 or more (even on one core) for several times the throughput")
		return
	}
	runtime.GOMAXPROCS(2)
	log.Info("GOMAXPROCS raised from 1 to 2 so that requests keep running while the event store waits for the disk")
}

// startGroupCommit starts a group commit over any sync function.
func startGroupCommit(publishRaw func(context.Context, *nats.Msg) (*jetstream.PubAck, error), syncFn, closeFn func() error, log *zap.Logger) *groupCommit {
	g := &groupCommit{
		publishRaw: publishRaw,
		sync:       syncFn,
		closeSync:  closeFn,
		log:        log,
		next:       &syncRound{done: make(chan struct{})},
		wake:       make(chan struct{}, 1),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	go g.run()
	return g
}

// publish stores msg and returns its PubAck once an fsync that started
// after the PubAck has completed. A duplicate's PubAck comes after the
// original was written, so its round covers the original too. ctx bounds
// the whole wait (publish_timeout).
func (g *groupCommit) publish(ctx context.Context, msg *nats.Msg) (*jetstream.PubAck, error) {
	if err := g.failure(); err != nil {
		return nil, err
	}
	ack, err := g.publishRaw(ctx, msg)
	if err != nil {
		return nil, err
	}
	if o := g.observer.Load(); o != nil && o.Written != nil {
		o.Written(msg, ack)
	}
	if g.sync == nil {
		return ack, nil
	}
	if g.every > 0 {
		g.unsynced.Add(1) // a background pass will sync it (store_lazy.go)
		// A pass that failed since the check above will sync nothing
		// more: the event is written, but its 2xx would promise a sync.
		if err := g.failure(); err != nil {
			return nil, err
		}
		return ack, nil
	}
	r, err := g.join()
	if err != nil {
		return nil, err
	}
	select {
	case <-r.done:
		if r.err != nil {
			return nil, r.err
		}
		return ack, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("event written but its fsync did not complete in time: %w", ctx.Err())
	}
}

// syncFailed reports whether a sync of the store's committer failed: the
// store then refuses every event until a restart (caddy_webhooks_store_up
// is 0 and the readiness check answers 503). Cheap: one mutex, no I/O.
func (e *engine) syncFailed() bool {
	return e.commit != nil && e.commit.failure() != nil
}

func (g *groupCommit) failure() error {
	if g.sync == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.failed
}

// join adds the caller to the next round and wakes the sync goroutine.
func (g *groupCommit) join() (*syncRound, error) {
	g.mu.Lock()
	if g.failed != nil || g.closed {
		g.mu.Unlock()
		return nil, cmp.Or(g.failed, errEngineClosed)
	}
	r := g.next
	r.waiters++
	g.mu.Unlock()
	select {
	case g.wake <- struct{}{}:
	default: // a wake-up is pending already
	}
	return r, nil
}

// run runs sync rounds back to back while requests wait.
func (g *groupCommit) run() {
	defer close(g.done)
	for {
		select {
		case <-g.wake:
		case <-g.stop:
			g.finish()
			return
		}
		g.mu.Lock()
		r := g.next
		if r.waiters == 0 {
			g.mu.Unlock()
			continue
		}
		g.next = &syncRound{done: make(chan struct{})}
		g.mu.Unlock()
		r.err = g.round(r.waiters)
		close(r.done)
	}
}

// round runs one fsync for n waiting requests and makes a failure sticky.
func (g *groupCommit) round(n int) error {
	o := g.observer.Load()
	if o != nil && o.SyncStarted != nil {
		o.SyncStarted(n)
	}
	err := g.sync()
	if o != nil && o.SyncDone != nil {
		o.SyncDone(n, err)
	}
	if err == nil {
		return nil
	}
	g.log.Error("event store fsync failed: every request gets 503 until Caddy is restarted; the events written since the last good fsync may be lost on power loss, those acknowledged before it are safe",
		zap.Error(err), zap.Int("waiting_requests", n))
	return g.fail(err)
}

// fail makes the failed sync err sticky and returns the sticky error.
func (g *groupCommit) fail(err error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.failed = fmt.Errorf("%w: %w", errStoreSyncFailed, err)
	return g.failed
}

// finish fails the requests of a round that will not run.
func (g *groupCommit) finish() {
	g.mu.Lock()
	r := g.next
	g.next = &syncRound{done: make(chan struct{})}
	g.mu.Unlock()
	r.err = errEngineClosed
	close(r.done)
}

// close stops the sync goroutine and releases the store directory. Call
// it once no publish can start (the engine holds its write lock).
func (g *groupCommit) close() error {
	if g.sync == nil {
		return nil
	}
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	close(g.stop)
	<-g.done
	return g.closeSync()
}

// Interface guard.
var _ publisher = (*groupCommit)(nil)

// streamBlockDir is where nats-server keeps the WEBHOOKS stream's block
// files: <store>/jetstream/<account>/streams/<stream>/msgs
// (filestore.go: JetStreamStoreDir, streamsDir, msgDir), the gateway's
// in-process connection being in the global account $G.
func streamBlockDir(storeDir string) string {
	return filepath.Join(storeDir, "jetstream", server.DEFAULT_GLOBAL_ACCOUNT, "streams", event.StreamName, "msgs")
}
