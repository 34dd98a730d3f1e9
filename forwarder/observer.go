package forwarder

import "time"

// Observer is told what happens to a destination's deliveries, for
// metrics. Its methods run on the delivery path: they must be quick and
// safe for concurrent use.
type Observer interface {
	// Attempted is called after every HTTP attempt with its outcome (one
	// of the Attempt* constants) and how long it took.
	Attempted(outcome string, latency time.Duration)
	// DeadLettered is called when an event is copied to WEBHOOKS_DLQ, with
	// the reason its dead letter records.
	DeadLettered(reason string)
	// Filtered is called when the destination's filters let an event
	// through to no attempt: it is acked for the destination unsent.
	Filtered()
}

// The outcomes of one attempt, as Observer.Attempted reports them.
const (
	AttemptDelivered = "delivered" // a 2xx
	AttemptError     = "error"     // retryable: 408, 425, 429, 5xx, a network error or timeout
	AttemptRejected  = "rejected"  // a 4xx that dead-letters the event
	AttemptGone      = "gone"      // a 410, which pauses the destination
)

// AttemptOutcomes lists every outcome Observer.Attempted reports.
var AttemptOutcomes = []string{AttemptDelivered, AttemptError, AttemptRejected, AttemptGone}

// DeadLetterReasons lists every reason Observer.DeadLettered reports.
var DeadLetterReasons = []string{reasonRejected, reasonMaxAttempts, reasonMaxAge, reasonMaxDeliveries, reasonUndecodable, reasonTransform}

func (o outcome) String() string {
	switch o {
	case delivered:
		return AttemptDelivered
	case rejected:
		return AttemptRejected
	case gone:
		return AttemptGone
	}
	return AttemptError
}

// nopObserver is the Observer of a Config without one.
type nopObserver struct{}

func (nopObserver) Attempted(string, time.Duration) {}
func (nopObserver) DeadLettered(string)             {}
func (nopObserver) Filtered()                       {}

// Interface guard.
var _ Observer = nopObserver{}
