package forwarder

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/hookgate/hookgate/event"
)

// breakerState is the state of a circuit.
type breakerState int32

const (
	circuitClosed breakerState = iota
	circuitOpen
	circuitHalfOpen
)

// forever is how long a 410 pauses a destination: until an operator
// resumes it or changes its URL.
const forever = 100 * 365 * 24 * time.Hour

// breaker is a destination's circuit breaker. Attempts pass it through
// enter; while it is open they wait there, in hand, instead of failing and
// spending attempts, and the consumer is paused so JetStream hands out no
// more. After the cooldown one probe goes; its success closes the circuit,
// its failure opens it again.
type breaker struct {
	cfg   BreakerConfig
	state atomic.Int32 // breakerState, read without the lock on the hot path
	// held is set by a 410: every attempt waits until reset, whatever the
	// circuit's state, which it leaves alone (a 410 is not a failure).
	held atomic.Bool

	mu          sync.Mutex
	until       time.Time
	probing     bool
	consecutive int
	winStart    time.Time
	winOK       int
	winFail     int
	// goneAt is when the 410 that set held came.
	goneAt time.Time
	// wake is closed and replaced on every state change so that waiters
	// look again.
	wake chan struct{}
}

func newBreaker(cfg BreakerConfig) *breaker {
	return &breaker{cfg: cfg, wake: make(chan struct{})}
}

// closed reports whether attempts may go without looking further.
func (b *breaker) closed() bool {
	return breakerState(b.state.Load()) == circuitClosed && !b.held.Load()
}

// enter blocks until an attempt may go and reports whether it is the
// half-open probe. It fails only when ctx ends.
func (b *breaker) enter(ctx context.Context) (probe bool, err error) {
	for {
		b.mu.Lock()
		if b.held.Load() {
			wake := b.wake
			b.mu.Unlock()
			if err := sleepUntilWake(ctx, wake, -1); err != nil {
				return false, err
			}
			continue
		}
		st := breakerState(b.state.Load())
		now := time.Now()
		if st == circuitOpen && !now.Before(b.until) {
			st = circuitHalfOpen
			b.setLocked(st)
		}
		switch {
		case st == circuitClosed:
			b.mu.Unlock()
			return false, nil
		case st == circuitHalfOpen && !b.probing:
			b.probing = true
			b.mu.Unlock()
			return true, nil
		}
		wake := b.wake
		wait := time.Duration(-1)
		if st == circuitOpen {
			wait = b.until.Sub(now)
		}
		b.mu.Unlock()
		if err := sleepUntilWake(ctx, wake, wait); err != nil {
			return false, err
		}
	}
}

// sleepUntilWake waits for wake, for d (unless d < 0) or for ctx.
func sleepUntilWake(ctx context.Context, wake <-chan struct{}, d time.Duration) error {
	var timer <-chan time.Time
	if d >= 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-wake:
	case <-timer:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// abandon gives the probe back when its attempt never ran.
func (b *breaker) abandon(probe bool) {
	if !probe {
		return
	}
	b.mu.Lock()
	b.probing = false
	b.broadcastLocked()
	b.mu.Unlock()
}

// done records an attempt. It returns the time the circuit is open until
// when this attempt opened it, zero otherwise, and whether it closed it.
func (b *breaker) done(probe, failed bool) (openedUntil time.Time, closed bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	if probe {
		b.probing = false
		if failed {
			return b.openLocked(now, b.cfg.Cooldown), false
		}
		b.resetLocked(now)
		return time.Time{}, true
	}
	if breakerState(b.state.Load()) != circuitClosed || b.cfg.Disabled {
		// An attempt that started before the circuit opened: the probe
		// decides, not stragglers.
		return time.Time{}, false
	}
	if now.Sub(b.winStart) > b.cfg.Window {
		b.winStart, b.winOK, b.winFail = now, 0, 0
	}
	if !failed {
		b.consecutive = 0
		b.winOK++
		return time.Time{}, false
	}
	b.consecutive++
	b.winFail++
	total := b.winOK + b.winFail
	if (b.cfg.Failures > 0 && b.consecutive >= b.cfg.Failures) ||
		(b.cfg.Ratio > 0 && total >= b.cfg.MinRequests && float64(b.winFail) >= b.cfg.Ratio*float64(total)) {
		return b.openLocked(now, b.cfg.Cooldown), false
	}
	return time.Time{}, false
}

// hold stops every attempt until reset (a 410 at now).
func (b *breaker) hold(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.held.Load() {
		b.goneAt = now
	}
	b.held.Store(true)
	b.broadcastLocked()
}

// reset lifts a hold and closes the circuit (an operator resumed the
// destination).
func (b *breaker) reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.held.Store(false)
	b.goneAt = time.Time{}
	b.resetLocked(time.Now())
}

func (b *breaker) openLocked(now time.Time, d time.Duration) time.Time {
	b.until = now.Add(d)
	b.setLocked(circuitOpen)
	return b.until
}

func (b *breaker) resetLocked(now time.Time) {
	b.consecutive, b.winOK, b.winFail, b.winStart = 0, 0, 0, now
	b.setLocked(circuitClosed)
}

func (b *breaker) setLocked(st breakerState) {
	b.state.Store(int32(st))
	b.broadcastLocked()
}

func (b *breaker) broadcastLocked() {
	close(b.wake)
	b.wake = make(chan struct{})
}

// recordBreaker feeds an attempt's result to the breaker and pauses or
// notes the consumer accordingly. A response that is not a failure of the
// destination (a 2xx, a rejecting 4xx) counts as success.
func (r *run) recordBreaker(probe bool, res result) {
	if res.outcome == gone {
		r.breaker.abandon(probe)
		return
	}
	until, closed := r.breaker.done(probe, res.outcome == retryable)
	switch {
	case !until.IsZero():
		r.log.Warn("circuit open: destination paused",
			zap.Time("until", until), zap.Int("last_status", res.status), zap.String("last_error", res.err))
		r.pauseConsumer(until)
	case closed:
		r.log.Info("circuit closed: destination healthy again")
	}
}

// pauseGone pauses the destination after a 410 Gone until an operator
// resumes it (Resume) or a reload changes its URL.
func (r *run) pauseGone(res result) {
	now := time.Now()
	r.breaker.hold(now)
	r.log.Error("destination answered 410 Gone: paused until resumed; fix its url and reload, or resume it",
		zap.String("url", RedactURL(r.cfg.URL)), zap.String("consumer", r.consumer), zap.String("last_error", res.err))
	r.pauseConsumer(now.Add(forever))
}

// pauseConsumer pauses the durable consumer, so that no Forwarder of this
// destination, in this process or another, is handed events until then.
func (r *run) pauseConsumer(until time.Time) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.hardCtx), 5*time.Second)
	defer cancel()
	if _, err := r.js.PauseConsumer(ctx, event.StreamName, r.consumer, until); err != nil {
		// The in-process gate still holds every attempt of this Forwarder.
		r.log.Warn("pause consumer", zap.String("consumer", r.consumer), zap.Error(err))
	}
}

// Resume lifts a pause of the destination (after a 410 or while its
// circuit is open) and closes its circuit. It returns an error wrapping
// ErrNotPaused, and changes nothing, when the destination is not paused.
func (f *Forwarder) Resume(ctx context.Context) error {
	st, err := f.Status(ctx)
	if err != nil {
		return err
	}
	if !st.Paused {
		return fmt.Errorf("destination %q: %w; nothing to resume", f.cfg.Name, ErrNotPaused)
	}
	// Not ResumeConsumer: in nats-server 2.15.2 it lifts the pause without
	// waking the consumer, so events handed back during the pause would
	// wait for the next pull request (up to 30s). A pause that ends a
	// moment from now is lifted by the server's own timer, which does.
	if _, err := f.js.PauseConsumer(ctx, event.StreamName, f.consumer, time.Now().Add(resumeKick)); err != nil {
		return fmt.Errorf("destination %q: resume consumer %q: %w", f.cfg.Name, f.consumer, err)
	}
	f.breaker.reset()
	f.log.Info("destination resumed", zap.String("was", st.PausedReason))
	return nil
}

// resumeKick is the pause Resume sets so that the server wakes the consumer
// when it ends.
const resumeKick = 50 * time.Millisecond

// snapshot returns the circuit's state, until when it is open (zero when
// closed), and when a 410 held the destination (zero when not held).
func (b *breaker) snapshot() (st breakerState, until, goneAt time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	st = breakerState(b.state.Load())
	if st != circuitClosed {
		until = b.until
	}
	return st, until, b.goneAt
}

func (s breakerState) String() string {
	switch s {
	case circuitOpen:
		return "open"
	case circuitHalfOpen:
		return "half-open"
	}
	return "closed"
}
