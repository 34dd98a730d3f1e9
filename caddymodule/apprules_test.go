package caddymodule

import (
	"fmt"
	"strings"
	"testing"
)

// appCaddyfile is a valid site with lines added to the webhooks block,
// which starts on line 2, so its first added line is line 4.
func appCaddyfile(lines string) string {
	return fmt.Sprintf("{\n\twebhooks {\n\t\tstore /tmp/hookgate-apprules\n\t\t%s\n\t}\n}\n:8080 {\n\twebhook_ingest {\n\t\tsource a {\n\t\t\tverify none\n\t\t}\n\t}\n}\n", lines)
}

// TestAppErrors: an error in the webhooks global option names the option
// (not the webhook_ingest handler that may have loaded the app), keeps the
// file and line where the Caddyfile parser can check it, and says which
// environment variable or file a placeholder is missing.
func TestAppErrors(t *testing.T) {
	t.Setenv("HOOKGATE_TEST_EMPTY", "")
	for _, tc := range []struct {
		name, lines string
		want        []string
	}{
		{"max_event_size", "max_event_size 100MiB", []string{"Caddyfile:4", "at most 64MiB"}},
		{"listen without port", "listen nats.internal", []string{"Caddyfile:4", `listen "nats.internal"`, "host:port"}},
		{"listen bad port", "listen 127.0.0.1:http", []string{"Caddyfile:4", `port "http"`}},
		{"nkey seed", "nkey SUAMK2FG4MI6UE3ACF3FK3OIQBCEIEZV7NSWFFEW63UXMRLFM2XLAXK4GY", []string{"Caddyfile:4", "seed (a secret)"}},
		{"nkey garbage", "nkey hello", []string{"Caddyfile:4", `nkey "hello"`}},
		{"dedup after retention", "retention 1h\n\t\tdedup_window 2h", []string{"Caddyfile:5", "dedup_window 2h0m0s is longer than retention 1h0m0s"}},
		{"retention after dedup", "dedup_window 2h\n\t\tretention 1h", []string{"Caddyfile:5", "longer than retention"}},
		{"dedup above the default retention", "dedup_window 30d", []string{"dedup_window 720h0m0s is longer than retention 168h0m0s"}},
		{"unset env", "user svc\n\t\tpassword {env.HOOKGATE_TEST_NEVER_SET}", []string{"password: {env.HOOKGATE_TEST_NEVER_SET}", "environment variable HOOKGATE_TEST_NEVER_SET, which is not set"}},
		{"empty env", "user {env.HOOKGATE_TEST_EMPTY}", []string{"user: {env.HOOKGATE_TEST_EMPTY}", "HOOKGATE_TEST_EMPTY, which is empty"}},
		{"store from an unset env", "store {env.HOOKGATE_TEST_NO_STORE}", []string{"store: {env.HOOKGATE_TEST_NO_STORE}", "HOOKGATE_TEST_NO_STORE, which is not set"}},
		{"tls key from an unset env", "tls /tmp/cert.pem {env.HOOKGATE_TEST_NO_KEY}", []string{"tls key: {env.HOOKGATE_TEST_NO_KEY}", "HOOKGATE_TEST_NO_KEY, which is not set"}},
		{"missing file", "user svc\n\t\tpassword {file./nonexistent/nats-password}", []string{"password: {file./nonexistent/nats-password}", "file /nonexistent/nats-password, which does not exist"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Apps provision in random order; the handler may load the
			// app first. Either way the error names the option.
			for range 4 {
				_, err := loadErr(appCaddyfile(tc.lines))
				if err == nil {
					t.Fatal("loaded")
				}
				for _, w := range append([]string{"webhooks global option: "}, tc.want...) {
					if !strings.Contains(err.Error(), w) {
						t.Fatalf("error does not say %q:\n%v", w, err)
					}
				}
			}
		})
	}
}
