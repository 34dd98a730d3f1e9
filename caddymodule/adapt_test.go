package caddymodule

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddytest"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

var update = flag.Bool("update", false, "rewrite the JSON half of testdata/caddyfile_adapt/*.caddyfiletest")

const adaptSeparator = "\n----------\n"

// TestCaddyfileAdapt checks each testdata/caddyfile_adapt file: the Caddyfile
// above the separator adapts to the JSON below it.
func TestCaddyfileAdapt(t *testing.T) {
	files, err := filepath.Glob("testdata/caddyfile_adapt/*.caddyfiletest")
	if err != nil || len(files) == 0 {
		t.Fatalf("no adapt tests found: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			cfg, want, ok := strings.Cut(string(data), adaptSeparator)
			if !ok {
				t.Fatalf("%s: no %q separator", f, strings.TrimSpace(adaptSeparator))
			}
			if *update {
				cfg = string(caddyfile.Format([]byte(cfg)))
				got := adapt(t, cfg)
				var out bytes.Buffer
				if err := json.Indent(&out, got, "", "\t"); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(f, []byte(cfg+adaptSeparator+out.String()+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			caddytest.CompareAdapt(t, f, cfg, "caddyfile", want)
		})
	}
}

// adapt turns a Caddyfile into JSON, failing the test on any error or
// warning.
func adapt(t testing.TB, caddyfile string) []byte {
	t.Helper()
	out, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
	if err != nil {
		t.Fatalf("adapt: %v", err)
	}
	for _, w := range warnings {
		t.Errorf("adapt warning: %s", w.String())
	}
	return out
}

// TestConfigErrors checks that every invalid configuration fails with a
// message that names the problem (and, for Caddyfile errors, the line).
func TestConfigErrors(t *testing.T) {
	site := func(body string) string {
		return "{\n\twebhooks {\n\t\tstore " + t.TempDir() + "\n\t\tlisten off\n\t}\n}\n:8080 {\n\twebhook_ingest {\n" + body + "\n\t}\n}\n"
	}
	global := func(body string) string {
		return "{\n\twebhooks {\n\t\tlisten off\n" + body + "\n\t}\n}\n:8080 {\n\twebhook_ingest {\n\t\tsource a {\n\t\t\tverify none\n\t\t}\n\t}\n}\n"
	}
	tests := []struct {
		name, caddyfile, want string
	}{
		{"source without verify", site("source github {\n}"), `source "github" has no verify line`},
		{"verify without scheme", site("source github {\nverify\n}"), "verify needs a scheme"},
		{"verify twice", site("source a {\nverify none\nverify none\n}"), "verify given twice"},
		{"unknown scheme", site("source a {\nverify nosuch secret\n}"), `unknown scheme "nosuch"`},
		{"none with a secret", site("source a {\nverify none s3cret\n}"), "takes no secret"},
		{"bad source name", site("source GitHub {\nverify none\n}"), `source name "GitHub"`},
		{"dotted source name", site("source a.b {\nverify none\n}"), `source name "a.b"`},
		{"duplicate source", site("source a {\nverify none\n}\nsource a {\nverify none\n}"), `source "a" is defined twice`},
		{"no source", site("versions v1"), "no source"},
		{"bad version", site("versions v1 V2\nsource a {\nverify none\n}"), `version "V2"`},
		{"bad status", site("status 302\nsource a {\nverify none\n}"), `status "302"`},
		{"unknown subdirective", site("colour blue"), `unrecognized webhook_ingest subdirective "colour"`},
		{"unknown source subdirective", site("source a {\nverify none\ncolour blue\n}"), `unrecognized source subdirective "colour"`},
		{"bad max_body", site("source a {\nverify none\nmax_body lots\n}"), `max_body "lots"`},
		{"max_body above store limit", site("source a {\nverify none\nmax_body 100MiB\n}"), "above the store's max_event_size"},
		{"bad dedup", site("source a {\nverify none\ndedup header\n}"), `dedup "header"`},
		{"bad public_url", site("source a {\nverify none\npublic_url /relative\n}"), "public_url"},
		{"unset secret env", site("source a {\nverify github {env.HOOKGATE_TEST_UNSET_SECRET}\n}"), "secret {env.HOOKGATE_TEST_UNSET_SECRET}: environment variable HOOKGATE_TEST_UNSET_SECRET is not set"},
		{"bad rate_per_ip", site("rate_per_ip fast\nsource a {\nverify none\n}"), `rate "fast": want <events>/<window>`},
		{"zero rate", site("source a {\nverify none\nrate 0/s\n}"), `events "0" must be a whole number above 0`},
		{"bad rate window", site("source a {\nverify none\nrate 5/fortnight\n}"), `window "fortnight"`},
		{"bad burst", site("source a {\nverify none\nrate 100/s burst x\n}"), `burst "x"`},
		{"burst without value", site("source a {\nverify none\nrate 100/s burst\n}"), "want <events>/<window> [burst <n>]"},
		{"max_clients on a source rate", site("source a {\nverify none\nrate 100/s max_clients 5\n}"), `unknown setting "max_clients"`},
		{"deprecate without date", site("deprecate v1\nsource a {\nverify none\n}"), "deprecate: want <version> <sunset date>"},
		{"deprecate bad date", site("deprecate v1 someday\nsource a {\nverify none\n}"), `"someday": want a date such as 2027-06-30`},
		{"deprecate unknown setting", site("deprecate v1 2027-06-30 until 2028-01-01\nsource a {\nverify none\n}"), `unknown setting "until"`},
		{"deprecate unknown version", site("deprecate v9 2027-06-30\nsource a {\nverify none\n}"), "deprecate v9: not among the versions"},
		{"deprecate twice", site("deprecate v1 2027-06-30\ndeprecate v1 2028-06-30\nsource a {\nverify none\n}"), "deprecate v1: given twice"},
		{"deprecate since after sunset", site("deprecate v1 2027-06-30 since 2028-01-01\nsource a {\nverify none\n}"), "is after the sunset"},
		{"deprecate bad successor", site("deprecate v1 2027-06-30 successor v9\nsource a {\nverify none\n}"), `successor "v9" must be another of the versions`},
		{"retire an accepted version", site("versions v1 v2\nretire v1\nsource a {\nverify none\n}"), "v1 is also among the versions"},
		{"retire bad version", site("retire V0\nsource a {\nverify none\n}"), `version "V0"`},
		{"source version not in handler", site("versions v1\nsource a {\nverify none\nversions v2\n}"), `"v2" is not among the handler's versions`},
		{"allow_ips empty", site("source a {\nverify none\nallow_ips\n}"), "allow_ips: give at least one address"},
		{"allow_ips bad", site("source a {\nverify none\nallow_ips github\n}"), `allow_ips "github"`},
		{"accept_encoding br", site("source a {\nverify none\naccept_encoding br\n}"), `accept_encoding "br": the only encoding is gzip`},
		{"bad max_ratio", site("source a {\nverify none\naccept_encoding gzip\nmax_ratio 0\n}"), `max_ratio "0"`},
		{"max_ratio without gzip", site("source a {\nverify none\nmax_ratio 10\n}"), "applies to gzip bodies only"},
		{"unknown option", global("colour blue"), `unrecognized webhooks option "colour"`},
		{"bad sync", global("sync sometimes"), `sync "sometimes"`},
		{"bad retention", global("retention forever"), `retention "forever"`},
		{"bad max_store", global("max_store huge"), `max_store "huge"`},
		{"max_event_size above 64MiB", global("max_event_size 100MiB"), "max_event_size 104857600: at most 64MiB"},
		{"dedup longer than retention", global("retention 1h\ndedup_window 2h"), "dedup_window 2h0m0s is longer than retention 1h0m0s"},
		{"store twice on a line", global("store a b"), "one value expected"},
		{"destination tls on http", global("destination a {\nurl http://127.0.0.1:9/\ntls_server_name x\n}"), `destination "a": url "http://127.0.0.1:9/": TLS settings need an https:// URL`},
		{"destination tls_ca missing", global("destination a {\nurl https://127.0.0.1:9/\ntls_ca /nonexistent/ca.pem\n}"), `destination "a": tls_ca: open /nonexistent/ca.pem`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parsing, err := loadErr(tt.caddyfile)
			if err == nil {
				t.Fatalf("config accepted; want an error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
			if parsing && !strings.Contains(err.Error(), "Caddyfile:") {
				t.Fatalf("Caddyfile error %q does not name its line", err)
			}
		})
	}
}

// loadErr adapts and validates a Caddyfile (Provision and Validate, no
// Start), as `caddy validate` does, and returns the first error and whether
// it came from parsing the Caddyfile.
func loadErr(caddyfile string) (bool, error) {
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		return true, err
	}
	var cfg caddy.Config
	if err := json.Unmarshal(out, &cfg); err != nil {
		return false, err
	}
	return false, caddy.Validate(&cfg)
}

// TestCaddyfileExample: the example the README runs adapts without warnings
// and passes Caddy's validation (Provision and Validate of every module).
func TestCaddyfileExample(t *testing.T) {
	b, err := os.ReadFile("../Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	out := adapt(t, string(b))
	var cfg caddy.Config
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	if err := caddy.Validate(&cfg); err != nil {
		t.Fatalf("Caddyfile.example does not validate: %v", err)
	}
}

// TestValidateOpensNoStore: caddy validate (Provision and Validate) must not
// start NATS or touch the store, which a running Caddy may own.
func TestValidateOpensNoStore(t *testing.T) {
	store := filepath.Join(t.TempDir(), "never-created")
	cfg := "{\n\twebhooks {\n\t\tstore " + store + "\n\t\tlisten off\n\t}\n}\n:8080 {\n\twebhook_ingest {\n\t\tsource a {\n\t\t\tverify none\n\t\t}\n\t}\n}\n"
	if _, err := loadErr(cfg); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
	if _, err := os.Stat(store); !os.IsNotExist(err) {
		t.Fatalf("validate created the store directory (stat: %v)", err)
	}
	if _, ok := engines.References(store); ok {
		t.Fatal("validate started an engine")
	}
}
