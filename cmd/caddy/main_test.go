package main

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/hookgate/hookgate/internal/clitest"
)

func TestMain(m *testing.M) {
	if clitest.Child() {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// caddy runs the CLI with args and stdin; it returns the exit code, stdout
// and stderr.
func caddy(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	return clitest.Run(t, stdin, args...)
}

// GitHub's documented test vector: secret "It's a Secret to Everybody",
// body "Hello, World!" (docs.github.com, "Validating webhook deliveries").
const (
	ghSecret = "It's a Secret to Everybody"
	ghBody   = "Hello, World!"
	ghSig    = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
)

func TestListModules(t *testing.T) {
	code, out, errOut := caddy(t, "", "list-modules")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, m := range []string{"webhooks", "http.handlers.webhook_ingest", "admin.api.webhooks", "http.handlers.webhook_dashboard"} {
		if !strings.Contains(out, m+"\n") {
			t.Errorf("list-modules lacks %s", m)
		}
	}
}

func TestVerifyCommand(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		stdin    string
		wantCode int
		wantOut  string // in stdout (exit 0) or stderr
	}{
		{"valid", []string{"--secret", ghSecret, "--header", "X-Hub-Signature-256: " + ghSig}, ghBody, 0, "valid"},
		{"rotated secret", []string{"--secret", "new-secret", "--secret", ghSecret, "--header", "X-Hub-Signature-256: " + ghSig}, ghBody, 0, "valid"},
		{"body changed", []string{"--secret", ghSecret, "--header", "X-Hub-Signature-256: " + ghSig}, ghBody + " ", 1, "invalid"},
		{"wrong secret", []string{"--secret", "nope", "--header", "X-Hub-Signature-256: " + ghSig}, ghBody, 1, "invalid"},
		{"missing header", []string{"--secret", ghSecret}, ghBody, 1, "invalid"},
		{"bad header flag", []string{"--secret", ghSecret, "--header", "no colon"}, ghBody, 2, "want 'Name: value'"},
		{"unknown flag", []string{"--secret", ghSecret, "--frobnicate"}, ghBody, 2, "unknown flag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"webhooks", "verify", "--scheme", "github"}, tt.args...)
			code, out, errOut := caddy(t, tt.stdin, args...)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, out, errOut)
			}
			if !strings.Contains(out+errOut, tt.wantOut) {
				t.Fatalf("output lacks %q\nstdout: %s\nstderr: %s", tt.wantOut, out, errOut)
			}
			if strings.Contains(out+errOut, ghSecret) {
				t.Fatal("the secret was printed")
			}
		})
	}
}

// TestVerifyCommandPinnedClock checks an old Stripe capture with --now.
func TestVerifyCommandPinnedClock(t *testing.T) {
	body := `{"id":"evt_1","type":"invoice.paid"}`
	code, out, errOut := caddy(t, body, "webhooks", "sign", "--scheme", "stripe", "--secret", "whsec_test", "--now", "1600000000")
	if code != 0 {
		t.Fatalf("sign: exit %d: %s", code, errOut)
	}
	sig := strings.TrimSpace(strings.TrimPrefix(out, "Stripe-Signature:"))
	if !strings.HasPrefix(sig, "t=1600000000,") {
		t.Fatalf("sign printed %q", out)
	}
	verifyAt := func(now string) int {
		code, _, _ := caddy(t, body, "webhooks", "verify", "--scheme", "stripe", "--secret", "whsec_test", "--header", "Stripe-Signature: "+sig, "--now", now)
		return code
	}
	if c := verifyAt("1600000100"); c != 0 {
		t.Errorf("within tolerance: exit %d", c)
	}
	if c := verifyAt("1700000000"); c != 1 {
		t.Errorf("years later: exit %d, want 1", c)
	}
}

// TestSendCommand signs and posts to a loopback server that checks the
// signature with the same package.
func TestSendCommand(t *testing.T) {
	var got http.Header
	var gotBody []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		gotBody, _ = io.ReadAll(r.Body)
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	defer srv.Close()
	code, out, errOut := caddy(t, ghBody, "webhooks", "send", "--scheme", "github", "--secret", ghSecret, "--url", srv.URL+"/webhooks/v1/github", "--header", "X-GitHub-Event: ping")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	if got.Get("X-Hub-Signature-256") != ghSig || string(gotBody) != ghBody || got.Get("X-GitHub-Event") != "ping" {
		t.Fatalf("server got %v %q", got, gotBody)
	}
	if !strings.Contains(out, "202 Accepted") || !strings.Contains(out, `{"ok":true}`) {
		t.Fatalf("send printed %q", out)
	}
}

// TestErrorsArePlainText: every error of the webhooks commands is one
// readable line on stderr, "caddy webhooks <cmd>: <what went wrong>", not
// a JSON log line, and the exit codes stay 1 (failed) and 2 (usage).
func TestErrorsArePlainText(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String() // nothing listens there once closed
	l.Close()
	tests := []struct {
		name     string
		args     []string
		stdin    string
		wantCode int
		wantErr  string // the start of stderr
	}{
		{"invalid signature", []string{"verify", "--scheme", "github", "--secret", ghSecret, "--header", "X-Hub-Signature-256: sha256=00"}, ghBody, 1,
			"caddy webhooks verify: invalid: github: "},
		{"missing scheme", []string{"verify", "--secret", ghSecret}, ghBody, 2, "caddy webhooks verify: --scheme is required\n"},
		{"unknown flag", []string{"sign", "--frobnicate"}, "", 2, "caddy webhooks sign: unknown flag: --frobnicate (see 'caddy webhooks sign --help')\n"},
		{"missing argument", []string{"resume"}, "", 2, "caddy webhooks resume: accepts 1 arg(s), received 0 (see 'caddy webhooks resume --help')\n"},
		{"gateway not running", []string{"resume", "orders", "--address", closed}, "", 1,
			"caddy webhooks resume: the admin API is not reachable at " + closed + " (connection refused): is the gateway running? Give its admin address with --address\n"},
		{"send refused", []string{"send", "--scheme", "github", "--secret", ghSecret, "--url", "http://" + closed + "/webhooks/v1/github"}, ghBody, 1,
			"caddy webhooks send: no answer: Post \"http://" + closed + "/webhooks/v1/github\": dial tcp " + closed + ": connect: connection refused\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := caddy(t, tt.stdin, append([]string{"webhooks"}, tt.args...)...)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d", code, tt.wantCode)
			}
			if !strings.HasPrefix(errOut, tt.wantErr) || strings.Count(errOut, "\n") != 1 {
				t.Errorf("stderr %q\nwant one line starting %q\n(stdout %q)", errOut, tt.wantErr, out)
			}
			if strings.Contains(errOut, `"level"`) || strings.Contains(errOut, `\"`) {
				t.Errorf("stderr is a log line or holds escaped JSON: %q", errOut)
			}
		})
	}
}
