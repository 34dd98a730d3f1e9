package caddymodule

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/hookgate/hookgate/event"
	"github.com/hookgate/hookgate/forwarder"
)

// TestClusterConfigErrors: a wrong cluster block or replicas is refused at
// adapt or validate time with an error that says what to change, and never
// repeats a route's password.
func TestClusterConfigErrors(t *testing.T) {
	site := func(lines string) string {
		return "{\n\twebhooks {\n\t\tstore " + t.TempDir() + "\n\t\tlisten off\n" + lines + "\n\t}\n}\n:8080 {\n\twebhook_ingest {\n\t\tsource demo {\n\t\t\tverify none\n\t\t}\n\t}\n}\n"
	}
	for _, tc := range []struct{ lines, want string }{
		{"replicas 2", `replicas "2": want 1, 3 or 5`},
		{"replicas 3", "replicas 3 needs a cluster block"},
		{"cluster {\n listen 127.0.0.1:6222\n}", "cluster: give a name and a listen host:port"},
		{"cluster {\n name c\n listen 127.0.0.1:6222\n}", "set server_name to a stable name"},
		{"cluster {\n name c\n listen nohost\n}", "listen"},
		{"cluster {\n name c\n listen 127.0.0.1:6222\n routes http://u:hunter2@h:6222\n}", "want nats://host:port"},
		{"cluster {\n name c\n listen 127.0.0.1:6222\n routes nats://u:hunter2@h\n}", "give the port"},
		{"cluster {\n name c\n listen 127.0.0.1:6222\n tls a.crt\n}", "cluster tls: want <cert_file> <key_file> [ca <ca_file>]"},
		{"cluster {\n name c\n listen 127.0.0.1:6222\n gossip on\n}", `unrecognized cluster option "gossip"`},
		{"nats nats://127.0.0.1:4222 {\n creds a.creds\n user u\n}", "nats: give one of creds, nkey, or user and password"},
		{"nats", "nats: give at least one server URL"},
		{"nats http://u:hunter2@h:4222", "want nats://host:port or tls://host:port"},
		{"server_name a\nnats nats://h:4222\ncluster {\n name c\n listen 127.0.0.1:6222\n}", "nats and cluster exclude each other"},
		{"nats nats://h:4222 {\n tls {\n client_auth a.crt\n }\n}", "client_auth: want <cert_file> <key_file>"},
	} {
		_, err := loadErr(site(tc.lines))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v\nwant %q", tc.lines, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%q: the error holds a password: %v", tc.lines, err)
		}
	}
	ok := "server_name a\nreplicas 3\ncluster {\n name c\n listen 127.0.0.1:6222\n routes nats://127.0.0.1:6223 nats://u:p@127.0.0.1:6224\n user r\n password s\n}"
	if _, err := loadErr(site(ok)); err != nil {
		t.Fatalf("a valid cluster block is refused: %v", err)
	}
}

// TestRouteURLCredentials: the cluster's user and password are added to
// route URLs that carry none, and kept on those that do.
func TestRouteURLCredentials(t *testing.T) {
	for in, want := range map[string]string{
		"nats://h:6222":       "nats://r:s@h:6222",
		"nats://x:y@h:6222":   "nats://x:y@h:6222",
		"nats-route://h:6222": "nats-route://r:s@h:6222",
	} {
		got, err := routeURL(in, "r", "s")
		if err != nil || got != want {
			t.Errorf("routeURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// The client login of the test's plain nats-server nodes.
const (
	peerUser     = "app"
	peerPassword = "app-secret"
)

// startPeer starts a plain nats-server cluster node with JetStream on
// loopback: a peer of a clustered gateway, or a node of an external
// cluster. routes are host:port cluster addresses.
func startPeer(t *testing.T, name, cluster, user, pass string, routes []string) *server.Server {
	t.Helper()
	host, port, err := splitHostPort(cluster)
	if err != nil {
		t.Fatal(err)
	}
	var urls []string
	for _, r := range routes {
		urls = append(urls, fmt.Sprintf("nats://%s:%s@%s", user, pass, r))
	}
	opts := &server.Options{
		ServerName: name, Host: "127.0.0.1", Port: server.RANDOM_PORT,
		JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true,
		Username: peerUser, Password: peerPassword,
		Cluster: server.ClusterOpts{Name: "hgtest", Host: host, Port: port, Username: user, Password: pass},
		Routes:  server.RoutesFromStr(strings.Join(urls, ",")),
	}
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatalf("peer %s did not start", name)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

// TestClusterWaitsForQuorum: a clustered gateway whose peers are not up
// answers 503 with a Retry-After and keeps trying in the background; once
// two peers join, it creates the streams and accepts events. A reload to
// replicas 3 scales every stream, bucket and consumer to three copies
// without a restart, and a reload back to 1 with one more route applies
// too. Once the peers are gone, the node is not ready (webhook_ready's
// storeState).
func TestClusterWaitsForQuorum(t *testing.T) {
	routes := []string{freeAddr(t), freeAddr(t), freeAddr(t)}
	global := func(replicas int, routes ...string) string {
		return fmt.Sprintf(`
		server_name gw
		replicas %d
		cluster {
			name hgtest
			listen %s
			routes nats://%s
			user route
			password route-secret
		}`, replicas, routes[0], strings.Join(routes[1:], " nats://"))
	}
	sink := newDedupSink(t, 0)
	cfg := gatewayConfig{Global: global(1, routes...), Ingest: "\t\tretry_after 7s",
		Destinations: destination("sink", sink.srv.URL, "")}
	g := startGateway(t, cfg)
	status, hdr, body := g.post("/webhooks/v1/demo", []byte(`{}`), map[string]string{"X-Id": "early"})
	if status != http.StatusServiceUnavailable || hdr.Get("Retry-After") != "7" {
		t.Fatalf("before the cluster formed: %d, Retry-After %q, %s; want 503 with Retry-After 7", status, hdr.Get("Retry-After"), body)
	}
	p2 := startPeer(t, "p2", routes[1], "route", "route-secret", routes)
	p3 := startPeer(t, "p3", routes[2], "route", "route-secret", routes)
	waitFor(t, 60*time.Second, "the gateway to accept events once the cluster formed", func() bool {
		s, _, _ := g.post("/webhooks/v1/demo", []byte(`{}`), map[string]string{"X-Id": "late"})
		return s == http.StatusOK
	})
	waitFor(t, 30*time.Second, "the event at the sink", func() bool {
		keys, _ := sink.counts()
		return keys["demo:late"]
	})
	wantReplicas := func(n int) func() bool {
		return func() bool { return replicasOff(t, g, n) == "" }
	}
	if off := replicasOff(t, g, 1); off != "" {
		t.Fatalf("with replicas 1: %s", off)
	}
	// A reload to replicas 3 scales every stream, bucket and consumer.
	cfg = g.cfg
	cfg.Global = global(3, routes...)
	g.load(cfg)
	waitFor(t, 60*time.Second, "every stream, bucket and consumer to have 3 replicas after the reload", wantReplicas(3))
	if s, _, b := g.post("/webhooks/v1/demo", []byte(`{}`), map[string]string{"X-Id": "at-3"}); s != http.StatusOK {
		t.Fatalf("after the reload to 3: %d %s", s, b)
	}
	// A reload that lowers replicas and adds a route applies without a
	// restart.
	cfg.Global = global(1, append(routes, freeAddr(t))...)
	g.load(cfg)
	waitFor(t, 60*time.Second, "every stream, bucket and consumer to have 1 replica after the reload", wantReplicas(1))
	if s, _, b := g.post("/webhooks/v1/demo", []byte(`{}`), map[string]string{"X-Id": "after-reload"}); s != http.StatusOK {
		t.Fatalf("after the reload: %d %s", s, b)
	}
	waitFor(t, 30*time.Second, "the events at the sink", func() bool {
		keys, _ := sink.counts()
		return keys["demo:at-3"] && keys["demo:after-reload"]
	})
	if !g.engine().clusterCurrent() {
		t.Fatal("a node of a healthy cluster is not current")
	}
	// Cut off from the majority, the node is not ready.
	p2.Shutdown()
	p3.Shutdown()
	waitFor(t, 30*time.Second, "the node cut off from the majority to report not current", func() bool {
		return !g.engine().clusterCurrent()
	})
}

// replicasOff names the first stream of the cluster (every one is the
// gateway's: its streams and buckets, whether or not replicatedStreams
// lists them) or consumer of destination "sink" that does not have n
// copies placed, or returns "".
func replicasOff(t *testing.T, g *gateway, n int) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	js := g.engine().js
	consumers := map[string]string{event.StreamName: forwarder.ConsumerName("sink"),
		forwarder.AdvisoryStream: "adv-" + forwarder.ConsumerName("sink"), replayStream: "replay-sink"}
	names := js.StreamNames(ctx)
	var all []string
	for name := range names.Name() {
		all = append(all, name)
	}
	if err := names.Err(); err != nil {
		return fmt.Sprintf("stream names: %v", err)
	}
	for _, name := range append([]string{event.StreamName, event.DLQStreamName}, replicatedStreams...) {
		if !slices.Contains(all, name) {
			return fmt.Sprintf("stream %s: missing", name)
		}
	}
	for _, name := range all {
		s, err := js.Stream(ctx, name)
		if err != nil {
			return fmt.Sprintf("stream %s: %v", name, err)
		}
		info := s.CachedInfo()
		if info.Config.Replicas != n || info.Cluster == nil || len(info.Cluster.Replicas) != n-1 {
			return fmt.Sprintf("stream %s: replicas %d, %+v", name, info.Config.Replicas, info.Cluster)
		}
		cname, ok := consumers[name]
		if !ok {
			continue
		}
		c, err := s.Consumer(ctx, cname)
		if err != nil {
			return fmt.Sprintf("consumer %s: %v", cname, err)
		}
		if ci := c.CachedInfo(); ci.Cluster == nil || len(ci.Cluster.Replicas) != n-1 {
			return fmt.Sprintf("consumer %s: %+v", cname, ci.Cluster)
		}
	}
	return ""
}

// TestApplyReplicasRefusal: on a three-node cluster, applyReplicas scales
// a stream to the app's replicas, and one JetStream cannot scale (an
// attempt history created with asynchronous persistence by an older
// gateway) is left as it is with a warning that names it and says what to
// do.
func TestApplyReplicasRefusal(t *testing.T) {
	js := externalJS(t, startExternalCluster(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, sc := range []jetstream.StreamConfig{
		{Name: forwarder.AdvisoryStream, Subjects: []string{"adv.test"}, Replicas: 1},
		{Name: forwarder.AttemptStream, Subjects: []string{"att.test"}, Replicas: 1, PersistMode: jetstream.AsyncPersistMode},
	} {
		if _, err := js.CreateStream(ctx, sc); err != nil {
			t.Fatal(err)
		}
	}
	core, logs := observer.New(zapcore.WarnLevel)
	a := &App{Replicas: 3, engine: &engine{js: js}, logger: zap.New(core)}
	a.applyReplicas(ctx)

	replicas := func(name string) int {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return s.CachedInfo().Config.Replicas
	}
	if r := replicas(forwarder.AdvisoryStream); r != 3 {
		t.Errorf("%s has %d replicas after applyReplicas, want 3", forwarder.AdvisoryStream, r)
	}
	if r := replicas(forwarder.AttemptStream); r != 1 {
		t.Errorf("%s has %d replicas, want 1 (JetStream cannot scale it)", forwarder.AttemptStream, r)
	}
	warned := logs.FilterField(zap.String("stream", forwarder.AttemptStream)).All()
	if len(warned) != 1 || !strings.Contains(warned[0].ContextMap()["error"].(string), "nats stream rm") {
		t.Fatalf("want one warning naming %s and what to do, got %v", forwarder.AttemptStream, logs.All())
	}
	if n := logs.Len(); n != 1 {
		t.Errorf("%d warnings, want 1: %v", n, logs.All())
	}
}
