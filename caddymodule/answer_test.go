package caddymodule

import (
	"encoding/json"
	"net/http"
	"testing"

	"go.uber.org/zap/zapcore"
)

// TestProblemBodies: every problem renders as an RFC 9457 body whose
// status matches the answer's and whose type is a stable URN.
func TestProblemBodies(t *testing.T) {
	gone := newProblemWith(http.StatusGone, "version-retired", "Retired.", zapcore.InfoLevel, map[string]any{"current_versions": []string{"v2"}})
	for _, p := range []*problem{
		problemNotFound, problemMethod, problemTooLarge, problemEncoding, problemBadBody,
		problemSignature, problemForbidden, problemHeaders, problemTimeout, problemRateIP,
		problemRateSource, problemNotReady, problemStore, gone,
	} {
		var body struct {
			Type, Title, Detail string
			Status              int
			Current             []string `json:"current_versions"`
		}
		if err := json.Unmarshal(p.body, &body); err != nil {
			t.Fatalf("%s: %v", p.slug, err)
		}
		if body.Type != "urn:hookgate:problem:"+p.slug || body.Status != p.status || body.Title != http.StatusText(p.status) || body.Detail == "" {
			t.Errorf("%s: body %s", p.slug, p.body)
		}
		if p == gone && (len(body.Current) != 1 || body.Current[0] != "v2") {
			t.Errorf("extension member lost: %s", p.body)
		}
	}
}
