package caddymodule

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestPrefixTrap: deliveries for a known source under another prefix get
// 404 and one warning naming the prefix to set; paths that are not
// misplaced deliveries (scanners, unknown sources) warn about nothing.
func TestPrefixTrap(t *testing.T) {
	for _, tc := range []struct {
		name  string
		paths []string
		want  string // the prefix the warning suggests; "" for none
	}{
		{"handle /hooks/*", []string{"/hooks/v1/demo", "/hooks/v1/demo", "/hooks/v0/demo"}, "prefix /hooks"},
		{"handle_path strips", []string{"/v1/demo"}, "prefix /"},
		{"deeper", []string{"/api/in/v1/demo"}, "prefix /api/in"},
		{"scanners", []string{"/wp-login.php", "/.env", "/hooks/v1/nosuch", "/hooks/v9/demo", "/webhooks/v1/nosuch"}, ""},
		{"odd bytes", []string{"/a%0Ab/v1/demo", "/" + strings.Repeat("a", maxTrapPrefix+1) + "/v1/demo"}, ""},
	} {
		core, logs := observer.New(zapcore.WarnLevel)
		h := newTestHandler(t, &Handler{
			Retired: []string{"v0"},
			Sources: []*Source{{Name: "demo", Verify: &VerifyConfig{Scheme: "none"}}},
		}, nil)
		h.logger = zap.New(core)
		for _, p := range tc.paths {
			w := httptest.NewRecorder()
			r := httptest.NewRequest(http.MethodPost, "http://x"+p, strings.NewReader("{}"))
			if err := h.ServeHTTP(w, r, nil); err != nil {
				t.Fatal(err)
			}
			if w.Code != http.StatusNotFound {
				t.Fatalf("%s: %s: status %d, want 404", tc.name, p, w.Code)
			}
		}
		entries := logs.All()
		if tc.want == "" {
			if len(entries) != 0 {
				t.Fatalf("%s: warned %v", tc.name, entries)
			}
			continue
		}
		if len(entries) != 1 || !strings.Contains(entries[0].Message, "'"+tc.want+"'") {
			t.Fatalf("%s: want one warning saying %q, got %v", tc.name, tc.want, entries)
		}
	}
}
