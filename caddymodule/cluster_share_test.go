package caddymodule

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestSharedDestination: two gateway processes on one external NATS
// cluster share each destination's durable consumer, so each event is
// delivered once across them, and together they respect the destination's
// caps: the requests in flight never exceed its concurrency (JetStream's
// MaxAckPending on the shared consumer), and the deliveries per second
// stay within its rate (each gateway runs at rate / live gateways, counted
// in WEBHOOKS_NODES). Per gateway, the caps would allow twice as much.
func TestSharedDestination(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two gateway processes")
	}
	const (
		concurrency, events = 2, 60
		rate                = 10.0 // per second, cluster-wide
	)
	cluster := startExternalCluster(t)
	sink := newDedupSink(t, 50*time.Millisecond)
	rated := newDedupSink(t, 0)
	dests := destination("shared", sink.srv.URL, fmt.Sprintf("\t\t\tconcurrency %d", concurrency)) +
		destination("rated", rated.srv.URL, fmt.Sprintf("\t\t\trate %.0f/s", rate))
	nodes := newExternalGateways(t, cluster, 2, dests)
	for _, nd := range nodes {
		nd.start(t)
	}
	for _, nd := range nodes {
		nd.waitAccepting(t, 60*time.Second)
	}
	waitFor(t, 30*time.Second, "each gateway to count two gateways", func() bool {
		for _, nd := range nodes {
			if nd.clusterStatus(t).Gateways != 2 {
				return false
			}
		}
		return true
	})
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
	for _, s := range []*dedupSink{sink, rated} {
		waitFor(t, 60*time.Second, "every event at the sinks", func() bool {
			keys, _ := s.counts()
			return len(keys) >= want
		})
	}
	keys, dups := sink.counts()
	_, ratedDups := rated.counts()
	peak := sink.maxInFlight.Load()
	perSecond, n := rated.rate("demo:s")
	t.Logf("%d events delivered, %d+%d duplicates; peak %d requests in flight (concurrency %d for the cluster); %d events at %.1f/s (rate %.0f/s for the cluster)",
		len(keys), dups, ratedDups, peak, concurrency, n, perSecond, rate)
	if dups != 0 || ratedDups != 0 {
		t.Fatalf("%d+%d events were delivered more than once across the two gateways", dups, ratedDups)
	}
	if peak > concurrency {
		t.Fatalf("peak of %d requests in flight, above the destination's concurrency %d", peak, concurrency)
	}
	if peak < concurrency {
		t.Errorf("peak %d: the destination never had its %d requests in flight", peak, concurrency)
	}
	// The destination's burst defaults to its rate: 10 tokens for the
	// cluster, 5 per gateway. So n events take at least (n-burst)/rate
	// seconds; with 5% for timing, that bounds the measured rate. One rate
	// per gateway would give 20–30/s.
	const burst = rate
	if limit := 1.05 * float64(n-1) / ((float64(n) - burst) / rate); perSecond > limit {
		t.Fatalf("%d events delivered at %.1f/s, above what the cluster's rate %.0f/s with burst %.0f allows (%.1f/s)", n, perSecond, rate, burst, limit)
	}
}
