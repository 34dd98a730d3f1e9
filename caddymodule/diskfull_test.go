package caddymodule

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hookgate/hookgate/event"
)

// mountTmpfs mounts a tmpfs of size bytes on a new directory and unmounts
// it when the test ends; it skips the test where mounting is not allowed.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a %s tmpfs for a full-disk test (needs root with CAP_SYS_ADMIN): %v %s", size, err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}

// fillDisk writes a file until the filesystem is full and returns its path.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling %s: %v", dir, err)
			}
			return path
		}
	}
}

// TestDiskFullRecovers fills the store's filesystem (a 16 MiB tmpfs)
// under a running gateway: from the first refused write on, every request
// gets 503 + Retry-After without waiting out publish_timeout, none gets a
// false 2xx; once space is freed ingestion resumes by itself, without a
// restart, and every acknowledged event is stored exactly once.
func TestDiskFullRecovers(t *testing.T) {
	mnt := mountTmpfs(t, "16m")
	const publishTimeout = 30 * time.Second
	g := startReadyGateway(t, gatewayConfig{
		Store:  mnt,
		Global: "\t\tmax_event_size 1MiB",
		Ingest: fmt.Sprintf("\t\tpublish_timeout %s", publishTimeout),
	})
	body := bytes.Repeat([]byte("x"), 4<<10)
	acked := map[string]bool{}
	n := 0
	post := func() (string, int, http.Header, time.Duration) {
		n++
		id := fmt.Sprint("e", n)
		start := time.Now()
		status, hdr, _ := g.post("/webhooks/v1/demo", body, map[string]string{"X-Id": id})
		if status/100 == 2 {
			acked["demo:"+id] = true
		}
		return id, status, hdr, time.Since(start)
	}
	for range 20 {
		if _, status, _, _ := post(); status != 200 {
			t.Fatalf("status %d before the disk was full", status)
		}
	}

	if status, _, b := g.readiness(http.MethodGet); status != 200 {
		t.Fatalf("readiness before the disk was full: %d %s", status, b)
	}

	filler := fillDisk(t, mnt)
	var refused []string
	for i := 0; len(refused) < 10; i++ {
		if i == 500 {
			t.Fatalf("500 events accepted on a full disk and no 503")
		}
		id, status, hdr, took := post()
		switch {
		case status/100 == 2 && len(refused) == 0:
			continue // fits in the last pages the filler left
		case status != http.StatusServiceUnavailable:
			t.Fatalf("status %d on a full disk, want 503", status)
		case hdr.Get("Retry-After") == "":
			t.Fatal("a 503 on a full disk without Retry-After")
		case took >= publishTimeout:
			t.Fatalf("the 503 came after %s: the request waited out publish_timeout", took)
		}
		if len(refused) == 0 {
			t.Logf("first 503 after %s", took)
		}
		refused = append(refused, id)
	}
	if g.engine().writable() {
		t.Fatal("the engine reports a full store as writable")
	}
	status, hdr, b := g.readiness(http.MethodGet)
	assertNotReady(t, status, hdr, b, "store-full")

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	waitFor(t, 30*time.Second, "ingestion to resume after space was freed", func() bool {
		_, status, hdr, _ := post()
		if status == http.StatusServiceUnavailable && hdr.Get("Retry-After") == "" {
			t.Fatal("a 503 without Retry-After while recovering")
		}
		return status == 200
	})
	t.Logf("ingestion resumed %s after space was freed", time.Since(freed).Round(time.Millisecond))
	for range 20 {
		if _, status, _, _ := post(); status != 200 {
			t.Fatalf("status %d after recovery", status)
		}
	}
	if status, _, b := g.readiness(http.MethodGet); status != 200 {
		t.Fatalf("readiness after recovery: %d %s", status, b)
	}
	// The providers retry what was refused: stored once each.
	for _, id := range refused {
		if status, _, b := g.post("/webhooks/v1/demo", body, map[string]string{"X-Id": id}); status != 200 {
			t.Fatalf("retry of %s: status %d %s", id, status, b)
		}
		acked["demo:"+id] = true
	}

	count := map[string]int{}
	for _, m := range g.stored(event.StreamName) {
		count[m.Header.Get(event.HeaderID)]++
	}
	var lost, twice []string
	for id := range acked {
		if count[id] == 0 {
			lost = append(lost, id)
		}
	}
	for id, c := range count {
		if c > 1 {
			twice = append(twice, id)
		}
	}
	t.Logf("%d events acknowledged, %d stored", len(acked), len(count))
	if len(lost) > 0 || len(twice) > 0 {
		t.Fatalf("acknowledged but not stored: %v; stored more than once: %v", lost, twice)
	}
	if !strings.HasPrefix(g.store, mnt) {
		t.Fatalf("the store %s is not on the tmpfs %s", g.store, mnt)
	}
}
