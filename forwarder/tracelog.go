package forwarder

import "go.uber.org/zap"

// logFields are the fields of every log line about one attempt at a
// delivery, "delivered" (debug), "delivery failed; will retry" (warn) and
// "event dead-lettered" (error), next to the logger's own destination:
// event_id, source, type, attempt, status (0 when no answer came) and
// latency (the attempt's duration). Never a header value or the body.
func logFields(d *delivery, res result) []zap.Field {
	return []zap.Field{
		zap.String("event_id", d.ev.ID),
		zap.String("source", d.ev.Source),
		zap.String("type", d.ev.Type),
		zap.Int("attempt", d.attempt),
		zap.Int("status", res.status),
		zap.Duration("latency", res.latency),
	}
}
