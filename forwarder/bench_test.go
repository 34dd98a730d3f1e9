package forwarder

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/valyala/fasthttp"

	"github.com/hookgate/hookgate/event"
)

// BenchmarkDeliver measures deliveries per second to a loopback sink that
// answers 204 at once, with delivery state on and the server fsyncing
// every stored message (SyncAlways, the gateway's default). Each iteration
// delivers a backlog of HOOKGATE_BENCH_EVENTS events (default 20000)
// published beforehand, outside the timer.
//
//	go test -run '^$' -bench Deliver -benchtime 1x ./forwarder/
func BenchmarkDeliver(b *testing.B) {
	n := 20000
	if v, err := strconv.Atoi(os.Getenv("HOOKGATE_BENCH_EVENTS")); err == nil && v > 0 {
		n = v
	}
	for _, c := range []struct {
		conc            int
		routing, shared bool
	}{{1, false, false}, {8, false, false}, {32, false, false}, {8, true, false}, {32, true, false},
		// MaxAckPending = Concurrency, as on a cluster (Config.Shared).
		{8, false, true}, {32, false, true}} {
		conc := c.conc
		name := fmt.Sprintf("concurrency=%d", conc)
		if c.routing {
			name += ",filter+transform"
		}
		if c.shared {
			name += ",shared"
		}
		b.Run(name, func(b *testing.B) {
			var got atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got.Add(1)
				w.WriteHeader(http.StatusNoContent)
			}))
			defer srv.Close()
			var total time.Duration
			var cpu int64
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				e := newEnvOpts(b, true)
				prefill(b, e.js, n, i)
				got.Store(0)
				cfg := fast("bench", srv.URL)
				cfg.Concurrency = conc
				cfg.Shared = c.shared
				if c.routing {
					// Both pass every event, so the figures compare.
					cfg.Filters = []string{benchFilter}
					cfg.Transform = benchTransform
				}
				f, err := New(e.js, cfg, e.log)
				if err != nil {
					b.Fatal(err)
				}
				stopProfile := profile(b)
				b.StartTimer()
				start, cpuStart := time.Now(), cpuTime()
				if err := f.Start(context.Background()); err != nil {
					b.Fatal(err)
				}
				last, lastAt := int64(0), time.Now()
				for got.Load() < int64(n) {
					time.Sleep(time.Millisecond)
					if g := got.Load(); g != last {
						last, lastAt = g, time.Now()
					} else if time.Since(lastAt) > 3*time.Second && os.Getenv("HOOKGATE_BENCH_DEBUG") != "" {
						c, _ := e.js.Consumer(context.Background(), event.StreamName, ConsumerName("bench"))
						info, _ := c.Info(context.Background())
						b.Logf("stalled at %d: ackpending %d pending %d waiting %d redelivered %d", g, info.NumAckPending, info.NumPending, info.NumWaiting, info.NumRedelivered)
						fd, _ := os.Create("/tmp/stall.txt")
						pprof.Lookup("goroutine").WriteTo(fd, 2)
						fd.Close()
						lastAt = time.Now()
					}
				}
				total += time.Since(start)
				cpu += cpuTime() - cpuStart
				b.StopTimer()
				stopProfile()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_ = f.Stop(ctx)
				cancel()
				waitAcked(b, e.js, n)
			}
			rate := float64(n*b.N) / total.Seconds()
			b.ReportMetric(rate, "deliveries/s")
			// CPU per delivery (sink, forwarder and server together): on a
			// shared machine it varies less than the rate.
			b.ReportMetric(float64(cpu)/float64(n*b.N)/1e3, "cpu-µs/delivery")
			b.ReportMetric(0, "ns/op")
			b.Logf("concurrency %d: %d deliveries in %v: %.0f deliveries/s", conc, n*b.N, total.Round(time.Millisecond), rate)
		})
	}
}

// The filter and transformation of the routing benchmarks: typical of a
// destination that takes one provider's paid invoices and wants them flat.
const (
	benchFilter    = `body.data.object.amount >= 1000 && type.startsWith("invoice.")`
	benchTransform = `{"id": event_id, "type": type, "amount": body.data.object.amount / 100.0, "currency": body.data.object.currency.upperAscii()}`
)

// profile writes a CPU profile of the timed part to
// $HOOKGATE_BENCH_PROFILE, when set.
func profile(b *testing.B) func() {
	path := os.Getenv("HOOKGATE_BENCH_PROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}

// prefill publishes n events asynchronously and waits for every PubAck.
func prefill(b *testing.B, js jetstream.JetStream, n, round int) {
	body := []byte(`{"id":"evt","type":"invoice.paid","data":{"object":{"amount":1000,"currency":"eur"}}}`)
	now := time.Now().UTC().Format(time.RFC3339Nano)
	for i := 0; i < n; i++ {
		m := nats.NewMsg("webhooks.v1.stripe.invoice.paid")
		m.Data = body
		id := fmt.Sprintf("stripe:evt_%d_%d", round, i)
		m.Header.Set(event.HeaderID, id)
		m.Header.Set(event.HeaderSource, "stripe")
		m.Header.Set(event.HeaderVersion, "v1")
		m.Header.Set(event.HeaderType, "invoice.paid")
		m.Header.Set(event.HeaderContentType, "application/json")
		m.Header.Set(event.HeaderReceivedAt, now)
		if _, err := js.PublishMsgAsync(m, jetstream.WithMsgID(id)); err != nil {
			b.Fatal(err)
		}
		if i%1000 == 999 || i == n-1 {
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(time.Minute):
				b.Fatal("prefill timed out")
			}
		}
	}
}

// waitAcked waits until the consumer has no pending acks, so the run's
// acks really reached the server.
func waitAcked(b *testing.B, js jetstream.JetStream, n int) {
	c, err := js.Consumer(context.Background(), event.StreamName, ConsumerName("bench"))
	if err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		info, err := c.Info(context.Background())
		if err == nil && info.AckFloor.Stream >= uint64(n) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Fatalf("acks did not reach %d", n)
}

// BenchmarkHTTPClients compares the forwarder's two HTTP clients, as New
// configures them, POSTing small events from 32 workers to a loopback
// net/http sink: the figures behind choosing fasthttp for bodies up to
// largeBody (README, Throughput).
//
//	go test -run '^$' -bench HTTPClients -benchtime 60000x ./forwarder/
func BenchmarkHTTPClients(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	cfg := fast("bench", srv.URL+"/hooks").withDefaults()
	cfg.Concurrency = 32
	body := []byte(`{"id":"evt","type":"invoice.paid","data":{"object":{"amount":1000,"currency":"eur"}}}`)
	fastClient, uri, err := newClient(cfg, newConnSet())
	if err != nil {
		b.Fatal(err)
	}
	stdClient := newLargeClient(cfg)
	post := map[string]func() (int, error){
		"fasthttp": func() (int, error) {
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.SetURI(uri)
			req.Header.SetMethod(http.MethodPost)
			req.Header.SetContentType("application/json")
			req.SetBodyRaw(body)
			err := fastClient.DoTimeout(req, resp, cfg.Timeout)
			return resp.StatusCode(), err
		},
		"net-http": func() (int, error) {
			req, err := http.NewRequest(http.MethodPost, cfg.URL, bytes.NewReader(body))
			if err != nil {
				return 0, err
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := stdClient.Do(req)
			if err != nil {
				return 0, err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode, nil
		},
	}
	for _, name := range []string{"net-http", "fasthttp"} {
		b.Run(name, func(b *testing.B) {
			var next atomic.Int64
			var wg sync.WaitGroup
			start := time.Now()
			for range cfg.Concurrency {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						if status, err := post[name](); err != nil || status != http.StatusNoContent {
							b.Errorf("POST: %d %v", status, err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
		})
	}
}

// BenchmarkRouting measures the cost per event of a filter and of a
// transformation over a 2 KiB Stripe event, the JSON parse of the body
// included (it is done once per event and destination, shared by the
// filter and the transformation); "metadata" filters read no body.
//
//	go test -run '^$' -bench Routing -benchmem ./forwarder/
func BenchmarkRouting(b *testing.B) {
	ev := routingSample(b)
	b.Logf("body %d bytes", len(ev.Body))
	const (
		typicalFilter    = `body.data.object.livemode && type.startsWith("invoice.")`
		typicalTransform = `{"id": body.id, "type": type, "customer": body.data.object.customer,
			"amount": body.data.object.amount_paid / 100.0, "currency": body.data.object.currency.upperAscii()}`
	)
	for _, c := range []struct{ name, filter, transform string }{
		{name: "filter/metadata", filter: `type.startsWith("invoice.") && source == "stripe"`},
		{name: "filter/typical", filter: typicalFilter},
		{name: "filter/array", filter: `body.data.object.lines.data.exists(l, l.amount > 100000)`},
		{name: "transform/typical", transform: typicalTransform},
		{name: "transform/envelope", transform: `{"source": source, "event_id": event_id, "data": body}`},
		{name: "filter+transform", filter: typicalFilter, transform: typicalTransform},
	} {
		b.Run(c.name, func(b *testing.B) {
			cfg := &Config{Transform: c.transform}
			if c.filter != "" {
				cfg.Filters = []string{c.filter}
			}
			rt, err := compileRouting(cfg)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			cpu := cpuTime()
			for b.Loop() {
				act := vars(ev)
				ok, err := rt.filters.match(act)
				if !ok || err != nil {
					b.Fatalf("filtered: %v", err)
				}
				out := outgoing{body: ev.Body}
				if err := rt.apply(act, &out); err != nil {
					b.Fatal(err)
				}
				act.release()
			}
			// The machine is shared: CPU time per event says more than
			// wall time per event.
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}

// BenchmarkEventExpr is the cost per event of a source's typical
// subject_suffix at ingest over the same 2 KiB event, the parse included.
//
//	go test -run '^$' -bench EventExpr -benchmem ./forwarder/
func BenchmarkEventExpr(b *testing.B) {
	ev := routingSample(b)
	e, err := CompileEventExpr("subject_suffix", `[body.data.object.currency, body.livemode ? "live" : "test"]`)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpu := cpuTime()
	for b.Loop() {
		if toks, err := e.StringsAtMost(ev, -1); err != nil || len(toks) != 2 {
			b.Fatalf("%v %v", toks, err)
		}
	}
	b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
}

// routingSample is the Stripe sample padded to 2 KiB with metadata, as
// real invoices carry.
func routingSample(b *testing.B) *event.Event {
	ev := sample(b, "stripe", "invoice.paid", "stripe_invoice_paid.json", http.Header{"Stripe-Signature": {"t=1,v1=abc"}})
	ev.Body = bytes.Replace(ev.Body, []byte(`"metadata": {"order_id": "6735"}`),
		[]byte(`"metadata": {"order_id": "6735", "note": "`+strings.Repeat("x", 2048-len(ev.Body)-12)+`"}`), 1)
	return ev
}

// cpuTime returns the CPU time (user and system) the process has used, in
// nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
