package caddymodule

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	oteltrace "go.opentelemetry.io/otel/trace"
)

// TestTracing: a request arriving with a W3C traceparent gets the
// handler's span (covering verify and store) as a child of the caller's,
// the delivery attempt's span is its child in the same trace, and the
// destination receives the attempt span's traceparent. A request without
// one adds no span and the destination gets no traceparent.
func TestTracing(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	tracerProviders.Store(nil) // no Caddy provider from another test
	t.Cleanup(func() { otel.SetTracerProvider(prev); _ = tp.Shutdown(t.Context()) })

	sk := newSink(t, always(http.StatusOK))
	g := startGateway(t, gatewayConfig{Destinations: destination("traced-sink", sk.srv.URL, "")})
	const traceID, callerSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	hdr := map[string]string{"X-Id": "trace-1", "Traceparent": "00-" + traceID + "-" + callerSpan + "-01"}
	if st, _, b := g.post("/webhooks/v1/demo", []byte(`{}`), hdr); st != http.StatusOK {
		t.Fatalf("traced POST: %d %s", st, b)
	}
	if st, _, b := g.post("/webhooks/v1/demo", []byte(`{}`), map[string]string{"X-Id": "trace-2"}); st != http.StatusOK {
		t.Fatalf("untraced POST: %d %s", st, b)
	}
	waitFor(t, 10*time.Second, "two deliveries and two spans", func() bool {
		return sk.calls.Load() == 2 && len(exp.GetSpans()) == 2
	})
	time.Sleep(100 * time.Millisecond) // a third span would show by now
	spans := exp.GetSpans()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want the handler's and the delivery's: %v", len(spans), spans)
	}
	byName := map[string]tracetest.SpanStub{}
	for _, s := range spans {
		byName[s.Name] = s
	}
	ingest, deliver := byName["webhook_ingest"], byName["deliver traced-sink"]
	if ingest.SpanContext.TraceID().String() != traceID || ingest.Parent.SpanID().String() != callerSpan || ingest.SpanKind != oteltrace.SpanKindServer {
		t.Errorf("handler span %s: trace %s parent %s kind %v", ingest.Name, ingest.SpanContext.TraceID(), ingest.Parent.SpanID(), ingest.SpanKind)
	}
	if deliver.SpanContext.TraceID().String() != traceID || deliver.Parent.SpanID() != ingest.SpanContext.SpanID() || deliver.SpanKind != oteltrace.SpanKindClient {
		t.Errorf("delivery span %s: trace %s parent %s (handler span %s) kind %v", deliver.Name, deliver.SpanContext.TraceID(), deliver.Parent.SpanID(), ingest.SpanContext.SpanID(), deliver.SpanKind)
	}
	_, hdrs := sk.received()
	for _, h := range hdrs {
		got := h.Get("Traceparent")
		switch h.Get("Webhook-Id") {
		case "demo:trace-1":
			if want := "00-" + traceID + "-" + deliver.SpanContext.SpanID().String() + "-01"; got != want {
				t.Errorf("traced delivery: traceparent %q, want %q", got, want)
			}
		case "demo:trace-2":
			if got != "" {
				t.Errorf("untraced delivery: traceparent %q", got)
			}
		}
	}
}

// TestUntracedAddsNoAllocation: what issue 14 put on the request path of
// an untraced request, the tracing check and the request metrics (counter
// and duration histogram), allocates nothing: for a refused request
// (countRequest) and for a stored one (the source's countStored).
func TestUntracedAddsNoAllocation(t *testing.T) {
	r := withClientIP(httptest.NewRequest(http.MethodPost, "/webhooks/v1/demo", nil), "192.0.2.1")
	r.Header.Set("X-Id", "1")
	q := &request{r: r, now: time.Now(), version: "v1"}
	src := &source{name: "alloc-src"}
	countRequest(q, "alloc-src", "v1", "bad-request") // the series exist from then on
	src.countStored(q, false)
	if n := testing.AllocsPerRun(1000, func() {
		if traced(r) {
			t.Fatal("a request without traceparent or span is traced")
		}
		countRequest(q, "alloc-src", "v1", "bad-request")
		src.countStored(q, false)
	}); n != 0 {
		t.Errorf("%v allocations per untraced request", n)
	}
}

// TestTracingCaddyDirective: behind Caddy's own tracing handler the
// handler's span is a child of Caddy's, and the forwarders use Caddy's
// tracer provider: the destination receives a traceparent of the caller's
// trace with a span id of neither the caller nor Caddy's exporter-less
// default.
func TestTracingCaddyDirective(t *testing.T) {
	t.Setenv("OTEL_TRACES_EXPORTER", "none")
	tracerProviders.Store(nil)
	t.Cleanup(func() { tracerProviders.Store(nil) })
	sk := newSink(t, always(http.StatusOK))
	cfg := gatewayConfig{Store: t.TempDir(), Addr: freeAddr(t), Sources: demoSources,
		Destinations: destination("caddy-traced", sk.srv.URL, "")}
	text := strings.Replace(cfg.caddyfile(), "\twebhook_ingest /webhooks/* {", "\ttracing {\n\t\tspan webhook\n\t}\n\twebhook_ingest /webhooks/* {", 1)
	if err := loadCaddyfile(text); err != nil {
		t.Fatalf("load: %v", err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
	g := &gateway{t: t, addr: cfg.Addr, cfg: cfg}
	const traceID, callerSpan = "5bf92f3577b34da6a3ce929d0e0e4737", "10f067aa0ba902b8"
	if st, _, b := g.post("/webhooks/v1/demo", []byte(`{}`), map[string]string{"X-Id": "ct-1", "Traceparent": "00-" + traceID + "-" + callerSpan + "-01"}); st != http.StatusOK {
		t.Fatalf("POST: %d %s", st, b)
	}
	waitFor(t, 10*time.Second, "the delivery", func() bool { return sk.calls.Load() == 1 })
	if tracerProviders.Load() == nil {
		t.Error("the forwarders were not given Caddy's tracer provider")
	}
	_, hdrs := sk.received()
	got := strings.Split(hdrs[0].Get("Traceparent"), "-")
	if len(got) != 4 || got[1] != traceID || got[2] == callerSpan {
		t.Errorf("the destination's traceparent %q does not continue trace %s in a new span", hdrs[0].Get("Traceparent"), traceID)
	}
}
