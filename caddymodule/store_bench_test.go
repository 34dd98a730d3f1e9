package caddymodule

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookgate/hookgate/event"
)

// startStore starts a webhooks app on a temporary store like startApp,
// with perEvent choosing nats-server's own per-event SyncAlways over
// group commit, and maxStore the stream's size (0: the default).
func startStore(tb testing.TB, sync string, perEvent bool, maxStore int64) *engine {
	tb.Helper()
	a := provisionApp(tb, &App{Store: tb.TempDir(), Listen: "off", Sync: sync, MaxStore: maxStore})
	a.ecfg.PerEventSync = perEvent
	if err := a.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = a.Stop() })
	return a.engine
}

// provisionApp provisions a as Caddy would, with a silent logger.
func provisionApp(tb testing.TB, a *App) *App {
	tb.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	tb.Cleanup(cancel)
	if err := a.Provision(ctx); err != nil {
		tb.Fatal(err)
	}
	a.logger = zapNop()
	return a
}

// BenchmarkStore is the store alone: 2 KiB events published through the
// engine (the handler's seam, with group commit where on) by c concurrent
// publishers, no HTTP. "group" is sync always with group commit, the
// default; "per-event" is nats-server's SyncAlways, one fsync per event,
// as before; "lazy" is sync 1s. events/fsync is how many requests one
// sync round answered on average; cpu-ns/op the process's CPU time per
// event, nats-server's included.
func BenchmarkStore(b *testing.B) {
	modes := []struct {
		name     string
		sync     string
		perEvent bool
	}{{"group", "always", false}, {"per-event", "always", true}, {"lazy", "1s", false}}
	body := bytes.Repeat([]byte("x"), 2048)
	for _, m := range modes {
		for _, c := range []int{1, 16, 64, 256} {
			b.Run(fmt.Sprintf("%s/conc=%d", m.name, c), func(b *testing.B) {
				e := startStore(b, m.sync, m.perEvent, 0)
				var rounds atomic.Int64
				e.commit.observer.Store(&commitObserver{SyncStarted: func(int) { rounds.Add(1) }})
				b.ReportAllocs()
				cpu := startCPU()
				b.ResetTimer()
				publishConcurrently(b, e, c, body)
				b.StopTimer()
				cpu.report(b)
				if r := rounds.Load(); r > 0 {
					b.ReportMetric(float64(b.N)/float64(r), "events/fsync")
				}
			})
		}
	}
}

// publishConcurrently publishes b.N events from c goroutines.
func publishConcurrently(b *testing.B, e *engine, c int, body []byte) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				msg := &nats.Msg{
					Subject: event.SubjectRoot + ".v1.bench.test",
					Header:  nats.Header{jetstream.MsgIDHeader: []string{"bench:" + strconv.FormatInt(i, 10)}},
					Data:    body,
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, err := e.publish(ctx, msg)
				cancel()
				if err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
