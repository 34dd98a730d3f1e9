package caddymodule

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestVerifyOptionPlaceholders: a verify option's {env.*} placeholder is
// resolved like a secret's, so Meta's hub.challenge succeeds with the
// token from the environment and fails with the placeholder's text; an
// unset variable is a config error that names it; a scheme's own
// placeholders ({timestamp}, {body} in an hmac template) are kept.
func TestVerifyOptionPlaceholders(t *testing.T) {
	t.Setenv("HOOKGATE_TEST_META_TOKEN", "token-from-env")
	g := startGateway(t, gatewayConfig{Sources: `
		source meta {
			verify meta meta-app-secret {
				verify_token {env.HOOKGATE_TEST_META_TOKEN}
			}
		}
		source signed {
			verify hmac hmac-secret {
				header X-Sig
				timestamp_header X-Ts
				template {timestamp}.{body}
			}
		}`})
	get := func(token string) (int, string) {
		t.Helper()
		resp, err := testClient.Get(g.url("/webhooks/v1/meta?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=" + token))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, body := get("token-from-env"); status != http.StatusOK || body != "1158201444" {
		t.Errorf("the token from the environment: %d %q, want 200 and the challenge", status, body)
	}
	if status, _ := get("%7Benv.HOOKGATE_TEST_META_TOKEN%7D"); status != http.StatusUnauthorized {
		t.Errorf("the placeholder's text as the token: %d, want 401", status)
	}

	site := "{\n\twebhooks {\n\t\tstore " + t.TempDir() + "\n\t\tlisten off\n\t}\n}\n:8080 {\n\twebhook_ingest {\n\t\tsource meta {\n\t\t\tverify meta s {\n\t\t\t\tverify_token {env.HOOKGATE_TEST_UNSET_TOKEN}\n\t\t\t}\n\t\t}\n\t}\n}\n"
	_, err := loadErr(site)
	want := "option {env.HOOKGATE_TEST_UNSET_TOKEN}: environment variable HOOKGATE_TEST_UNSET_TOKEN is not set or empty"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("unset option variable: error %v, want %q", err, want)
	}
}
