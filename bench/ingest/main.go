// Command ingest measures the gateway's request path over HTTP: a real Caddy
// with the webhooks app, loaded in this process from a Caddyfile, receives
// signed (github scheme) POSTs from N concurrent loopback clients for a fixed
// time, and the program prints requests per second and latency percentiles
// for each sync mode and concurrency.
//
//	go run ./bench/ingest -duration 10s -conns 16,64 -sync always,1s
//
// Client and server share this machine's cores; the figures are for
// comparing changes, not absolute capacity.
package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	"github.com/hookgate/hookgate/bench/internal/inproc"
	_ "github.com/hookgate/hookgate/caddymodule"
	"github.com/hookgate/hookgate/internal/testgw"
)

const secret = "bench-secret"

func main() {
	duration := flag.Duration("duration", 10*time.Second, "how long each run sends")
	connsFlag := flag.String("conns", "1,16,64", "concurrent clients, comma-separated")
	syncFlag := flag.String("sync", "always,1s", "sync modes, comma-separated")
	bodySize := flag.Int("body", 2048, "body size in bytes")
	flag.Parse()

	fmt.Printf("%-8s %6s %10s %9s %9s %9s %7s\n", "sync", "conns", "req/s", "p50", "p99", "max", "non2xx")
	for _, mode := range strings.Split(*syncFlag, ",") {
		for _, c := range strings.Split(*connsFlag, ",") {
			n, err := strconv.Atoi(c)
			if err != nil || n < 1 {
				log.Fatalf("-conns %q", c)
			}
			r := run(mode, n, *duration, *bodySize)
			fmt.Printf("%-8s %6d %10.0f %9s %9s %9s %7d\n", mode, n, r.rps, r.p50, r.p99, r.max, r.failed)
		}
	}
}

type result struct {
	rps           float64
	p50, p99, max time.Duration
	failed        int64
}

func run(syncMode string, conns int, d time.Duration, bodySize int) result {
	dir, err := os.MkdirTemp("", "hookgate-bench")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	addr := testgw.MustFreeAddr()
	cfg := fmt.Sprintf(`{
	admin off
	persist_config off
	auto_https off
	storage file_system %[1]s
	log {
		level ERROR
	}
	webhooks {
		store %[2]s
		sync %[3]s
		listen off
		dedup_window 1m
	}
}
http://%[4]s {
	webhook_ingest /webhooks/* {
		source github {
			verify github %[5]s
		}
	}
}
`, filepath.Join(dir, "caddy"), filepath.Join(dir, "store"), syncMode, addr, secret)
	inproc.Load(cfg)
	defer func() { _ = caddy.Stop() }()

	body := bytes.Repeat([]byte("x"), bodySize)
	copy(body, `{"action":"opened","n":`)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	sig := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	url := "http://" + addr + "/webhooks/v1/github"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}}

	var (
		seq    atomic.Int64
		failed atomic.Int64
		mu     sync.Mutex
		lat    []time.Duration
		wg     sync.WaitGroup
	)
	deadline := time.Now().Add(d)
	start := time.Now()
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 4096)
			for time.Now().Before(deadline) {
				req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-Hub-Signature-256", sig)
				req.Header.Set("X-GitHub-Event", "pull_request")
				req.Header.Set("X-GitHub-Delivery", strconv.FormatInt(seq.Add(1), 10))
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode/100 != 2 {
					failed.Add(1)
					continue
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	r := result{failed: failed.Load()}
	if len(lat) > 0 {
		r.rps = float64(len(lat)) / elapsed.Seconds()
		r.p50 = lat[len(lat)/2].Round(time.Microsecond)
		r.p99 = lat[len(lat)*99/100].Round(time.Microsecond)
		r.max = lat[len(lat)-1].Round(time.Microsecond)
	}
	return r
}
