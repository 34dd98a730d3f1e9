package caddymodule

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/hookgate/hookgate/event"
)

// TestAppStateIsPerApp: the replay consumers and the gateway counter
// belong to the app that started them. A reload's new app starts its own
// (one replay consumer per destination of the new config), and the old
// app's are stopped and dropped with it: nothing is kept in package state
// that two apps could share or that could outlive its app. Real parts: an
// external in-process JetStream server (so the consumers are shared and
// the gateways counted) and Caddy reloading a Caddyfile.
func TestAppStateIsPerApp(t *testing.T) {
	s := startJetStream(t)
	sink := newDedupSink(t, 0)
	cfg := gatewayConfig{Global: "\t\tnats " + s.ClientURL(), Destinations: destination("one", sink.srv.URL, "")}
	g := startGateway(t, cfg)
	state := func(a *App) (*nodeCounter, int) {
		a.fwdMu.RLock()
		defer a.fwdMu.RUnlock()
		return a.sharing, len(a.replayers)
	}

	first := readyApp(t)
	if nc, n := state(first); nc == nil || n != 1 {
		t.Fatalf("first app: counter %v, %d replay consumers; want a counter and 1", nc, n)
	}
	cfg = g.cfg
	cfg.Destinations += destination("two", sink.srv.URL, "")
	g.load(cfg)
	second := readyApp(t)
	if second == first {
		t.Fatal("the reload kept the same app")
	}
	if nc, n := state(second); nc == nil || n != 2 {
		t.Errorf("reloaded app: counter %v, %d replay consumers; want its own counter and 2", nc, n)
	}
	if nc, n := state(first); nc != nil || n != 0 {
		t.Errorf("stopped app still holds counter %v and %d replay consumers", nc, n)
	}
}

// startJetStream starts a plain JetStream server on a loopback port, with
// no auth, for the test; Cleanup shuts it down.
func startJetStream(t *testing.T) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	return s
}

// TestStatusReadsStreamInfoOnce: GET /webhooks/status on a shared store
// (here an external NATS) asks the server for the WEBHOOKS stream's info
// once, for its store part and its cluster part alike. The requests are
// counted on the server's own $JS.API subject.
func TestStatusReadsStreamInfoOnce(t *testing.T) {
	s := startJetStream(t)
	admin := freeAddr(t)
	startGateway(t, gatewayConfig{Admin: admin, Global: "\t\tnats " + s.ClientURL()})
	readyApp(t)
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var infos atomic.Int64
	sub, err := nc.Subscribe("$JS.API.STREAM.INFO."+event.StreamName, func(*nats.Msg) { infos.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	const calls = 3
	for range calls {
		var st GatewayStatus
		adminJSON(t, admin, http.MethodGet, "/webhooks/status", "", http.StatusOK, &st)
		if !st.Store.Up || st.Cluster == nil || st.Cluster.Mode != "external" {
			t.Fatalf("status %+v; want the store up and the external cluster part", st)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if n := infos.Load(); n != calls {
		t.Errorf("%d WEBHOOKS info requests for %d status calls, want one each", n, calls)
	}
}

// readyApp returns the running webhooks app once it is ready (its setup
// on a shared store runs in the background).
func readyApp(t *testing.T) *App {
	t.Helper()
	app, err := runningApp()
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-app.ready:
	case <-time.After(30 * time.Second):
		t.Fatal("the app did not get ready")
	}
	return app
}
