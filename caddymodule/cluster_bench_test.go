package caddymodule

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkClusterIngest compares ingest on one gateway process (sync
// always, group commit) with a three-process embedded cluster (replicas 3,
// sync always), in the same run on loopback: events per second acknowledged
// and the p99 time to the 2xx, with 16 concurrent posters for 10s each
// (spread over the three nodes). It prints the figures of docs/CLUSTER.md;
// run it alone:
//
//	go test -run '^$' -bench BenchmarkClusterIngest -benchtime 1x ./caddymodule/
func BenchmarkClusterIngest(b *testing.B) {
	const posters, d = 16, 10 * time.Second
	single := &procNode{name: "single", dir: b.TempDir(), http: freeAddr(b), admin: freeAddr(b), nats: freeAddr(b)}
	single.caddyfile = fmt.Sprintf(procClusterTemplate, single.dir, single.admin, single.name, single.nats, "", "", single.http)
	single.start(b)
	single.waitAccepting(b, 60*time.Second)
	rate, p99 := ingestLoad([]*procNode{single}, posters, d)
	b.ReportMetric(rate, "single-ev/s")
	b.ReportMetric(p99, "single-p99-ms")
	single.kill()

	nodes := newProcCluster(b, 3, "")
	for _, nd := range nodes {
		nd.start(b)
	}
	for _, nd := range nodes {
		nd.waitAccepting(b, 90*time.Second)
	}
	rate, p99 = ingestLoad(nodes, posters, d)
	b.ReportMetric(rate, "cluster3-ev/s")
	b.ReportMetric(p99, "cluster3-p99-ms")
}

// ingestLoad posts from posters goroutines, round-robin over nodes, for d,
// and returns the acknowledged events per second and the p99 latency of
// the 2xx answers in milliseconds.
func ingestLoad(nodes []*procNode, posters int, d time.Duration) (rate, p99 float64) {
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	end := time.Now().Add(d)
	for p := range posters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nd := nodes[p%len(nodes)]
			for n := 0; time.Now().Before(end); n++ {
				start := time.Now()
				if s := nd.post(fmt.Sprintf("b%d-%d", p, n)); s >= 200 && s < 300 {
					mu.Lock()
					lat = append(lat, time.Since(start))
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if len(lat) == 0 {
		return 0, 0
	}
	slices.Sort(lat)
	return float64(len(lat)) / d.Seconds(), float64(lat[len(lat)*99/100].Microseconds()) / 1000
}
