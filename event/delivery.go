package event

// Header names a destination receives from Hookgate's forwarder on every
// delivery, next to the provider's own headers and the original
// Content-Type. The Standard Webhooks names (webhook-id, webhook-timestamp,
// webhook-signature) share their canonical form with these, so a
// destination that verifies Standard Webhooks signatures reads the same
// Webhook-Id.
const (
	// HeaderWebhookID carries the event id ([Event.ID]), stable across
	// retries and replays.
	HeaderWebhookID = "Webhook-Id"
	// HeaderIdempotencyKey carries the event id too, under the name most
	// HTTP APIs use for deduplication.
	HeaderIdempotencyKey = "Idempotency-Key"
	// HeaderWebhookAttempt is the 1-based attempt number of this delivery
	// to this destination.
	HeaderWebhookAttempt = "Webhook-Attempt"
	// HeaderWebhookSource is the source the provider posted to.
	HeaderWebhookSource = "Webhook-Source"
	// HeaderWebhookTimestamp is the Standard Webhooks signing time, in
	// Unix seconds; set only when the destination signs.
	HeaderWebhookTimestamp = "Webhook-Timestamp"
	// HeaderWebhookSignature is the Standard Webhooks signature,
	// "v1,<base64 HMAC-SHA256>"; set only when the destination signs.
	HeaderWebhookSignature = "Webhook-Signature"
)

// Header names the forwarder adds to a dead letter in WEBHOOKS_DLQ. The
// dead letter otherwise keeps the original body and headers, so
// [DecodeJetStream] reads it as the original event.
const (
	// HeaderDLQDestination names the destination that gave up.
	HeaderDLQDestination = "Hookgate-Dlq-Destination"
	// HeaderDLQReason says why: "max_attempts", "max_age", "rejected"
	// (a non-retryable status), "max_deliveries" (the forwarder died
	// during its last attempts) or "undecodable".
	HeaderDLQReason = "Hookgate-Dlq-Reason"
	// HeaderDLQAttempts is how many attempts were made.
	HeaderDLQAttempts = "Hookgate-Dlq-Attempts"
	// HeaderDLQLastStatus is the HTTP status of the last attempt, "0" when
	// it got no response.
	HeaderDLQLastStatus = "Hookgate-Dlq-Last-Status"
	// HeaderDLQLastError describes the last failure.
	HeaderDLQLastError = "Hookgate-Dlq-Last-Error"
	// HeaderDLQFailedAt is when the event was dead-lettered, RFC 3339, UTC.
	HeaderDLQFailedAt = "Hookgate-Dlq-Failed-At"
	// HeaderDLQStreamSeq is the event's sequence in WEBHOOKS, for replay.
	HeaderDLQStreamSeq = "Hookgate-Dlq-Stream-Seq"
)
