package caddymodule

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/hookgate/hookgate/internal/testcert"
)

// TestREADMEConfigs: every configuration the README shows — whole
// Caddyfiles, destination blocks, source blocks and verify blocks — adapts
// and passes Caddy's validation, so a user who copies one gets a working
// config. Grammar blocks (with <placeholders>) are skipped.
func TestREADMEConfigs(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?ms)^```([a-z]*)\n(.*?)^```").FindAllStringSubmatch(string(b), -1)
	tlsFiles := writeTLSFiles(t, testcert.New(t))
	checked := 0
	for _, m := range blocks {
		if lang := m[1]; lang != "" && lang != "caddyfile" {
			continue
		}
		block := m[2]
		first := strings.TrimSpace(strings.SplitN(strings.TrimSpace(block), "\n", 2)[0])
		var cfg string
		switch {
		case strings.Contains(block, "<") && strings.Contains(block, ">") && !strings.Contains(block, "webhooks.v1"):
			continue // grammar, not a config
		case first == "{":
			cfg = block
		case strings.HasPrefix(first, "destination "):
			cfg = "{\n\twebhooks {\n\t\tlisten off\n" + block + "\n\t}\n}\n:8080 {\n\twebhook_ingest {\n\t\tsource a {\n\t\t\tverify none\n\t\t}\n\t}\n}\n"
		case strings.HasPrefix(first, "source "):
			cfg = readmeSite(block)
		case strings.HasPrefix(first, "verify "):
			cfg = readmeSite("source x {\n" + block + "\n}")
		default:
			continue
		}
		// Log files go to a temporary directory, not where the README says.
		cfg = regexp.MustCompile(`output file \S+`).ReplaceAllString(cfg, "output file "+t.TempDir()+"/readme.log")
		// And certificate files are real ones.
		cfg = regexp.MustCompile(`tls_ca \S+`).ReplaceAllString(cfg, "tls_ca "+tlsFiles+"/ca.pem")
		cfg = regexp.MustCompile(`tls_client_auth \S+ \S+`).ReplaceAllString(cfg, "tls_client_auth "+tlsFiles+"/client.pem "+tlsFiles+"/client-key.pem")
		setReadmeSecrets(t, cfg)
		checked++
		if _, err := loadErr(cfg); err != nil {
			t.Errorf("README block starting %q does not load: %v\n%s", first, err, block)
		}
	}
	if checked < 20 {
		t.Fatalf("only %d README configs checked: did the README's code blocks change shape?", checked)
	}
	t.Logf("%d README configs adapt and validate", checked)
}

// writeTLSFiles writes certs to a directory, as ca.pem, server.pem,
// server-key.pem, client.pem and client-key.pem, and returns it.
func writeTLSFiles(t *testing.T, certs *testcert.Set) string {
	dir := t.TempDir()
	for name, b := range map[string][]byte{
		"ca.pem": certs.CAPEM, "server.pem": certs.ServerCertPEM, "server-key.pem": certs.ServerKeyPEM,
		"client.pem": certs.ClientCertPEM, "client-key.pem": certs.ClientKeyPEM,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func readmeSite(sources string) string {
	return "{\n\twebhooks {\n\t\tlisten off\n\t}\n}\n:8080 {\n\twebhook_ingest {\n" + sources + "\n\t}\n}\n"
}

// setReadmeSecrets gives every {env.X} a value of the shape its scheme
// wants, as the user's environment would, except a rotation's previous or
// secondary secret (a name with PREVIOUS, OLD or SECONDARY): that one stays
// unset, as on a first install, and a config the README shows must load
// without it.
func setReadmeSecrets(t *testing.T, cfg string) {
	line := regexp.MustCompile(`(?m)^.*\{env\.[A-Z0-9_]+\}.*$`)
	name := regexp.MustCompile(`\{env\.([A-Z0-9_]+)\}`)
	rotationOnly := regexp.MustCompile(`PREVIOUS|_OLD|SECONDARY`)
	for _, l := range line.FindAllString(cfg, -1) {
		value := "readme-test-secret"
		switch {
		case strings.Contains(l, "discord"):
			value = strings.Repeat("ab", 32) // a hex Ed25519 public key
		case strings.Contains(l, "standard-webhooks"), strings.Contains(l, "svix"):
			value = "whsec_" + base64.StdEncoding.EncodeToString([]byte("readme-test-secret-32-bytes-long"))
		case strings.Contains(l, "BASE64"):
			value = base64.StdEncoding.EncodeToString([]byte("readme-test-secret"))
		}
		for _, n := range name.FindAllStringSubmatch(l, -1) {
			if !rotationOnly.MatchString(n[1]) {
				t.Setenv(n[1], value)
			}
		}
	}
}

// TestREADMETimeouts: with the README's recommended server timeouts,
// scaled down 20 times, a body that never finishes gets the promised 408
// (not a closed connection), even when read_body cuts it before the
// handler's body_timeout would.
func TestREADMETimeouts(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile(`(?s)timeouts \{(.*?)\}`).FindStringSubmatch(string(b))
	if block == nil {
		t.Fatal("no timeouts block in the README")
	}
	scaled := ""
	for _, name := range []string{"read_header", "read_body", "write", "idle"} {
		m := regexp.MustCompile(`(?m)^\s*` + name + `\s+(\S+)`).FindStringSubmatch(block[1])
		if m == nil {
			t.Fatalf("the README's timeouts have no %s", name)
		}
		d, err := caddy.ParseDuration(m[1])
		if err != nil {
			t.Fatal(err)
		}
		scaled += fmt.Sprintf("\t\t\t%s %s\n", name, d/20)
	}
	g := startEdge(t, edgeConfig{
		gatewayConfig: gatewayConfig{Ingest: "\t\tbody_timeout 1m"},
		Options:       "\tservers {\n\t\ttimeouts {\n" + scaled + "\t\t}\n\t}",
	})
	answer, took := g.slowBody("/webhooks/v1/demo")
	if !strings.Contains(answer, " 408 ") {
		t.Fatalf("with the README's timeouts (%s), a slow body got %q after %s, want 408", strings.Fields(scaled), answer, took)
	}
	g.assertNothingStored()
}
