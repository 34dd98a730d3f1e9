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

// TestAppendAcceptBody: the 2xx body is byte for byte what json.Marshal
// writes, for plain ids and for ids with bytes JSON escapes.
func TestAppendAcceptBody(t *testing.T) {
	for _, id := range []string{
		"github:72d3162e-cc78-11e3-81ab-4c9367dc0958", "demo:", "",
		`demo:a"b`, `demo:a\b`, "demo:<script>", "demo:a&b", "demo:tab\there", "demo:é", "demo:\x7f",
	} {
		for _, dup := range []bool{false, true} {
			want, err := json.Marshal(acceptBody{ID: id, Duplicate: dup})
			if err != nil {
				t.Fatal(err)
			}
			if got := appendAcceptBody([]byte("keep"), id, dup); string(got) != "keep"+string(want) {
				t.Errorf("appendAcceptBody(%q, %v) = %s, want keep%s", id, dup, got, want)
			}
		}
	}
}
