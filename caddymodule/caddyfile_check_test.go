package caddymodule

import (
	"strings"
	"testing"
)

// TestConfigErrorsNameTheirLine: mistakes in a webhook_ingest block that
// Provision used to be the first to find are reported while the Caddyfile
// is parsed, with the file and line of the block that holds them.
func TestConfigErrorsNameTheirLine(t *testing.T) {
	// Line 7 is webhook_ingest's first inner line.
	site := func(body string) string {
		return "{\n\twebhooks {\n\t\tstore " + t.TempDir() + "\n\t\tlisten off\n\t}\n}\n:8080 {\n\twebhook_ingest {\n" + body + "\n\t}\n}\n"
	}
	tests := []struct {
		name, body, want string
	}{
		{"unknown scheme", "source a {\nverify nosuch secret\n}", `source "a": verify: unknown scheme "nosuch" (known: `},
		{"unknown scheme with a placeholder", "source a {\ntolerance 1m\nverify gthub {env.X}\n}", `source "a": verify: unknown scheme "gthub"`},
		{"none with a secret", "source a {\nverify none s3cret\n}", `source "a": verify: `},
		{"bad literal key", "source a {\nverify discord not-hex\n}", `source "a": verify: `},
		{"max_ratio without gzip", "source a {\nverify none\nmax_ratio 10\n}", `source "a": max_ratio 10: applies to gzip bodies only`},
		{"duplicate source", "source a {\nverify none\n}\nsource a {\nverify none\n}", `source "a" is defined twice`},
		{"source version not in handler", "versions v1\nsource a {\nverify none\nversions v2\n}", `source "a": versions: "v2" is not among the handler's versions`},
		{"deprecate unknown version", "deprecate v9 2027-06-30\nsource a {\nverify none\n}", "deprecate v9: not among the versions"},
		{"retire an accepted version", "versions v1 v2\nretire v1\nsource a {\nverify none\n}", "retire v1: v1 is also among the versions"},
		{"no source", "versions v1", "no source: add at least one"},
		{"relative prefix", "prefix hooks\nsource a {\nverify none\n}", `prefix "hooks" must start with /`},
	}
	wantLine := map[string]string{
		"unknown scheme": "Caddyfile:10", "unknown scheme with a placeholder": "Caddyfile:11",
		"none with a secret": "Caddyfile:10", "bad literal key": "Caddyfile:10",
		"max_ratio without gzip": "Caddyfile:9", "duplicate source": "Caddyfile:12",
		"source version not in handler": "Caddyfile:10",
		// Checks across the block: its closing brace.
		"deprecate unknown version": "Caddyfile:13", "retire an accepted version": "Caddyfile:14",
		"no source": "Caddyfile:10", "relative prefix": "Caddyfile:13",
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parsing, err := loadErr(site(tt.body))
			if err == nil {
				t.Fatalf("config accepted; want %q", tt.want)
			}
			if !parsing || !strings.Contains(err.Error(), tt.want) || !strings.HasSuffix(err.Error(), ", at "+wantLine[tt.name]) {
				t.Fatalf("error %q (from parsing: %v)\nwant one from parsing with %q, at %s", err, parsing, tt.want, wantLine[tt.name])
			}
		})
	}
}

// TestSecretPlaceholderErrors: a secret whose environment variable or file
// is missing is reported by the placeholder and what it needed, never by
// its value, for the source that holds it.
func TestSecretPlaceholderErrors(t *testing.T) {
	site := func(verify string) string {
		return "{\n\twebhooks {\n\t\tstore " + t.TempDir() + "\n\t\tlisten off\n\t}\n}\n:8080 {\n\twebhook_ingest {\n\t\tsource github {\n\t\t\t" + verify + "\n\t\t}\n\t}\n}\n"
	}
	t.Setenv("HOOKGATE_TEST_SET_SECRET", "hunter2")
	for _, tc := range []struct{ verify, want string }{
		{"verify github {env.HOOKGATE_TEST_SET_SECRET} {env.HOOKGATE_TEST_UNSET_SECRET}",
			`source "github": verify: secret {env.HOOKGATE_TEST_UNSET_SECRET}: environment variable HOOKGATE_TEST_UNSET_SECRET is not set or empty`},
		{"verify github {file./nonexistent/github-secret}",
			`source "github": verify: secret {file./nonexistent/github-secret}: file /nonexistent/github-secret is missing, unreadable or empty`},
		{"verify github x{env.HOOKGATE_TEST_UNSET_SECRET}", `source "github": verify: secret 1: `},
	} {
		_, err := loadErr(site(tc.verify))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v\nwant %q", tc.verify, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: the error holds a secret: %v", tc.verify, err)
		}
	}
}
