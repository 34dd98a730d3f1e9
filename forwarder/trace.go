package forwarder

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/hookgate/hookgate/event"
)

// TracerSource is an Observer that also names the OpenTelemetry tracer
// provider of the delivery spans. Without one, the global provider is used.
type TracerSource interface {
	TracerProvider() trace.TracerProvider
}

// tracerName names the forwarder's spans' instrumentation scope.
const tracerName = "github.com/hookgate/hookgate/forwarder"

// Traceparent renders sc as a W3C traceparent value:
// "00-<trace id>-<span id>-<flags>" (W3C Trace Context, section 3.2).
func Traceparent(sc trace.SpanContext) string {
	return "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-" + sc.TraceFlags().String()
}

// tracedAttempt makes one attempt. When the event was stored with a trace
// context (event.HeaderTraceparent), the attempt is a client span, child
// of the gateway's span, and the destination receives its traceparent; an
// untraced event costs one header lookup.
func (r *run) tracedAttempt(d *delivery) result {
	parent := d.msg.Headers().Get(event.HeaderTraceparent)
	if parent == "" {
		return r.attemptOnce(d)
	}
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.HeaderCarrier{"Traceparent": {parent}})
	_, span := r.tracer().Start(ctx, "deliver "+r.cfg.Name, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String("hookgate.destination", r.cfg.Name),
			attribute.String("hookgate.event_id", d.ev.ID),
			attribute.Int("hookgate.attempt", d.attempt)))
	d.traceparent = Traceparent(span.SpanContext())
	res := r.attemptOnce(d)
	d.traceparent = ""
	span.SetAttributes(attribute.Int("http.response.status_code", res.status), attribute.String("hookgate.outcome", res.outcome.String()))
	if res.outcome != delivered {
		span.SetStatus(codes.Error, res.err)
	}
	span.End()
	return res
}

// tracer is the tracer of the delivery spans.
func (r *run) tracer() trace.Tracer {
	if ts, ok := r.obs.(TracerSource); ok {
		return ts.TracerProvider().Tracer(tracerName)
	}
	return otel.GetTracerProvider().Tracer(tracerName)
}
