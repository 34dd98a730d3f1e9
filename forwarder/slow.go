package forwarder

import (
	"context"
	"sync"
	"time"
)

// slowWatch shows the attempts that run longer than after as
// "delivering": one goroutine per run looks at the attempts in flight
// every after/4, so the state appears between after and 1.25×after into
// an attempt. A fast attempt (nearly all of them) costs a map insert and
// a delete under a mutex, where a timer per attempt cost a timer, a
// closure and a channel, and the runtime's timer heap twice.
type slowWatch struct {
	f     *Forwarder
	after time.Duration
	// mu guards running, and is held while a "delivering" state is
	// written, so that an attempt's final state, written after end, comes
	// after it.
	mu      sync.Mutex
	running map[*delivery]slowAttempt
}

// slowAttempt is one attempt in flight.
type slowAttempt struct {
	start time.Time
	shown bool // its "delivering" state is written
}

func newSlowWatch(f *Forwarder, after time.Duration) *slowWatch {
	return &slowWatch{f: f, after: after, running: make(map[*delivery]slowAttempt)}
}

// begin notes that d's attempt starts now.
func (w *slowWatch) begin(d *delivery) {
	w.mu.Lock()
	w.running[d] = slowAttempt{start: time.Now()}
	w.mu.Unlock()
}

// end notes that d's attempt is over. Once it returns, no "delivering"
// state of the attempt is written any more.
func (w *slowWatch) end(d *delivery) {
	w.mu.Lock()
	delete(w.running, d)
	w.mu.Unlock()
}

// loop writes the "delivering" states until ctx ends.
func (w *slowWatch) loop(ctx context.Context) {
	t := time.NewTicker(max(w.after/4, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			w.show(now)
		}
	}
}

// show writes the "delivering" state of every attempt running for after
// or longer at now and not yet shown.
func (w *slowWatch) show(now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for d, a := range w.running {
		if a.shown || now.Sub(a.start) < w.after {
			continue
		}
		// The attempt is under way: nothing about it is known yet.
		w.f.writeState(d, StatusDelivering, result{}, time.Time{})
		a.shown = true
		w.running[d] = a
	}
}
