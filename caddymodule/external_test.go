package caddymodule

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

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

// externalJS connects to the nodes as the test's client user; Cleanup
// closes the connection.
func externalJS(t *testing.T, nodes []*server.Server) jetstream.JetStream {
	t.Helper()
	return dialJS(t, strings.Join(clientURLs(nodes), ","), nats.UserInfo(peerUser, peerPassword))
}

// dialJS connects a nats.go client to url (comma-separated for several
// servers) with opts and returns its JetStream context; Cleanup closes
// the connection.
func dialJS(t *testing.T, url string, opts ...nats.Option) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// TestExternalCluster: a gateway with no embedded server stores events on
// an external three-node NATS cluster: it creates the streams it lacks
// with replicas 3, leaves an existing one as it is (reporting the
// differences), and keeps acknowledging and forwarding when one node
// stops; every acknowledged event is in the stream and reaches the sink.
func TestExternalCluster(t *testing.T) {
	nodes := startExternalCluster(t)
	urls := clientURLs(nodes)
	js := externalJS(t, nodes)
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
	checkStored(t, acked, idsIn(t, ctx, s))
	waitDelivered(t, sink, acked)
}

// TestExternalKillGateway: three gateway processes with no embedded server
// share an external three-node NATS cluster and take a steady stream of
// events; one gateway is killed with SIGKILL mid-stream, and while it is
// down one NATS node stops too. Ingest goes on through the other two
// gateways (the 503s and unanswered requests are counted), every
// 2xx-acknowledged event is in the stream and reaches the sink once at
// its idempotency check, and the killed gateway restarts and accepts
// events again.
func TestExternalKillGateway(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three gateway processes")
	}
	run, down := killRunTimes()
	cluster := startExternalCluster(t)
	sink := newDedupSink(t, 0)
	gws := newExternalGateways(t, cluster, 3, destination("sink", sink.srv.URL, ""))
	for _, nd := range gws {
		nd.start(t)
	}
	for _, nd := range gws {
		nd.waitAccepting(t, 60*time.Second)
	}
	// The survivors count the gateways that share the destination's rate:
	// the dead one's heartbeat expires, and the restarted one is counted
	// again at its first beat.
	counts := func(n int) func() bool {
		return func() bool { return gws[1].clusterStatus(t).Gateways == n }
	}
	res := killRun{nodes: gws, victim: 0, run: run, down: down,
		whileDown: func(killedAt time.Time) {
			cluster[2].Shutdown()
			waitFor(t, nodeTTL+30*time.Second, "the live gateways to count 2", counts(2))
			t.Logf("a live gateway counted 2 gateways %s after the kill", time.Since(killedAt).Round(100*time.Millisecond))
		},
		restarted: func() {
			joined := time.Now()
			waitFor(t, 30*time.Second, "the live gateways to count 3", counts(3))
			t.Logf("a live gateway counted 3 gateways %s after the restarted one accepted events", time.Since(joined).Round(100*time.Millisecond))
		}}.do(t)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := externalJS(t, cluster[:2]).Stream(ctx, event.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	checkStored(t, res.acked, idsIn(t, ctx, s))
	waitDelivered(t, sink, res.acked)
}

// TestRedactURLs: every password of the external NATS URL list is hidden
// (as one URL, only the first was), and the engine's log name carries
// none.
func TestRedactURLs(t *testing.T) {
	list := "nats://alice:first-secret@h1:4222,nats://bob:second-secret@h2:4222,nats://h3:4222"
	for _, got := range []string{redactURLs(list), newStoppedExternalName(list)} {
		if strings.Contains(got, "first-secret") || strings.Contains(got, "second-secret") {
			t.Fatalf("%q shows a password", got)
		}
		if !strings.Contains(got, "h1:4222") || !strings.Contains(got, "h2:4222") || !strings.Contains(got, "h3:4222") {
			t.Fatalf("%q lost a host", got)
		}
	}
}

// newStoppedExternalName is the store name an external engine logs.
func newStoppedExternalName(list string) string {
	e, err := newExternalEngine(engineConfig{externalEngineConfig: externalEngineConfig{NATSURLs: list}}, zap.NewNop())
	if err != nil {
		return err.Error()
	}
	defer e.nc.Close()
	return e.dir
}

// TestExternalReadinessFollowsConnection: with an external cluster the
// store is current only while the connection is up, so webhook_ready
// answers 503 when NATS is unreachable instead of 200 while every publish
// waits for publish_timeout.
func TestExternalReadinessFollowsConnection(t *testing.T) {
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	nc, err := nats.Connect(s.ClientURL(), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	e := &engine{nc: nc}
	if !e.clusterCurrent() {
		t.Fatal("connected, but not current")
	}
	s.Shutdown()
	waitFor(t, 10*time.Second, "the engine to say not current once NATS is gone", func() bool { return !e.clusterCurrent() })
}

// TestExternalPubAckInboxIgnoresForeignReplies: on an external NATS (and
// a cluster of gateways) a client that may read webhooks.> sees the
// gateway's reply subject of every publish while the stream still works
// on it. It has the server answer a direct get of a stored event whose
// body looks like a duplicate's PubAck to each of them. jetstream's
// publish took that answer for the PubAck: new events were answered
// "duplicate": true before the stream had stored them. Every new event
// must be answered 200 with "duplicate": false.
func TestExternalPubAckInboxIgnoresForeignReplies(t *testing.T) {
	nodes := startExternalCluster(t)
	urls := clientURLs(nodes)
	g := startGateway(t, gatewayConfig{Global: fmt.Sprintf(`
		replicas 3
		nats %s {
			user %s
			password %s
		}`, strings.Join(urls, " "), peerUser, peerPassword)})
	waitFor(t, 60*time.Second, "the gateway to accept events", func() bool {
		s, _, _ := g.post("/webhooks/v1/demo", []byte(`{}`), map[string]string{"X-Id": "probe"})
		return s == http.StatusOK
	})
	bait := `{"stream":"` + event.StreamName + `","seq":1,"duplicate":true}`
	if s, _, b := g.post("/webhooks/v1/demo", []byte(bait), map[string]string{"X-Id": "bait"}); s != http.StatusOK {
		t.Fatalf("bait: %d %s", s, b)
	}
	js := externalJS(t, nodes)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	stream, err := js.Stream(ctx, event.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	baitSeq := stream.CachedInfo().State.LastSeq
	if m, err := stream.GetMsg(ctx, baitSeq); err != nil || string(m.Data) != bait {
		t.Fatalf("the bait is not the last event (%v)", err)
	}

	nc := js.Conn()
	get := []byte(fmt.Sprintf(`{"seq":%d}`, baitSeq))
	var forged atomic.Int64
	if _, err := nc.Subscribe(event.SubjectRoot+".>", func(m *nats.Msg) {
		if m.Reply != "" {
			_ = nc.PublishMsg(&nats.Msg{Subject: "$JS.API.DIRECT.GET." + event.StreamName, Reply: m.Reply, Data: get})
			forged.Add(1)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var wrong []string
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 15 {
				id := fmt.Sprintf("w%d-%d", w, i)
				s, _, b := g.post("/webhooks/v1/demo", []byte(`{}`), map[string]string{"X-Id": id})
				if s != http.StatusOK || !strings.Contains(string(b), `"duplicate":false`) {
					mu.Lock()
					wrong = append(wrong, fmt.Sprintf("%s: %d %s", id, s, b))
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if forged.Load() == 0 {
		t.Fatal("the client saw no reply subject: the test proves nothing")
	}
	if len(wrong) > 0 {
		t.Fatalf("%d of 120 new events answered wrongly with %d forged answers sent to the gateway's inbox, e.g. %v", len(wrong), forged.Load(), wrong[:min(3, len(wrong))])
	}
	t.Logf("%d forged answers sent to the gateway's inbox; 120 new events answered as new", forged.Load())
}
