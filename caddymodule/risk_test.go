package caddymodule

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRiskWarnings: provisioning a real Caddyfile warns about a lazy sync
// interval and about a NATS listener reachable beyond the host without
// TLS, saying the risk and what to set; safe settings warn about nothing.
func TestRiskWarnings(t *testing.T) {
	for _, tc := range []struct {
		name   string
		global string
		want   []string
	}{
		{"defaults", "", nil},
		{"loopback listener", "listen 127.0.0.1:4333", nil},
		{"lazy sync", "sync 2s", []string{"sync 2s", "power loss", "up to 2s of acknowledged events", "sync always"}},
		{"open listener", "listen 0.0.0.0:4333", []string{"listen 0.0.0.0:4333", "without TLS", "clear text", "tls <cert> <key>"}},
		{"user without a password", "user svc", []string{"user svc has no password", "empty password", "password {file.<path>}"}},
		{"open listener with a password", "listen :4333\n\t\tuser svc\n\t\tpassword pw", []string{"listen :4333", "NATS password"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			logFile := filepath.Join(dir, "caddy.log")
			cfg := fmt.Sprintf(`{
	log {
		output file %s
		level WARN
	}
	webhooks {
		store %s/store
		%s
	}
}
:8080 {
	webhook_ingest {
		source a {
			verify none
		}
	}
}
`, logFile, dir, tc.global)
			if _, err := loadErr(cfg); err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(logFile)
			var warned []string
			for _, line := range strings.Split(string(b), "\n") {
				if strings.Contains(line, `"logger":"webhooks"`) {
					warned = append(warned, line)
				}
			}
			if len(tc.want) == 0 {
				if len(warned) > 0 {
					t.Fatalf("warned about safe settings: %v", warned)
				}
				return
			}
			if len(warned) != 1 {
				t.Fatalf("%d warnings, want 1: %v", len(warned), warned)
			}
			for _, w := range tc.want {
				if !strings.Contains(warned[0], w) {
					t.Errorf("warning does not say %q: %s", w, warned[0])
				}
			}
		})
	}
}
