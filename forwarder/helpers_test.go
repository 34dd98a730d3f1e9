package forwarder

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/hookgate/hookgate/event"
)

// env is one test's embedded JetStream with the app's two streams.
type env struct {
	t   testing.TB
	srv *server.Server
	nc  *nats.Conn
	js  jetstream.JetStream
	log *zap.Logger
}

func newEnv(t testing.TB) *env { return newEnvOpts(t, false) }

// newEnvOpts starts an in-process nats-server with JetStream; syncAlways
// mirrors the gateway's durability default.
func newEnvOpts(t testing.TB, syncAlways bool) *env {
	t.Helper()
	opts := &server.Options{
		ServerName: "test",
		DontListen: true,
		JetStream:  true,
		StoreDir:   t.TempDir(),
		NoSigs:     true,
		NoLog:      true,
		SyncAlways: syncAlways,
		// Room for the large bodies of TestLargeBodies.
		MaxPayload: 8 << 20,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("new server: %v", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	nc, err := nats.Connect("", nats.InProcessServer(srv))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	e := &env{t: t, srv: srv, nc: nc, js: js, log: zap.NewNop()}
	if os.Getenv("HOOKGATE_BENCH_DEBUG") != "" {
		e.log, _ = zap.NewDevelopment()
	}
	if tt, ok := t.(*testing.T); ok {
		e.log = zaptest.NewLogger(tt, zaptest.Level(zap.WarnLevel))
	}
	t.Cleanup(func() {
		nc.Close()
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	ctx := context.Background()
	for _, sc := range []jetstream.StreamConfig{
		{Name: event.StreamName, Subjects: []string{event.SubjectRoot + ".>"}, Duplicates: time.Hour, MaxAge: 24 * time.Hour},
		{Name: event.DLQStreamName, Subjects: []string{event.DLQSubjectRoot + ".>"}, Duplicates: time.Hour},
	} {
		sc.Storage = jetstream.FileStorage
		sc.Retention = jetstream.LimitsPolicy
		sc.Discard = jetstream.DiscardNew
		if _, err := js.CreateStream(ctx, sc); err != nil {
			t.Fatalf("create stream %s: %v", sc.Name, err)
		}
	}
	return e
}

// publish stores an event the way the ingest handler does.
func (e *env) publish(id, source, typ string, body []byte, hdr map[string]string) uint64 {
	e.t.Helper()
	m := nats.NewMsg(event.Subject("v1", source, typ))
	m.Data = body
	m.Header.Set(event.HeaderID, id)
	m.Header.Set(event.HeaderSource, source)
	m.Header.Set(event.HeaderVersion, "v1")
	m.Header.Set(event.HeaderType, typ)
	m.Header.Set(event.HeaderContentType, "application/json; charset=utf-8")
	m.Header.Set(event.HeaderReceivedAt, time.Now().UTC().Format(time.RFC3339Nano))
	for k, v := range hdr {
		m.Header.Set(k, v)
	}
	ack, err := e.js.PublishMsg(context.Background(), m, jetstream.WithMsgID(id))
	if err != nil {
		e.t.Fatalf("publish %s: %v", id, err)
	}
	return ack.Sequence
}

// start runs a forwarder for cfg until the test ends.
func (e *env) start(cfg Config) *Forwarder {
	e.t.Helper()
	f, err := New(e.js, cfg, e.log)
	if err != nil {
		e.t.Fatalf("new forwarder: %v", err)
	}
	if err := f.Start(context.Background()); err != nil {
		e.t.Fatalf("start forwarder: %v", err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = f.Stop(ctx)
	})
	return f
}

// dlq returns the dead letters stored so far.
func (e *env) dlq(want int, within time.Duration) []*nats.Msg {
	e.t.Helper()
	var out []*nats.Msg
	deadline := time.Now().Add(within)
	s, err := e.js.Stream(context.Background(), event.DLQStreamName)
	if err != nil {
		e.t.Fatalf("dlq stream: %v", err)
	}
	for time.Now().Before(deadline) {
		info, err := s.Info(context.Background())
		if err != nil {
			e.t.Fatalf("dlq info: %v", err)
		}
		if int(info.State.Msgs) >= want {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	info, _ := s.Info(context.Background())
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && seq > 0; seq++ {
		raw, err := s.GetMsg(context.Background(), seq)
		if err != nil {
			continue
		}
		out = append(out, &nats.Msg{Subject: raw.Subject, Header: raw.Header, Data: raw.Data})
	}
	return out
}

// hit is one request a sink received.
type hit struct {
	at     time.Time
	header http.Header
	body   []byte
}

// sink is a loopback destination whose answer a test scripts.
type sink struct {
	srv *httptest.Server
	mu  sync.Mutex
	// hits by Webhook-Id, in arrival order.
	hits  map[string][]hit
	all   []hit
	reply func(h http.Header, n int) (status int, hdr map[string]string)
	// inFlight and maxInFlight measure concurrency; hold delays answers.
	inFlight, maxInFlight int
	hold                  time.Duration
	// acked is the idempotency check: ids answered 2xx, and how often a
	// 2xx was given for an id already acked.
	acked      map[string]bool
	duplicates int
}

func newSink(t testing.TB, reply func(h http.Header, n int) (int, map[string]string)) *sink {
	s := &sink{hits: map[string][]hit{}, acked: map[string]bool{}, reply: reply}
	if s.reply == nil {
		s.reply = func(http.Header, int) (int, map[string]string) { return 200, nil }
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *sink) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	id := r.Header.Get(event.HeaderWebhookID)
	s.mu.Lock()
	h := hit{at: time.Now(), header: r.Header.Clone(), body: body}
	s.hits[id] = append(s.hits[id], h)
	s.all = append(s.all, h)
	n := len(s.hits[id])
	s.inFlight++
	s.maxInFlight = max(s.maxInFlight, s.inFlight)
	hold := s.hold
	reply := s.reply
	s.mu.Unlock()
	if hold > 0 {
		time.Sleep(hold)
	}
	status, hdr := reply(r.Header, n)
	s.mu.Lock()
	s.inFlight--
	if status/100 == 2 {
		if s.acked[id] {
			s.duplicates++
		}
		s.acked[id] = true
	}
	s.mu.Unlock()
	for k, v := range hdr {
		w.Header().Set(k, v)
	}
	w.WriteHeader(status)
}

func (s *sink) count(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.hits[id])
}

func (s *sink) get(id string) []hit {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]hit(nil), s.hits[id]...)
}

func (s *sink) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.all)
}

func (s *sink) ackedCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.acked)
}

// waitFor polls cond every 10ms until it holds or the time is up.
func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fast returns a config with test-sized delays.
func fast(name, url string) Config {
	return Config{
		Name:        name,
		URL:         url,
		Timeout:     2 * time.Second,
		MaxAttempts: 3,
		BackoffBase: 10 * time.Millisecond,
		BackoffCap:  40 * time.Millisecond,
	}
}

func status(code int) func(http.Header, int) (int, map[string]string) {
	return func(http.Header, int) (int, map[string]string) { return code, nil }
}

func itoa(n int) string { return strconv.Itoa(n) }

func atoi(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return n
}

func jetstreamFetchWait(d time.Duration) jetstream.FetchOpt { return jetstream.FetchMaxWait(d) }
