// Command eventlog measures the event log at scale: a real Caddy with the
// webhooks app, loaded in this process from a Caddyfile, is filled with
// -events stored events (2 KiB bodies, four sources of ten types each; a
// quarter are delivered to a destination, a fortieth dead-lettered by
// another), then the program times the admin API's list pages (first page,
// source + type, status=failed, q, a deep cursor) and measures HTTP ingest
// throughput on an empty store, on the full store, and on the full store
// while a dashboard polls the list.
//
//	go run ./bench/eventlog -events 1000000
//
// The fill takes minutes; keep -dir to reuse a filled store. Client and
// server share this machine's cores: the figures compare, they do not
// promise capacity.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookgate/hookgate/bench/internal/inproc"
	_ "github.com/hookgate/hookgate/caddymodule"
	"github.com/hookgate/hookgate/event"
	"github.com/hookgate/hookgate/internal/testgw"
)

var (
	events   = flag.Int("events", 1_000_000, "events to store")
	bodySize = flag.Int("body", 2048, "body size in bytes")
	dirFlag  = flag.String("dir", "", "store directory to fill or reuse (default: a temporary one)")
	ingestD  = flag.Duration("ingest", 10*time.Second, "how long each ingest run sends")
	conns    = flag.Int("conns", 32, "concurrent ingest clients")
	repeat   = flag.Int("repeat", 20, "requests per list measurement")
	rounds   = flag.Int("rounds", 3, "ingest rounds (empty store, full store, full store polled)")
	syncMode = flag.String("sync", "always", "sync mode of the ingest runs")
)

var sources = []string{"stripe", "github", "shopify", "demo"}

func main() {
	flag.Parse()
	dir := *dirFlag
	if dir == "" {
		d, err := os.MkdirTemp("", "hookgate-eventlog")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(d)
		dir = d
	}
	okSink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer okSink.Close()
	badSink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		http.Error(w, `{"error":"unknown customer"}`, http.StatusBadRequest)
	}))
	defer badSink.Close()
	g := gateway{dir: dir, ok: okSink.URL, bad: badSink.URL}

	store := filepath.Join(dir, "log")
	g.start("1s", store)
	g.fill(*events)
	g.stop()

	g.start("always", store)
	fmt.Printf("\nlist latency with %d events stored (%d requests each)\n", g.stored(), *repeat)
	fmt.Printf("%-44s %9s %9s %9s %7s\n", "query", "p50", "p95", "max", "events")
	for _, q := range []string{
		"limit=50",
		"limit=50&source=stripe&type=type3",
		"limit=50&status=failed",
		"limit=50&status=failed&destination=bad",
		"limit=50&destination=ok&status=delivered",
		"limit=50&since=1h&source=github",
		"limit=50&cursor=" + strconv.Itoa(*events/2),
		"q=stripe:" + strconv.Itoa(*events/3/4*4),
		"q=" + strconv.Itoa(*events/3/4*4),
	} {
		g.timeList(q)
	}
	g.stop()

	// Ingest runs alternate between an empty store and the full one, so
	// that the machine's other load falls on both alike; medians are
	// printed.
	var empty, full, polled []float64
	fresh := filepath.Join(dir, "fresh")
	for round := range *rounds {
		g.start(*syncMode, fresh)
		g.warmUp()
		empty = append(empty, g.ingest(false))
		g.stop()
		_ = os.RemoveAll(fresh)
		g.start(*syncMode, store)
		g.warmUp()
		full = append(full, g.ingest(false))
		polled = append(polled, g.ingest(true))
		g.stop()
		fmt.Printf("  round %d: empty %.0f, full %.0f, full and polled %.0f req/s\n", round+1, empty[round], full[round], polled[round])
	}
	e, f, p := median(empty), median(full), median(polled)
	fmt.Printf("\ningest, sync %s, %d clients, %s per run, median of %d rounds, 2 KiB bodies\n", *syncMode, *conns, *ingestD, *rounds)
	fmt.Printf("%-44s %10s\n", "store", "req/s")
	fmt.Printf("%-44s %10.0f\n", "empty store", e)
	fmt.Printf("%-44s %10.0f (%+.1f%%)\n", "event log full", f, 100*(f-e)/e)
	fmt.Printf("%-44s %10.0f (%+.1f%%)\n", "event log full, dashboard polling 4/s", p, 100*(p-e)/e)
}

// warmUp sends for a third of -ingest, uncounted: a store just opened
// (above all a large one) does start-up work that is not the steady state.
func (g *gateway) warmUp() {
	d := *ingestD
	*ingestD = d / 3
	g.ingest(false)
	*ingestD = d
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

type gateway struct {
	dir, ok, bad string
	site, admin  string
	natsAddr     string
}

func (g *gateway) start(sync, store string) {
	g.site, g.admin, g.natsAddr = testgw.MustFreeAddr(), testgw.MustFreeAddr(), testgw.MustFreeAddr()
	cfg := fmt.Sprintf(`{
	admin %[4]s
	persist_config off
	auto_https off
	storage file_system %[1]s/caddy
	log {
		level ERROR
	}
	webhooks {
		store %[2]s
		sync %[3]s
		listen %[5]s
		user bench
		password bench
		dedup_window 1m
		max_store 20GiB
		destination ok {
			url %[6]s
			subjects webhooks.v1.stripe.>
		}
		destination bad {
			url %[7]s
			subjects webhooks.v1.github.type0
		}
	}
}

http://%[8]s {
	webhook_ingest /webhooks/* {
%[9]s
	}
}
`, g.dir, store, sync, g.admin, g.natsAddr, g.ok, g.bad, g.site, sourceBlocks())
	inproc.Load(cfg)
	// Wait until the store answers.
	for i := 0; ; i++ {
		if resp, err := http.Get("http://" + g.admin + "/webhooks/status"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if bytes.Contains(b, []byte(`"up":true`)) {
				return
			}
		}
		if i > 300 {
			log.Fatal("the gateway did not start")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sourceBlocks declares the bench's sources, unsigned, with the id and
// type taken from headers.
func sourceBlocks() string {
	var b bytes.Buffer
	for _, src := range sources {
		fmt.Fprintf(&b, "\t\tsource %s {\n\t\t\tverify none\n\t\t\tid_header X-Id\n\t\t\ttype_header X-Type\n\t\t}\n", src)
	}
	return b.String()
}

func (g *gateway) stop() {
	if err := caddy.Stop(); err != nil {
		log.Fatal(err)
	}
}

func (g *gateway) js() (*nats.Conn, jetstream.JetStream) {
	nc, err := nats.Connect("nats://"+g.natsAddr, nats.UserInfo("bench", "bench"))
	if err != nil {
		log.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	return nc, js
}

func (g *gateway) stored() uint64 {
	nc, js := g.js()
	defer nc.Close()
	s, err := js.Stream(context.Background(), event.StreamName)
	if err != nil {
		log.Fatal(err)
	}
	return s.CachedInfo().State.Msgs
}

// fill posts events through the ingest path until the store holds n,
// then waits for the destinations to settle them.
func (g *gateway) fill(n int) {
	have := int(g.stored())
	if have >= n {
		fmt.Printf("store already holds %d events\n", have)
		return
	}
	body := bytes.Repeat([]byte("x"), *bodySize)
	copy(body, `{"object":"event","data":"`)
	body[len(body)-2], body[len(body)-1] = '"', '}'
	start := time.Now()
	var next atomic.Int64
	next.Store(int64(have))
	tr := &http.Transport{MaxIdleConnsPerHost: *conns}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var wg sync.WaitGroup
	for range *conns {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				src := sources[i%len(sources)]
				req, _ := http.NewRequest(http.MethodPost, "http://"+g.site+"/webhooks/v1/"+src, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-Id", strconv.Itoa(i))
				req.Header.Set("X-Type", "type"+strconv.Itoa((i/len(sources))%10))
				resp, err := client.Do(req)
				if err != nil {
					log.Fatalf("post %d: %v", i, err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					log.Fatalf("post %d: %d", i, resp.StatusCode)
				}
				if i > have && i%100_000 == 0 {
					fmt.Printf("  filled %d events (%.0f/s)\n", i, float64(i-have)/time.Since(start).Seconds())
				}
			}
		})
	}
	wg.Wait()
	tr.CloseIdleConnections()
	fmt.Printf("filled %d events in %s\n", n-have, time.Since(start).Round(time.Second))
	nc, js := g.js()
	defer nc.Close()
	for _, c := range []string{"fwd-ok", "fwd-bad"} {
		for {
			cons, err := js.Consumer(context.Background(), event.StreamName, c)
			if err != nil {
				log.Fatal(err)
			}
			info := cons.CachedInfo()
			if info.NumPending == 0 && info.NumAckPending == 0 {
				break
			}
			time.Sleep(2 * time.Second)
		}
	}
	fmt.Printf("destinations settled after %s\n", time.Since(start).Round(time.Second))
}

// timeList requests the list repeat times and prints latency percentiles.
func (g *gateway) timeList(q string) {
	var lat []time.Duration
	n := 0
	for range *repeat {
		start := time.Now()
		resp, err := http.Get("http://" + g.admin + "/webhooks/events?" + q)
		if err != nil {
			log.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		lat = append(lat, time.Since(start))
		if resp.StatusCode != http.StatusOK {
			log.Fatalf("%s: %d %s", q, resp.StatusCode, b)
		}
		n = bytes.Count(b, []byte(`"stream_seq"`))
	}
	slices.Sort(lat)
	p := func(f float64) time.Duration { return lat[int(f*float64(len(lat)-1))].Round(10 * time.Microsecond) }
	fmt.Printf("%-44s %9s %9s %9s %7d\n", q, p(0.5), p(0.95), lat[len(lat)-1].Round(10*time.Microsecond), n)
}

// ingest posts events for -ingest with -conns clients and returns the
// accepted requests per second; poll adds a dashboard asking for the
// first page four times a second.
func (g *gateway) ingest(poll bool) float64 {
	var ok atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	body := bytes.Repeat([]byte("y"), *bodySize)
	tr := &http.Transport{MaxIdleConnsPerHost: *conns}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	for c := range *conns {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest(http.MethodPost, "http://"+g.site+"/webhooks/v1/demo", bytes.NewReader(body))
				req.Header.Set("X-Id", fmt.Sprintf("%d-%d-%d", time.Now().UnixNano(), c, i))
				req.Header.Set("X-Type", "ingest")
				resp, err := client.Do(req)
				if err != nil {
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					ok.Add(1)
				}
			}
		})
	}
	if poll {
		wg.Go(func() {
			t := time.NewTicker(250 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
				}
				if resp, err := http.Get("http://" + g.admin + "/webhooks/events?limit=50"); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		})
	}
	start := time.Now()
	time.Sleep(*ingestD)
	close(stop)
	wg.Wait()
	tr.CloseIdleConnections()
	return float64(ok.Load()) / time.Since(start).Seconds()
}
