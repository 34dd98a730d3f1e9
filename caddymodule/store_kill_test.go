package caddymodule

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookgate/hookgate/event"
)

// TestKill9UnderLoadKeepsEvery2xx runs the gateway (sync always, group
// commit) as a real caddy process, posts to it from 16 concurrent clients,
// kills it with SIGKILL in the middle of the load, and opens the store
// again: every event that was answered 2xx is there.
func TestKill9UnderLoadKeepsEvery2xx(t *testing.T) {
	root := t.TempDir()
	addr := freeAddr(t)
	cfg := gatewayConfig{Store: root, Addr: addr, Sources: demoSources}
	file := filepath.Join(root, "Caddyfile")
	if err := os.WriteFile(file, []byte(cfg.caddyfile()), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "run", "--config", file, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOOKGATE_TEST_RUN_MAIN=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
		<-exited
	}()
	g := &gateway{t: t, store: filepath.Join(root, "store"), addr: addr, cfg: cfg}
	waitFor(t, 30*time.Second, "the child gateway to answer", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})

	var (
		mu    sync.Mutex
		acked []string
		stop  atomic.Bool
		wg    sync.WaitGroup
	)
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				id := fmt.Sprintf("k%d-%d", w, i)
				if status, _ := postOne(g, id); status/100 == 2 {
					mu.Lock()
					acked = append(acked, "demo:"+id)
					mu.Unlock()
				}
			}
		}()
	}
	waitFor(t, 30*time.Second, "500 acknowledged events", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 500
	})
	if err := cmd.Process.Kill(); err != nil { // SIGKILL, mid-load
		t.Fatal(err)
	}
	<-exited
	exited <- nil // for the deferred Kill
	stop.Store(true)
	wg.Wait()

	g = startGateway(t, cfg)
	stored := map[string]bool{}
	for _, m := range g.stored(event.StreamName) {
		stored[m.Header.Get(event.HeaderID)] = true
	}
	lost := 0
	for _, id := range acked {
		if !stored[id] {
			lost++
		}
	}
	t.Logf("%d events acknowledged before SIGKILL, %d stored after restart", len(acked), len(stored))
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged events are missing after kill -9", lost, len(acked))
	}
}
