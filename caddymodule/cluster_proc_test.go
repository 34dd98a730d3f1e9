package caddymodule

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookgate/hookgate/event"
)

// clusterLongEnv, set to 1, makes the cluster tests run their long
// version (minutes of load, several kills); the default stays short for CI.
const clusterLongEnv = "HOOKGATE_CLUSTER_LONG"

// procNode is one gateway process of a test cluster: the test binary run
// again as the caddy command (clitest), with a store of its own.
type procNode struct {
	name                     string
	dir                      string
	http, admin, nats, route string
	caddyfile                string
	cmd                      *exec.Cmd
	exited                   chan struct{}
	log                      *os.File
}

// procClusterTemplate is a node's Caddyfile: %[1]s dir, %[2]s admin, %[3]s
// server name, %[4]s NATS listen, %[5]s webhooks lines about the cluster
// or an external NATS, %[6]s destinations, %[7]s HTTP address.
const procClusterTemplate = `{
	admin %[2]s
	persist_config off
	auto_https off
	storage file_system %[1]s/caddy
	webhooks {
		store %[1]s/store
		listen %[4]s
		server_name %[3]s
%[5]s
%[6]s
	}
}

http://%[7]s {
	webhook_ingest /webhooks/* {
		versions v1
		source demo {
			verify none
			id_header X-Id
			type_header X-Type
		}
	}
}
`

// newProcCluster prepares n clustered nodes with replicas 3 (not started).
func newProcCluster(t testing.TB, n int, destinations string) []*procNode {
	t.Helper()
	nodes := make([]*procNode, n)
	var routes []string
	for i := range nodes {
		nd := &procNode{name: fmt.Sprintf("n%d", i+1), dir: t.TempDir(),
			http: freeAddr(t), admin: freeAddr(t), nats: freeAddr(t), route: freeAddr(t)}
		nodes[i] = nd
		routes = append(routes, "nats://"+nd.route)
	}
	for _, nd := range nodes {
		cluster := fmt.Sprintf(`		replicas 3
		cluster {
			name hgtest
			listen %s
			routes %s
			user route
			password route-secret
		}`, nd.route, strings.Join(routes, " "))
		nd.caddyfile = fmt.Sprintf(procClusterTemplate, nd.dir, nd.admin, nd.name, nd.nats, cluster, destinations, nd.http)
	}
	return nodes
}

// start runs the node; Cleanup kills it.
func (nd *procNode) start(t testing.TB) {
	t.Helper()
	path := filepath.Join(nd.dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(nd.caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	log, err := os.OpenFile(filepath.Join(nd.dir, "gateway.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	nd.log = log
	nd.cmd = exec.Command(os.Args[0], "run", "--config", path, "--adapter", "caddyfile")
	nd.cmd.Env = append(os.Environ(), "HOOKGATE_TEST_RUN_MAIN=1",
		"HOME="+nd.dir, "XDG_CONFIG_HOME="+nd.dir+"/config", "XDG_DATA_HOME="+nd.dir+"/data")
	nd.cmd.Stdout, nd.cmd.Stderr = log, log
	nd.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := nd.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	nd.exited = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}, log *os.File) {
		_ = cmd.Wait()
		log.Close()
		close(done)
	}(nd.cmd, nd.exited, log)
	t.Cleanup(nd.kill)
}

// kill sends SIGKILL to the node's process group and waits for it.
func (nd *procNode) kill() {
	select {
	case <-nd.exited:
		return
	default:
	}
	_ = syscall.Kill(-nd.cmd.Process.Pid, syscall.SIGKILL)
	<-nd.exited
}

// tail returns the end of the node's log.
func (nd *procNode) tail() string {
	b, _ := os.ReadFile(filepath.Join(nd.dir, "gateway.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// get returns the body of a GET on the node's admin API.
func (nd *procNode) get(t testing.TB, path string) string {
	t.Helper()
	resp, err := procClient.Get("http://" + nd.admin + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	return string(b)
}

// getJSON decodes the answer of a GET on the node's admin API into v.
func (nd *procNode) getJSON(t testing.TB, path string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(nd.get(t, path)), v); err != nil {
		t.Fatal(err)
	}
}

// grepLines returns the lines of s that contain any of words.
func grepLines(s string, words ...string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, w := range words {
			if strings.Contains(l, w) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

var procClient = &http.Client{Timeout: 5 * time.Second}

// post sends one event with id; it returns the status, 0 when there was
// no answer.
func (nd *procNode) post(id string) int {
	req, _ := http.NewRequest(http.MethodPost, "http://"+nd.http+"/webhooks/v1/demo", strings.NewReader(`{"id":"`+id+`"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Id", id)
	req.Header.Set("X-Type", "test.event")
	resp, err := procClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitAccepting posts probes until the node answers 2xx.
func (nd *procNode) waitAccepting(t testing.TB, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for i := 0; time.Now().Before(deadline); i++ {
		if s := nd.post(fmt.Sprintf("probe-%s-%d", nd.name, i)); s >= 200 && s < 300 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("node %s does not accept events after %s; its log:\n%s", nd.name, d, nd.tail())
}

// dedupSink is a destination that processes each Idempotency-Key once and
// counts the deliveries it turned away as duplicates.
type dedupSink struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen map[string]int
	// first is when each key was first delivered.
	first map[string]time.Time
	// inFlight and maxInFlight measure concurrent requests.
	inFlight, maxInFlight atomic.Int64
	delay                 time.Duration
}

func newDedupSink(t testing.TB, delay time.Duration) *dedupSink {
	s := &dedupSink{seen: map[string]int{}, first: map[string]time.Time{}, delay: delay}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := s.inFlight.Add(1)
		defer s.inFlight.Add(-1)
		for {
			m := s.maxInFlight.Load()
			if n <= m || s.maxInFlight.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(s.delay)
		key := r.Header.Get(event.HeaderIdempotencyKey)
		s.mu.Lock()
		if s.seen[key] == 0 {
			s.first[key] = time.Now()
		}
		s.seen[key]++
		s.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// counts returns processed keys and duplicate deliveries.
func (s *dedupSink) counts() (keys map[string]bool, dups int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys = make(map[string]bool, len(s.seen))
	for k, n := range s.seen {
		keys[k] = true
		dups += n - 1
	}
	return keys, dups
}

// rate returns the deliveries per second of the keys with prefix, from
// the first delivery of one of them to the last, and how many there were.
func (s *dedupSink) rate(prefix string) (perSecond float64, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var first, last time.Time
	for k, at := range s.first {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		n++
		if first.IsZero() || at.Before(first) {
			first = at
		}
		if at.After(last) {
			last = at
		}
	}
	if n < 2 {
		return 0, n
	}
	return float64(n-1) / last.Sub(first).Seconds(), n
}

// newExternalGateways prepares n gateway processes (g1, g2, ...) that use
// the external NATS cluster nodes with replicas 3 (not started).
func newExternalGateways(t *testing.T, nodes []*server.Server, n int, destinations string) []*procNode {
	t.Helper()
	ext := fmt.Sprintf("\t\treplicas 3\n\t\tnats %s {\n\t\t\tuser %s\n\t\t\tpassword %s\n\t\t}",
		strings.Join(clientURLs(nodes), " "), peerUser, peerPassword)
	gws := make([]*procNode, n)
	for i := range gws {
		nd := &procNode{name: fmt.Sprintf("g%d", i+1), dir: t.TempDir(),
			http: freeAddr(t), admin: freeAddr(t), nats: freeAddr(t)}
		nd.caddyfile = fmt.Sprintf(procClusterTemplate, nd.dir, nd.admin, nd.name, nd.nats, ext, destinations, nd.http)
		gws[i] = nd
	}
	return gws
}

// clusterStatus returns the cluster part of the node's status.
func (nd *procNode) clusterStatus(t testing.TB) *ClusterStatus {
	t.Helper()
	var st struct{ Cluster *ClusterStatus }
	nd.getJSON(t, "/webhooks/status", &st)
	if st.Cluster == nil {
		t.Fatalf("node %s: the status has no cluster part", nd.name)
	}
	return st.Cluster
}

// loadResult is what a steady load saw.
type loadResult struct {
	mu       sync.Mutex
	acked    []string
	status   map[int]int
	firstGap time.Duration // longest time without a 2xx on a live node
}

// count returns how many events were acknowledged so far.
func (r *loadResult) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.acked)
}

// steadyLoad posts one event every interval to each live node until ctx
// ends.
func steadyLoad(ctx context.Context, nodes []*procNode, alive func(int) bool, interval time.Duration, res *loadResult) *sync.WaitGroup {
	var wg sync.WaitGroup
	for i, nd := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := time.Now()
			for n := 0; ctx.Err() == nil; n++ {
				time.Sleep(interval)
				if !alive(i) {
					last = time.Now()
					continue
				}
				id := fmt.Sprintf("%s-%d", nd.name, n)
				s := nd.post(id)
				res.mu.Lock()
				res.status[s]++
				if s >= 200 && s < 300 {
					res.acked = append(res.acked, id)
					if gap := time.Since(last); gap > res.firstGap && alive(i) {
						res.firstGap = gap
					}
					last = time.Now()
				}
				res.mu.Unlock()
			}
		}()
	}
	return &wg
}

// subscriberStream opens WEBHOOKS through a node's NATS listener with its
// generated subscriber credential; Cleanup closes the connection.
func subscriberStream(t *testing.T, ctx context.Context, nd *procNode) jetstream.Stream {
	t.Helper()
	s, err := subscriberJS(t, nd).Stream(ctx, event.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// subscriberJS connects to a node's NATS listener with its generated
// subscriber credential; Cleanup closes the connection.
func subscriberJS(t *testing.T, nd *procNode) jetstream.JetStream {
	t.Helper()
	opt, err := nats.NkeyOptionFromSeed(filepath.Join(nd.dir, "store", subscriberSeedFile))
	if err != nil {
		t.Fatal(err)
	}
	return dialJS(t, "nats://"+nd.nats, opt)
}

// streamIDs reads every event id in WEBHOOKS through a node.
func streamIDs(t *testing.T, nd *procNode) map[string]bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return idsIn(t, ctx, subscriberStream(t, ctx, nd))
}

// idsIn reads the event id of every message in s.
func idsIn(t *testing.T, ctx context.Context, s jetstream.Stream) map[string]bool {
	t.Helper()
	total := s.CachedInfo().State.Msgs
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for seen := uint64(0); seen < total; {
		batch, err := c.Fetch(500, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			ids[m.Headers().Get(event.HeaderMsgID)] = true
			seen++
		}
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d events before the deadline", seen, total)
		}
	}
	return ids
}

// leaderIndex returns the index of the node leading WEBHOOKS.
func leaderIndex(t *testing.T, nodes []*procNode) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info := subscriberStream(t, ctx, nodes[0]).CachedInfo()
	for i, nd := range nodes {
		if info.Cluster != nil && info.Cluster.Leader == nd.name {
			return i
		}
	}
	t.Fatalf("no node leads %s: %+v", event.StreamName, info.Cluster)
	return 0
}

// replicaCurrent reports whether the named node holds a current copy of
// WEBHOOKS without lag, as the stream's leader sees it.
func replicaCurrent(t *testing.T, via *procNode, name string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info := subscriberStream(t, ctx, via).CachedInfo()
	if info.Cluster == nil {
		return false
	}
	if info.Cluster.Leader == name {
		return true
	}
	for _, p := range info.Cluster.Replicas {
		if p.Name == name {
			return p.Current && p.Lag == 0
		}
	}
	return false
}

// killRun is a steady load on nodes during which one node (victim) is
// killed with SIGKILL mid-stream and restarted after down.
type killRun struct {
	nodes  []*procNode
	victim int
	// run is the load's time with every node up (half before the kill,
	// half after the restart); down is how long the victim stays down.
	run, down time.Duration
	// whileDown, when set, runs a third of down after the kill; the
	// victim restarts after down or when it returns, whichever is later.
	whileDown func(killedAt time.Time)
	// restarted, when set, runs once the restarted victim accepts events.
	restarted func()
}

// killResult is what a killRun's load saw.
type killResult struct {
	acked          []string
	status         string // answers by status, 0 = no answer
	gap            time.Duration
	ackedWhileDown int
	// rejoin is from the kill until the restarted node accepted again.
	rejoin time.Duration
}

// killRunTimes are the run and down times of the kill tests: short for
// CI, minutes with HOOKGATE_CLUSTER_LONG=1. NATS elects a new stream
// leader 4-9s after the old one stops answering (its Raft election
// timeout), so a node stays down longer than that.
func killRunTimes() (run, down time.Duration) {
	if os.Getenv(clusterLongEnv) == "1" {
		return 60 * time.Second, 30 * time.Second
	}
	return 4 * time.Second, 15 * time.Second
}

// do runs the load, kills and restarts the victim, and returns what the
// load saw; it fails the test when ingest did not go on without the
// victim.
func (k killRun) do(t *testing.T) killResult {
	t.Helper()
	var dead atomic.Bool
	alive := func(i int) bool { return i != k.victim || !dead.Load() }
	res := &loadResult{status: map[int]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	wg := steadyLoad(ctx, k.nodes, alive, 20*time.Millisecond, res)

	time.Sleep(k.run / 2)
	dead.Store(true)
	ackedAtKill := res.count()
	victim := k.nodes[k.victim]
	victim.kill()
	killedAt := time.Now()
	if k.whileDown != nil {
		time.Sleep(k.down / 3)
		k.whileDown(killedAt)
	}
	time.Sleep(time.Until(killedAt.Add(k.down)))
	var out killResult
	out.ackedWhileDown = res.count() - ackedAtKill
	victim.start(t)
	victim.waitAccepting(t, 90*time.Second)
	out.rejoin = time.Since(killedAt)
	if k.restarted != nil {
		k.restarted()
	}
	dead.Store(false)
	time.Sleep(k.run / 2)
	cancel()
	wg.Wait()

	res.mu.Lock()
	out.acked = append([]string(nil), res.acked...)
	out.status = fmt.Sprint(res.status)
	out.gap = res.firstGap
	res.mu.Unlock()
	t.Logf("killed %s; acknowledged %d events (%d while it was down); answers by status (0 = no answer) %s; longest gap between 2xx on a live node %s; killed node accepting again %s after the kill",
		victim.name, len(out.acked), out.ackedWhileDown, out.status, out.gap.Round(time.Millisecond), out.rejoin.Round(time.Millisecond))
	if len(out.acked) < 100 {
		t.Fatalf("only %d events acknowledged: ingest did not continue", len(out.acked))
	}
	if out.ackedWhileDown == 0 {
		t.Fatal("no event acknowledged while a node was down")
	}
	return out
}

// checkStored fails the test unless every acknowledged event is in ids.
func checkStored(t *testing.T, acked []string, ids map[string]bool) {
	t.Helper()
	missing := 0
	for _, id := range acked {
		if !ids["demo:"+id] {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged events are not in the stream", missing, len(acked))
	}
}

// waitDelivered waits until every acknowledged event reached the sink,
// once at its idempotency check, and logs the duplicates it turned away.
func waitDelivered(t *testing.T, sink *dedupSink, acked []string) {
	t.Helper()
	start := time.Now()
	waitFor(t, 90*time.Second, "every acknowledged event at the sink", func() bool {
		keys, _ := sink.counts()
		for _, id := range acked {
			if !keys["demo:"+id] {
				return false
			}
		}
		return true
	})
	_, dups := sink.counts()
	t.Logf("sink: every acknowledged event arrived (%s after the load ended); %d duplicate deliveries turned away by its idempotency check",
		time.Since(start).Round(time.Millisecond), dups)
}

// TestClusterKillNode: three clustered gateway processes with replicas 3
// take a steady stream of events; one is killed with SIGKILL mid-stream and
// restarted. Every 2xx-acknowledged event is in the stream and reaches the
// sink once (at its idempotency check), ingest continues on the other two,
// and the restarted node catches up.
func TestClusterKillNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three gateway processes")
	}
	run, down := killRunTimes()
	sink := newDedupSink(t, 0)
	nodes := newProcCluster(t, 3, destination("sink", sink.srv.URL, ""))
	for _, nd := range nodes {
		nd.start(t)
	}
	for _, nd := range nodes {
		nd.waitAccepting(t, 90*time.Second)
	}
	// Kill the stream's leader, so that the others must elect a new one.
	victim := leaderIndex(t, nodes)
	res := killRun{nodes: nodes, victim: victim, run: run, down: down}.do(t)

	// Every acknowledged event is in the stream, read through the
	// restarted node.
	checkStored(t, res.acked, streamIDs(t, nodes[victim]))
	// The restarted node catches up: it is a current replica without lag.
	waitFor(t, 60*time.Second, "the restarted node to be a current replica", func() bool {
		return replicaCurrent(t, nodes[0], nodes[victim].name)
	})
	// Any node's status lists the three copies, the leader and no lag, and
	// its metrics count three current peers.
	waitFor(t, 30*time.Second, "the status to show three current peers", func() bool {
		var st struct{ Cluster *ClusterStatus }
		nodes[0].getJSON(t, "/webhooks/status", &st)
		if st.Cluster == nil || st.Cluster.Leader == "" || len(st.Cluster.Peers) != 3 || st.Cluster.Replicas != 3 {
			return false
		}
		for _, p := range st.Cluster.Peers {
			if !p.Current || p.Lag != 0 {
				return false
			}
		}
		return true
	})
	if m := nodes[0].get(t, "/metrics"); !strings.Contains(m, "caddy_webhooks_cluster_peers 3") || !strings.Contains(m, "caddy_webhooks_stream_leader ") {
		t.Errorf("metrics lack the cluster gauges:\n%s", grepLines(m, "cluster_peers", "stream_leader"))
	}
	waitDelivered(t, sink, res.acked)
	checkNodesBucketClosed(t, nodes[0])
}

// checkNodesBucketClosed: a subscriber can neither read nor write the
// gateways' heartbeats, so it cannot change the share of a destination's
// rate each gateway takes.
func checkNodesBucketClosed(t *testing.T, nd *procNode) {
	t.Helper()
	short := func() context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		t.Cleanup(cancel)
		return ctx
	}
	js := subscriberJS(t, nd)
	if _, err := js.KeyValue(short(), nodesBucket); err == nil {
		t.Errorf("a subscriber opened the bucket %s", nodesBucket)
	}
	if _, err := js.Publish(short(), "$KV."+nodesBucket+".intruder", []byte("x")); err == nil {
		t.Errorf("a subscriber wrote a heartbeat into %s", nodesBucket)
	}
	if n := nd.clusterStatus(t).Gateways; n != 3 {
		t.Errorf("the gateways count %d gateways, want 3", n)
	}
}
