package caddymodule

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
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
	ready := func() *App {
		t.Helper()
		app, err := runningApp()
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-app.ready:
		case <-time.After(30 * time.Second):
			t.Fatal("the app did not get ready on the external NATS")
		}
		return app
	}
	state := func(a *App) (*nodeCounter, int) {
		a.runMu.Lock()
		defer a.runMu.Unlock()
		return a.sharing, len(a.replayers)
	}

	first := ready()
	if nc, n := state(first); nc == nil || n != 1 {
		t.Fatalf("first app: counter %v, %d replay consumers; want a counter and 1", nc, n)
	}
	cfg = g.cfg
	cfg.Destinations += destination("two", sink.srv.URL, "")
	g.load(cfg)
	second := ready()
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
