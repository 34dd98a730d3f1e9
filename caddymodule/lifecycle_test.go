package caddymodule

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/zap"

	"github.com/hookgate/hookgate/event"
	"github.com/hookgate/hookgate/internal/clitest"
)

// TestReloadWhilePosting reloads the config again and again while deliveries
// keep coming: every 2xx'd event is stored, and the embedded server is the
// same one throughout (neither restarted nor opened twice).
func TestReloadWhilePosting(t *testing.T) {
	g := startGateway(t, gatewayConfig{})
	cfg := g.cfg
	before := g.engine()

	var (
		mu       sync.Mutex
		acked    = map[string]bool{}
		failures atomic.Int64
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("w%d-%d", w, i)
				req, _ := http.NewRequest("POST", g.url("/webhooks/v1/demo"), strings.NewReader(`{"n":1}`))
				req.Header.Set("X-Id", id)
				resp, err := testClient.Do(req)
				if err != nil {
					if failures.Add(1) == 1 {
						t.Logf("first failure: %v", err)
					}
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode/100 == 2 {
					mu.Lock()
					acked["demo:"+id] = true
					mu.Unlock()
				} else if failures.Add(1) == 1 {
					t.Logf("first failure: status %d %s", resp.StatusCode, b)
				}
			}
		}()
	}
	for i := range 6 {
		time.Sleep(150 * time.Millisecond)
		// Alternate a setting so each load is a real change.
		c := cfg
		c.Ingest = fmt.Sprintf("\t\tstatus %d", 200+i%2*2)
		g.load(c)
	}
	time.Sleep(150 * time.Millisecond)
	close(stop)
	wg.Wait()

	if after := g.engine(); after != before {
		t.Fatal("the reload replaced the embedded NATS server")
	}
	if n, _ := engines.References(g.store); n != 1 {
		t.Fatalf("store referenced %d times after the reloads, want 1", n)
	}
	stored := map[string]bool{}
	for _, m := range g.stored(event.StreamName) {
		stored[m.Header.Get(event.HeaderID)] = true
	}
	lost := 0
	for id := range acked {
		if !stored[id] {
			lost++
		}
	}
	t.Logf("%d deliveries acknowledged across 6 reloads, %d not acknowledged", len(acked), failures.Load())
	if lost > 0 {
		t.Fatalf("%d acknowledged events are not in the stream", lost)
	}
	if len(acked) < 50 {
		t.Fatalf("only %d deliveries acknowledged: the gateway was mostly unavailable during reloads", len(acked))
	}
}

// TestRestartKeepsEvents stops the gateway and starts it again on the same
// store: events acknowledged before are still there and still forwarded.
// (The breaker is off: an open breaker pauses the consumer for its cooldown,
// and that pause rightly outlives a restart.)
func TestRestartKeepsEvents(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	sk := newSink(t, func(int64) int {
		if down.Load() {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	g := startGateway(t, gatewayConfig{Destinations: destination("sink", sk.srv.URL, "\t\t\tmax_attempts 1000\n\t\t\tbreaker off")})
	cfg := g.cfg
	for i := range 5 {
		if status, _, b := g.post("/webhooks/v1/demo", []byte(fmt.Sprint(i)), map[string]string{"X-Id": fmt.Sprint("r", i)}); status != 200 {
			t.Fatalf("status %d %s", status, b)
		}
	}
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	down.Store(false)
	callsBefore := sk.calls.Load()
	g.load(cfg)
	if n := len(g.stored(event.StreamName)); n != 5 {
		t.Fatalf("%d events in the stream after restart, want 5", n)
	}
	// An event Nak'd with a delay before the restart, or in transit to the
	// stopping forwarder, comes back when its ack wait (timeout 2s + 30s)
	// ends: the server keeps Nak delays in memory only.
	waitFor(t, 45*time.Second, "the 5 events to be forwarded after the restart", func() bool {
		bodies, _ := sk.received()
		seen := map[string]bool{}
		for _, b := range bodies[callsBefore:] {
			seen[string(b)] = true
		}
		return len(seen) == 5
	})
}

// lockHolderEnv makes the test binary a second process that holds a store's
// lock (see TestMain).
const lockHolderEnv = "HOOKGATE_TEST_HOLD_LOCK"

func TestMain(m *testing.M) {
	if clitest.Child() {
		// Behave as the caddy command, for tests of the CLI.
		caddycmd.Main()
		os.Exit(0)
	}
	if dir := os.Getenv(lockHolderEnv); dir != "" {
		if _, err := lockStore(dir); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("locked")
		// Hold the lock until the parent closes stdin.
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestStoreLockedByAnotherProcess: a second process on the same store fails
// to start with an error that says what to do, instead of corrupting it.
func TestStoreLockedByAnotherProcess(t *testing.T) {
	root := t.TempDir()
	store := root + "/store"
	if err := os.MkdirAll(store, 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), lockHolderEnv+"="+store)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		_ = cmd.Wait()
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "locked" {
		t.Fatalf("lock holder said %q: %v", line, err)
	}
	err = loadCaddyfile(gatewayConfig{Store: root, Addr: freeAddr(t), Sources: demoSources}.caddyfile())
	if err == nil {
		_ = caddy.Stop()
		t.Fatal("a second process opened a locked store")
	}
	if !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("error %q does not say the store is in use", err)
	}
	if _, ok := engines.References(store); ok {
		t.Fatal("a failed start left an engine in the pool")
	}
}

// TestListenPortTaken: a NATS listen address held by another process
// fails start-up at once (not after the 30s readiness wait) with an error
// that says what to change, and leaves nothing behind.
func TestListenPortTaken(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	root := t.TempDir()
	cfg := gatewayConfig{Store: root, Addr: freeAddr(t), Sources: demoSources, Global: "\t\tlisten " + held.Addr().String()}
	start := time.Now()
	err = loadCaddyfile(cfg.caddyfile())
	took := time.Since(start)
	if err == nil {
		_ = caddy.Stop()
		t.Fatal("the gateway started on a taken NATS port")
	}
	t.Logf("failed after %s: %v", took, err)
	for _, want := range []string{held.Addr().String(), "listen off", "another port"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q: %v", want, err)
		}
	}
	if took >= startTimeout {
		t.Errorf("start-up waited the whole readiness timeout (%s) before failing", took)
	}
	if _, ok := engines.References(filepath.Join(root, "store")); ok {
		t.Fatal("a failed start left an engine in the pool")
	}
	// The store is not left locked: the same config on a free port starts.
	cfg.Global = "\t\tlisten " + freeAddr(t)
	if err := loadCaddyfile(cfg.caddyfile()); err != nil {
		t.Fatalf("the store stayed unusable after the failed start: %v", err)
	}
	_ = caddy.Stop()
}

// TestStartInterrupted: when the process is exiting (SIGTERM, SIGINT),
// start-up gives up instead of holding Caddy's config lock, so the signal
// is honoured.
func TestStartInterrupted(t *testing.T) {
	// Not t.TempDir: the interrupted Start may still write while the
	// test ends.
	dir, err := os.MkdirTemp("", "hookgate-interrupted")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.NewServer(&server.Options{JetStream: true, StoreDir: dir, DontListen: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		srv.Shutdown()
		srv.WaitForShutdown()
		_ = os.RemoveAll(dir)
	}()
	nl := &natsLogger{log: zap.NewNop()}
	if err := runServer(srv, nl, func() bool { return true }, time.Minute); !errors.Is(err, errStartInterrupted) {
		t.Fatalf("runServer while exiting: %v, want errStartInterrupted", err)
	}
}

// TestRunWithTakenPortExits: "caddy run" with a taken NATS port exits on
// its own with the advice on stderr, well before the old 30s readiness
// wait would have ended (the process is killed at 20s).
func TestRunWithTakenPortExits(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	root := t.TempDir()
	cfg := gatewayConfig{Store: root, Addr: freeAddr(t), Sources: demoSources, Global: "\t\tlisten " + held.Addr().String()}
	file := filepath.Join(root, "Caddyfile")
	if err := os.WriteFile(file, []byte(cfg.caddyfile()), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "run", "--config", file, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOOKGATE_TEST_RUN_MAIN=1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err = cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("caddy run was still starting after 20s:\n%s", stderr.String())
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("caddy run: %v, want a non-zero exit", err)
	}
	if !strings.Contains(stderr.String(), "listen off") || !strings.Contains(stderr.String(), held.Addr().String()) {
		t.Fatalf("stderr does not say what to change:\n%s", stderr.String())
	}
}
