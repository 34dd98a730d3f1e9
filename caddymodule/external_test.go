package caddymodule

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookgate/hookgate/event"
)

// startExternalCluster starts three plain nats-server nodes clustered on
// loopback and returns them once JetStream has a meta leader.
func startExternalCluster(t *testing.T) []*server.Server {
	t.Helper()
	routes := []string{freeAddr(t), freeAddr(t), freeAddr(t)}
	var nodes []*server.Server
	for i, r := range routes {
		nodes = append(nodes, startPeer(t, fmt.Sprintf("x%d", i+1), r, "route", "route-secret", routes))
	}
	waitFor(t, 30*time.Second, "the external cluster's meta leader", func() bool {
		for _, s := range nodes {
			if s.JetStreamIsLeader() {
				return true
			}
		}
		return false
	})
	return nodes
}

// clientURLs returns the nodes' client URLs.
func clientURLs(nodes []*server.Server) []string {
	var urls []string
	for _, s := range nodes {
		urls = append(urls, s.ClientURL())
	}
	return urls
}

// TestExternalCluster: a gateway with no embedded server stores events on
// an external three-node NATS cluster: it creates the streams it lacks
// with replicas 3, leaves an existing one as it is (reporting the
// differences), and keeps acknowledging and forwarding when one node
// stops; every acknowledged event is in the stream and reaches the sink.
func TestExternalCluster(t *testing.T) {
	nodes := startExternalCluster(t)
	urls := clientURLs(nodes)
	nc, err := nats.Connect(strings.Join(urls, ","), nats.UserInfo(peerUser, peerPassword))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// The team made the DLQ stream already, with settings of its own.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: event.DLQStreamName,
		Subjects: []string{event.DLQSubjectRoot + ".>"}, Replicas: 1, MaxAge: time.Hour}); err != nil {
		t.Fatal(err)
	}

	sink := newDedupSink(t, 0)
	g := startGateway(t, gatewayConfig{Global: fmt.Sprintf(`
		replicas 3
		nats %s {
			user %s
			password %s
		}`, strings.Join(urls, " "), peerUser, peerPassword),
		Destinations: destination("sink", sink.srv.URL, "")})
	waitFor(t, 60*time.Second, "the gateway to accept events", func() bool {
		s, _, _ := g.post("/webhooks/v1/demo", []byte(`{}`), map[string]string{"X-Id": "probe"})
		return s == http.StatusOK
	})
	engines.Range(func(key, value any) bool {
		if value.(*engine).srv != nil {
			t.Errorf("store %v runs an embedded server with nats set", key)
		}
		return true
	})

	var mu sync.Mutex
	acked := []string{"probe"}
	statuses := map[int]int{}
	post := func(n int) {
		id := fmt.Sprintf("e%d", n)
		s, _, _ := g.post("/webhooks/v1/demo", []byte(`{}`), map[string]string{"X-Id": id})
		mu.Lock()
		defer mu.Unlock()
		statuses[s]++
		if s == http.StatusOK {
			acked = append(acked, id)
		}
	}
	for n := range 100 {
		post(n)
	}
	// Stop a node that is not the WEBHOOKS leader the gateway talks to
	// least: any node, the cluster keeps a majority.
	nodes[2].Shutdown()
	for n := 100; n < 300; n++ {
		post(n)
	}
	t.Logf("answers by status with one of three external nodes down: %v", statuses)
	if len(acked) < 250 {
		t.Fatalf("only %d of 301 events acknowledged with one node down: %v", len(acked), statuses)
	}

	s, err := js.Stream(ctx, event.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	if r := s.CachedInfo().Config.Replicas; r != 3 {
		t.Fatalf("WEBHOOKS created with %d replicas, want 3", r)
	}
	dlq, err := js.Stream(ctx, event.DLQStreamName)
	if err != nil {
		t.Fatal(err)
	}
	if c := dlq.CachedInfo().Config; c.Replicas != 1 || c.MaxAge != time.Hour {
		t.Fatalf("the existing DLQ stream was changed: replicas %d, max age %s", c.Replicas, c.MaxAge)
	}
	stored := map[string]bool{}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for total := s.CachedInfo().State.Msgs; uint64(len(stored)) < total; {
		batch, err := c.Fetch(500, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			stored[m.Headers().Get(event.HeaderMsgID)] = true
		}
	}
	for _, id := range acked {
		if !stored["demo:"+id] {
			t.Fatalf("acknowledged event %s is not in the stream", id)
		}
	}
	waitFor(t, 60*time.Second, "every acknowledged event at the sink", func() bool {
		keys, _ := sink.counts()
		for _, id := range acked {
			if !keys["demo:"+id] {
				return false
			}
		}
		return true
	})
	_, dups := sink.counts()
	t.Logf("sink: %d duplicate deliveries turned away by its idempotency check", dups)
}
