package forwarder

import "time"

// verdict is what becomes of an event after one attempt.
type verdict int

const (
	// ack: the destination took the event.
	ack verdict = iota
	// deadLetter: copy the event to WEBHOOKS_DLQ and terminate it.
	deadLetter
	// retryLater: hand the event back to JetStream with NakWithDelay.
	retryLater
	// retryInTurn: keep the event (and its key's turn) in hand, wait out
	// the delay, and attempt again; only ordered events do this.
	retryInTurn
	// pauseAndNak: pause the destination (a 410) and hand the event back;
	// it comes again once the destination is resumed.
	pauseAndNak
	// pauseInTurn: pause the destination (a 410) and keep the event and its
	// key's turn; the breaker holds the next attempt until resumed.
	pauseInTurn
)

// decisionInput is what decide needs to know about an event after an
// attempt.
type decisionInput struct {
	outcome outcome
	// ordered is true when the event has an ordering key.
	ordered bool
	// attempt is the number of the attempt just made (1-based), of
	// maxAttempts allowed.
	attempt, maxAttempts int
	// delay is the wait before the next attempt, when it is retryable.
	delay time.Duration
	// now, received and maxAge (0: none) bound the event's age.
	now, received time.Time
	maxAge        time.Duration
	// delivered is JetStream's delivery count of this message, of
	// maxDeliver allowed.
	delivered, maxDeliver int
}

// decision is decide's answer: a verdict, and the dead letter's reason or
// the next attempt's time.
type decision struct {
	verdict verdict
	reason  string    // for deadLetter
	next    time.Time // for retryLater and retryInTurn
}

// decide maps an attempt's outcome to the event's fate. It is the whole
// retry policy, without side effects:
//
//	outcome    ordered  condition                         verdict
//	delivered  any                                        ack
//	rejected   any                                        dead letter (rejected)
//	gone       no                                         pause, nak
//	gone       yes                                        pause, keep the turn
//	retryable  any      attempts used up                  dead letter (max_attempts)
//	retryable  any      next attempt past max_age         dead letter (max_age)
//	retryable  no       JetStream's deliveries used up    dead letter (max_deliveries)
//	retryable  no                                         nak with delay
//	retryable  yes                                        wait in hand, keep the turn
//
// An ordered event never goes back to JetStream while retrying, so its
// delivery count does not grow and cannot run out.
func decide(in decisionInput) decision {
	switch in.outcome {
	case delivered:
		return decision{verdict: ack}
	case rejected:
		return decision{verdict: deadLetter, reason: reasonRejected}
	case gone:
		if in.ordered {
			return decision{verdict: pauseInTurn}
		}
		return decision{verdict: pauseAndNak}
	}
	if in.attempt >= in.maxAttempts {
		return decision{verdict: deadLetter, reason: reasonMaxAttempts}
	}
	next := in.now.Add(in.delay)
	if in.maxAge > 0 && next.After(in.received.Add(in.maxAge)) {
		return decision{verdict: deadLetter, reason: reasonMaxAge}
	}
	if in.ordered {
		return decision{verdict: retryInTurn, next: next}
	}
	if in.delivered >= in.maxDeliver {
		return decision{verdict: deadLetter, reason: reasonMaxDeliveries}
	}
	return decision{verdict: retryLater, next: next}
}
