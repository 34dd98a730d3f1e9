package caddymodule

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSharedDestination: two gateway processes on one external NATS
// cluster share the destination's durable consumer, so each event is
// delivered once across them, and the requests in flight to the
// destination stay within the two nodes' worker pools together (2 ×
// concurrency, see docs/CLUSTER.md), while both nodes deliver.
func TestSharedDestination(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two gateway processes")
	}
	const concurrency, events = 2, 60
	cluster := startExternalCluster(t)
	sink := newDedupSink(t, 50*time.Millisecond)
	ext := fmt.Sprintf("\t\treplicas 3\n\t\tnats %s {\n\t\t\tuser %s\n\t\t\tpassword %s\n\t\t}",
		strings.Join(clientURLs(cluster), " "), peerUser, peerPassword)
	dest := destination("shared", sink.srv.URL, fmt.Sprintf("\t\t\tconcurrency %d", concurrency))
	var nodes []*procNode
	for i := range 2 {
		nd := &procNode{name: fmt.Sprintf("g%d", i+1), dir: t.TempDir(),
			http: freeAddr(t), admin: freeAddr(t), nats: freeAddr(t)}
		nd.caddyfile = fmt.Sprintf(procClusterTemplate, nd.dir, nd.admin, nd.name, nd.nats, ext, dest, nd.http)
		nd.start(t)
		nodes = append(nodes, nd)
	}
	for _, nd := range nodes {
		nd.waitAccepting(t, 60*time.Second)
	}
	var wg sync.WaitGroup
	for i, nd := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range events / 2 {
				if s := nd.post(fmt.Sprintf("s%d-%d", i, n)); s != 200 {
					t.Errorf("node %s: post %d: status %d", nd.name, n, s)
				}
			}
		}()
	}
	wg.Wait()
	want := events + len(nodes) // the events and the probes
	waitFor(t, 60*time.Second, "every event at the sink", func() bool {
		keys, _ := sink.counts()
		return len(keys) >= want
	})
	keys, dups := sink.counts()
	peak := sink.maxInFlight.Load()
	t.Logf("%d events delivered, %d duplicates, peak %d requests in flight (concurrency %d per node)", len(keys), dups, peak, concurrency)
	if dups != 0 {
		t.Fatalf("%d events were delivered more than once across the two gateways", dups)
	}
	if peak > 2*concurrency {
		t.Fatalf("peak of %d requests in flight, above the two nodes' %d workers", peak, 2*concurrency)
	}
	if peak <= concurrency {
		t.Logf("note: peak %d does not show both nodes delivering at once", peak)
	}
}
