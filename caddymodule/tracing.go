package caddymodule

import (
	"net/http"
	"reflect"
	"sync/atomic"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	oteltrace "go.opentelemetry.io/otel/trace"

	"github.com/hookgate/hookgate/event"
	"github.com/hookgate/hookgate/forwarder"
)

// tracerName names the gateway's spans' instrumentation scope.
const tracerName = "github.com/hookgate/hookgate"

// traced reports whether r is to be traced: Caddy's tracing handler started
// a span for it, or it came with a W3C traceparent header. Neither costs an
// allocation, so untraced requests pay nothing more.
func traced(r *http.Request) bool {
	return len(r.Header["Traceparent"]) > 0 || oteltrace.SpanContextFromContext(r.Context()).IsValid()
}

// startSpan starts the handler's span of a traced request, the child of
// Caddy's span or of the request's traceparent, and gives q the request
// with the span in its context. The span ends with ServeHTTP: it covers
// the checks, the verification and the store.
func startSpan(q *request) oteltrace.Span {
	ctx := q.r.Context()
	tp := otel.GetTracerProvider()
	if parent := oteltrace.SpanFromContext(ctx); parent.SpanContext().IsValid() {
		// Caddy's tracing handler: its provider, not the global one.
		tp = parent.TracerProvider()
		rememberProvider(tp, parent)
	} else {
		ctx = propagation.TraceContext{}.Extract(ctx, propagation.HeaderCarrier(q.r.Header))
	}
	ctx, span := tp.Tracer(tracerName).Start(ctx, "webhook_ingest", oteltrace.WithSpanKind(oteltrace.SpanKindServer))
	if q.src != nil {
		span.SetAttributes(attribute.String("hookgate.source", q.src.name), attribute.String("hookgate.version", q.version))
	}
	q.r = q.r.WithContext(ctx)
	return span
}

// endSpan ends the handler's span with the answer's outcome (as
// countRequest recorded it).
func endSpan(q *request) {
	q.span.SetAttributes(attribute.String("hookgate.outcome", q.outcome))
	switch q.outcome {
	case outcomeAccepted, outcomeDuplicate, outcomeHandshake:
	default:
		q.span.SetStatus(codes.Error, q.outcome)
	}
	q.span.End()
}

// tagTrace stores the trace context of the handler's span with the
// event, for the forwarder to continue, and names the event on the span.
func tagTrace(span oteltrace.Span, msg *nats.Msg, id string) {
	sc := span.SpanContext()
	if !sc.IsValid() {
		return
	}
	span.SetAttributes(attribute.String("hookgate.event_id", id))
	msg.Header.Set(event.HeaderTraceparent, forwarder.Traceparent(sc))
}

// tracerProviders holds the tracer provider of Caddy's tracing handler
// once a traced request has shown it, for the forwarders' spans: Caddy
// does not make its provider the global one.
var tracerProviders atomic.Pointer[providerBox]

type providerBox struct{ tp oteltrace.TracerProvider }

// rememberProvider keeps tp when span records (an SDK provider, not a
// no-op one).
func rememberProvider(tp oteltrace.TracerProvider, span oteltrace.Span) {
	if !span.IsRecording() {
		return
	}
	if b := tracerProviders.Load(); b == nil || !sameProvider(b.tp, tp) {
		tracerProviders.Store(&providerBox{tp})
	}
}

// sameProvider reports whether a and b are the same provider, without
// the panic of comparing values of a type that is not comparable.
func sameProvider(a, b oteltrace.TracerProvider) bool {
	ta := reflect.TypeOf(a)
	return ta == reflect.TypeOf(b) && ta.Comparable() && a == b
}

// TracerProvider is the provider of the delivery spans: Caddy's tracing
// handler's once a traced request has shown it, else OpenTelemetry's
// global provider.
func (o *destinationObserver) TracerProvider() oteltrace.TracerProvider {
	if b := tracerProviders.Load(); b != nil {
		return b.tp
	}
	return otel.GetTracerProvider()
}

// Interface guard: the forwarders take their tracer from the observer.
var _ forwarder.TracerSource = (*destinationObserver)(nil)
