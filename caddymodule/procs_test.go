package caddymodule

import (
	"runtime"
	"testing"

	"go.uber.org/zap"
)

// TestTwoProcsOnlyForEmbeddedStore: with one P, the embedded store raises
// GOMAXPROCS to 2 (its fsyncs block a P in this process); an external
// NATS, which syncs on its own servers, leaves it at 1.
func TestTwoProcsOnlyForEmbeddedStore(t *testing.T) {
	t.Setenv("GOMAXPROCS", "") // an explicit setting is left alone
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))

	// Nothing listens on port 1: the engine keeps retrying in the background.
	ext, err := newExternalEngine(engineConfig{externalEngineConfig: externalEngineConfig{NATSURLs: "nats://127.0.0.1:1"}}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	ext.nc.Close()
	if n := runtime.GOMAXPROCS(0); n != 1 {
		t.Fatalf("an external NATS engine set GOMAXPROCS to %d, want 1 (left alone)", n)
	}

	emb, err := newEngine(engineConfig{StoreDir: t.TempDir(), ServerName: "procs", SyncAlways: true,
		MaxStore: 1 << 30, MaxPayload: 1 << 20}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer emb.shutdown()
	if n := runtime.GOMAXPROCS(0); n != 2 {
		t.Fatalf("the embedded store left GOMAXPROCS at %d, want 2", n)
	}
}
