package forwarder

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// run is one running instance of a Forwarder: what Start makes and Stop
// consumes, as nats.go's jetstream keeps a pull subscription's state behind
// its ConsumeContext. The Forwarder it embeds is the long-lived part
// (config, clients, breaker); everything here starts empty with each run.
type run struct {
	*Forwarder

	kv    jetstream.KeyValue
	cc    jetstream.ConsumeContext
	advCC jetstream.ConsumeContext
	work  chan task
	// workers make the HTTP attempts; loops are the keep-alive loop.
	workers sync.WaitGroup
	loops   sync.WaitGroup
	// stopCtx is cancelled when Stop begins: waiting events give up.
	stopCtx context.Context
	stopNow context.CancelFunc
	// hardCtx aborts attempts in flight when Stop runs out of time.
	hardCtx    context.Context
	hardCancel context.CancelFunc
	// held are messages in hand but not in an HTTP attempt (waiting for the
	// breaker, the rate limiter, a retry delay or their turn in a key's
	// queue); they get InProgress so JetStream keeps them ours.
	held *heldSet
	// order holds, per ordering key, the events waiting behind the one
	// being delivered.
	order *keyQueue[jetstream.Msg]
	// attempts remembers the attempts made per stream sequence while an
	// event is being retried, so a redelivery needs no state read.
	attempts *attemptMemo
	// slow shows long attempts as "delivering"; nil when slowAfter is 0.
	slow *slowWatch
}

// task is one message handed to a worker, with its ordering key ("" when
// unordered).
type task struct {
	msg jetstream.Msg
	key string
}

func newRun(f *Forwarder, kv jetstream.KeyValue) *run {
	r := &run{
		Forwarder: f,
		kv:        kv,
		held:      newHeldSet(),
		order:     newKeyQueue[jetstream.Msg](),
		attempts:  newAttemptMemo(),
		// Room for every event JetStream may hand out, so dispatch never
		// blocks and no event waits where keepAlive cannot see it.
		work: make(chan task, f.maxAckPending),
	}
	if f.slowAfter > 0 {
		r.slow = newSlowWatch(f, f.slowAfter)
	}
	r.stopCtx, r.stopNow = context.WithCancel(context.Background())
	r.hardCtx, r.hardCancel = context.WithCancel(context.Background())
	return r
}

// start starts the workers and the keep-alive loop, then consumes the
// destination's advisories and events. On failure it undoes what it did.
func (r *run) start(ctx context.Context, cons jetstream.Consumer) error {
	// Aborting an attempt means closing its connection.
	r.conns.reset()
	context.AfterFunc(r.hardCtx, r.conns.abort)
	for range r.cfg.Concurrency {
		r.workers.Go(r.worker)
	}
	r.loops.Go(func() { r.held.keepAlive(r.stopCtx, r.ackWait/3) })
	if r.slow != nil {
		// Attempts run on after stopCtx ends, until the workers are done;
		// hardCtx ends once they are (stop, abort), and so does the loop.
		go r.slow.loop(r.hardCtx)
	}
	if err := r.startAdvisories(ctx); err != nil {
		r.abort()
		return err
	}
	var err error
	r.cc, err = cons.Consume(r.dispatch,
		jetstream.PullMaxMessages(r.maxAckPending),
		// Short pull requests: under load the server sometimes drops a
		// waiting pull request while the client still counts on it
		// (observed with nats-server 2.15.2 in BenchmarkDeliver); delivery
		// then stalls until the request expires and the client re-pulls.
		jetstream.PullExpiry(time.Second),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if errors.Is(err, jetstream.ErrNoHeartbeat) {
				// The client re-pulls on its own; see PullExpiry above.
				r.debug("consume: pull request lost, re-pulling", zap.Error(err))
				return
			}
			r.log.Warn("consume", zap.Error(err))
		}))
	if err != nil {
		r.abort()
		return fmt.Errorf("destination %q: consume %q: %w", r.cfg.Name, r.consumer, err)
	}
	return nil
}

// abort undoes a half-done start.
func (r *run) abort() {
	if r.advCC != nil {
		r.advCC.Stop()
	}
	r.stopNow()
	close(r.work)
	r.workers.Wait()
	r.loops.Wait()
	r.hardCancel()
}

// stop drains the consumers and waits for the workers (see Forwarder.Stop).
func (r *run) stop(ctx context.Context) error {
	if dl, ok := ctx.Deadline(); ok {
		// Leave a moment before the deadline to Nak what was aborted.
		grace := time.Until(dl)
		t := time.AfterFunc(grace-min(grace/10, time.Second), r.hardCancel)
		defer t.Stop()
	}
	r.stopNow()
	r.cc.Drain()
	r.advCC.Drain()
	var err error
	select {
	case <-r.cc.Closed():
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err == nil {
		close(r.work)
		if err = waitCtx(ctx, &r.workers); err == nil {
			err = waitCtx(ctx, &r.loops)
		}
	}
	r.hardCancel()
	return err
}

func (r *run) isStopping() bool { return r.stopCtx.Err() != nil }

// dispatch is the Consume callback. JetStream calls it serially, so it only
// routes: each message joins the work queue, or, when ordered and its key
// is busy, the back of that key's queue. Queued messages are held (kept
// alive with InProgress) until a worker takes them.
func (r *run) dispatch(m jetstream.Msg) {
	if r.isStopping() {
		r.nak(m, 0)
		return
	}
	t := task{msg: m}
	r.held.add(m)
	if r.keyOf != nil {
		t.key = r.keyOf(m.Headers(), m.Data())
		if t.key != "" && !r.order.join(t.key, m) {
			return // queued behind the key's event in flight
		}
	}
	// The queue has room for MaxAckPending events, all JetStream hands out.
	r.work <- t
}

func (r *run) worker() {
	for t := range r.work {
		r.held.remove(t.msg)
		r.handle(t.msg)
		for t.key != "" {
			next, ok := r.order.next(t.key)
			if !ok {
				break
			}
			r.held.remove(next)
			if r.isStopping() {
				r.nak(next, 0)
				continue
			}
			r.handle(next)
		}
	}
}

// wait blocks for d while m is held, and reports false when the forwarder
// is stopping.
func (r *run) wait(m jetstream.Msg, d time.Duration) bool {
	r.held.add(m)
	defer r.held.remove(m)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.stopCtx.Done():
		return false
	}
}

// attemptMemo remembers, per stream sequence, how many attempts an event
// being retried has had.
type attemptMemo struct {
	mu sync.Mutex
	n  map[uint64]int
}

func newAttemptMemo() *attemptMemo { return &attemptMemo{n: make(map[uint64]int)} }

func (a *attemptMemo) get(seq uint64) (int, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	n, ok := a.n[seq]
	return n, ok
}

func (a *attemptMemo) set(seq uint64, n int) {
	a.mu.Lock()
	a.n[seq] = n
	a.mu.Unlock()
}

func (a *attemptMemo) forget(seq uint64) {
	a.mu.Lock()
	delete(a.n, seq)
	a.mu.Unlock()
}
