package caddymodule

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hookgate/hookgate/event"
)

// adminPost posts body to the admin API at addr and returns the status and
// answer.
func adminPost(t *testing.T, addr, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestAdminBackupRestore backs up a running store through the admin API,
// adds an event, restores with force and finds the store as it was at the
// backup; and checks the refusals on the way.
func TestAdminBackupRestore(t *testing.T) {
	admin := freeAddr(t)
	g := startGateway(t, gatewayConfig{Admin: admin})
	for _, id := range []string{"b-1", "b-2"} {
		if status, _, b := g.post("/webhooks/v1/demo", []byte(`{}`), map[string]string{"X-Id": id}); status != http.StatusOK {
			t.Fatalf("%s: %d %s", id, status, b)
		}
	}
	dir := filepath.Join(t.TempDir(), "backup")
	bodyFor := func(dir string, force bool) string {
		b, _ := json.Marshal(backupRequest{Dir: dir, Force: force})
		return string(b)
	}

	if status, b := adminPost(t, admin, "/webhooks/backup", bodyFor("relative/dir", false)); status != http.StatusBadRequest {
		t.Errorf("relative dir: %d %s, want 400", status, b)
	}
	status, b := adminPost(t, admin, "/webhooks/backup", bodyFor(dir, false))
	if status != http.StatusOK {
		t.Fatalf("backup: %d %s", status, b)
	}
	// No destination, so no delivery-state bucket: the two streams.
	var m backupManifest
	if err := json.Unmarshal([]byte(b), &m); err != nil || len(m.Streams) != 2 || m.Streams[0].Name != event.StreamName || m.Streams[0].Messages != 2 {
		t.Fatalf("manifest %s (%v): want WEBHOOKS with 2 messages, then WEBHOOKS_DLQ", b, err)
	}
	if status, b := adminPost(t, admin, "/webhooks/backup", bodyFor(dir, false)); status != http.StatusInternalServerError || !strings.Contains(b, "not empty") {
		t.Errorf("backup into a used dir: %d %s, want 500 naming the non-empty directory", status, b)
	}
	if status, b := adminPost(t, admin, "/webhooks/restore", bodyFor(t.TempDir(), false)); status != http.StatusBadRequest || !strings.Contains(b, backupManifestFile) {
		t.Errorf("restore from a dir without a manifest: %d %s, want 400", status, b)
	}

	if status, _, b := g.post("/webhooks/v1/demo", []byte(`{}`), map[string]string{"X-Id": "after-backup"}); status != http.StatusOK {
		t.Fatalf("after-backup: %d %s", status, b)
	}
	if status, b := adminPost(t, admin, "/webhooks/restore", bodyFor(dir, false)); status != http.StatusConflict {
		t.Errorf("restore over events without force: %d %s, want 409", status, b)
	}
	if status, b := adminPost(t, admin, "/webhooks/restore", bodyFor(dir, true)); status != http.StatusOK {
		t.Fatalf("restore: %d %s", status, b)
	}
	var ids []string
	for _, msg := range g.stored(event.StreamName) {
		ids = append(ids, msg.Header.Get(event.HeaderID))
	}
	if strings.Join(ids, " ") != "demo:b-1 demo:b-2" {
		t.Errorf("restored stream holds %v, want the two events of the backup", ids)
	}
	// Ingest goes on into the restored stream.
	if status, _, b := g.post("/webhooks/v1/demo", []byte(`{}`), map[string]string{"X-Id": "after-restore"}); status != http.StatusOK {
		t.Fatalf("after-restore: %d %s", status, b)
	}
	if _, err := os.Stat(filepath.Join(dir, event.StreamName+".snapshot")); err != nil {
		t.Error(err)
	}
}
