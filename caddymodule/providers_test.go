package caddymodule

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/hookgate/hookgate/internal/clitest"
)

// The secrets the README exports before running Caddyfile.providers.
var providerSecrets = map[string]string{
	"GITHUB_WEBHOOK_SECRET": "dev-github-secret",
	"STRIPE_WEBHOOK_SECRET": "whsec_dev",
}

// TestProvidersSendCommands: Caddyfile.providers loads as it is (only its
// addresses, store and sink moved to the test's own), and every `caddy
// webhooks send` command that the README and the file's own comment give,
// run as written by a shell in which `caddy` (and `go run ./cmd/caddy`) is
// the real CLI, gets a 2xx; the sink then receives the events.
func TestProvidersSendCommands(t *testing.T) {
	for k, v := range providerSecrets {
		t.Setenv(k, v)
	}
	sk := newSink(t, always(204))
	addr := freeAddr(t)
	loadRepoCaddyfile(t, "Caddyfile.providers", map[string]string{
		"url http://127.0.0.1:8081/sink": "url " + sk.srv.URL + "/sink",
		"\n:8080 {":                      "\nhttp://" + addr + " {",
		"\n:8081 {":                      "\nhttp://" + freeAddr(t) + " {",
	})

	bin := t.TempDir()
	clitest.Shim(t, bin)
	cmds := sendCommands(t)
	if len(cmds) < 4 {
		t.Fatalf("found %d send commands in README.md and Caddyfile.providers, want at least 4: did their shape change?", len(cmds))
	}
	for _, c := range cmds {
		line := strings.NewReplacer("go run ./cmd/caddy ", "caddy ", "localhost:8080", addr).Replace(c)
		sh := exec.Command("sh", "-c", line)
		sh.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
		out, err := sh.CombinedOutput()
		if err != nil || !strings.Contains(string(out), " 200 OK") {
			t.Errorf("%s\n%v\n%s", c, err, out)
		}
	}
	t.Logf("%d send commands answered 2xx", len(cmds))
	waitFor(t, 10*time.Second, "the events at the sink", func() bool {
		bodies, _ := sk.received()
		var github, stripe bool
		for _, b := range bodies {
			github = github || strings.Contains(string(b), `"zen"`)
			stripe = stripe || strings.Contains(string(b), `"invoice.paid"`)
		}
		return github && stripe
	})
}

// loadRepoCaddyfile loads the repository's Caddyfile name with its
// store, admin endpoint and NATS listener moved out of the way and the
// replacements made (each must match once), and stops Caddy when the
// test ends.
func loadRepoCaddyfile(t *testing.T, name string, replacements map[string]string) {
	t.Helper()
	loadRepoCaddyfileEdit(t, name, func(cfg string) string { return cfg }, replacements)
}

// loadRepoCaddyfileEdit is loadRepoCaddyfile with edit applied to the
// file's text first.
func loadRepoCaddyfileEdit(t *testing.T, name string, edit func(string) string, replacements map[string]string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", name))
	if err != nil {
		t.Fatal(err)
	}
	cfg := edit(string(b))
	dir := t.TempDir()
	replacements["\tadmin localhost:2019\n"] = "\tadmin off\n\tpersist_config off\n\tstorage file_system " + dir + "/caddy\n"
	replacements["store ./data"] = "store " + dir + "/store"
	replacements["listen 127.0.0.1:4222"] = "listen off"
	for old, repl := range replacements {
		if strings.Count(cfg, old) != 1 {
			t.Fatalf("%s no longer holds %q once: update this test", name, old)
		}
		cfg = strings.Replace(cfg, old, repl, 1)
	}
	if err := loadCaddyfile(cfg); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := caddy.Stop(); err != nil {
			t.Errorf("caddy stop: %v", err)
		}
	})
}

// TestExampleDashboard: Caddyfile.example's dashboard asks for the login
// the README gives, and shows the demo event with it.
func TestExampleDashboard(t *testing.T) {
	addr, dash := freeAddr(t), freeAddr(t)
	loadRepoCaddyfile(t, "Caddyfile.example", map[string]string{
		"\n:8080 {": "\nhttp://" + addr + " {",
		"\n:8081 {": "\nhttp://" + freeAddr(t) + " {",
		"\n:8082 {": "\nhttp://" + dash + " {",
	})
	g := &gateway{t: t, addr: addr}
	if st, _, b := g.post("/webhooks/v1/demo", []byte(`{"hello":"world"}`), map[string]string{"X-Demo-Id": "42"}); st != http.StatusOK {
		t.Fatalf("the README's curl: %d %s", st, b)
	}
	get := func(user, pass string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+dash+"/api/events", nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		// bcrypt under the race detector takes seconds.
		resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("", ""); code != http.StatusUnauthorized {
		t.Errorf("without a login: %d, want 401", code)
	}
	if code, _ := get("admin", "wrong"); code != http.StatusUnauthorized {
		t.Errorf("with a wrong password: %d, want 401", code)
	}
	if code, body := get("admin", "hookgate-demo"); code != http.StatusOK || !strings.Contains(body, `"id":"demo:42"`) {
		t.Errorf("with the README's login: %d %s", code, body)
	}
}

// sendCommands returns the `caddy webhooks send` command lines of the
// README's shell blocks and of Caddyfile.providers' comment, each joined
// into one line where it continues with a backslash.
func sendCommands(t *testing.T) []string {
	t.Helper()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	for _, m := range regexp.MustCompile("(?ms)^```sh\n(.*?)^```").FindAllStringSubmatch(string(readme), -1) {
		text.WriteString(m[1])
	}
	providers, err := os.ReadFile(filepath.Join("..", "Caddyfile.providers"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(providers), "\n") {
		if rest, ok := strings.CutPrefix(l, "#   "); ok {
			text.WriteString(rest + "\n")
		}
	}
	joined := regexp.MustCompile(`\\\n\s*`).ReplaceAllString(text.String(), "")
	var cmds []string
	for _, l := range strings.Split(joined, "\n") {
		if strings.Contains(l, "webhooks send") {
			cmds = append(cmds, strings.TrimSpace(l))
		}
	}
	return cmds
}
