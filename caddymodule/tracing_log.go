package caddymodule

import (
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/hookgate/hookgate/event"
)

// logStored writes the debug line of a stored event: event_id, source,
// version, type, whether the store already held it, and latency (arrival to
// acknowledgement). Checked first, so that with debug off it costs nothing.
// Never a header value, a signature or the body.
func (h *Handler) logStored(q *request, id string, msg *nats.Msg, duplicate bool) {
	ce := h.logger.Check(zapcore.DebugLevel, "webhook stored")
	if ce == nil {
		return
	}
	ce.Write(zap.String("event_id", id), zap.String("source", q.src.name), zap.String("version", q.version),
		zap.String("type", msg.Header.Get(event.HeaderType)), zap.Bool("duplicate", duplicate),
		zap.Duration("latency", time.Since(q.now)))
}
