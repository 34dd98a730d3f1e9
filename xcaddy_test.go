package hookgate

import (
	"bufio"
	"os"
	"regexp"
	"strings"
	"testing"
)

// manifest is the little of TOML that xcaddy.toml uses: [section] headers
// and key = "value" lines.
func manifest(t *testing.T) map[string]map[string]string {
	t.Helper()
	f, err := os.Open("xcaddy.toml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]map[string]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
			out[section] = map[string]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("xcaddy.toml: cannot read %q", line)
			}
			out[section][strings.Trim(strings.TrimSpace(k), `"`)] = strings.TrimSpace(v)
		}
	}
	return out
}

func unquote(s string) string { return strings.Trim(s, `"`) }

// gomod returns the module path, the go line and the required versions.
func gomod(t *testing.T) (module, goVersion string, require map[string]string) {
	t.Helper()
	b, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	require = map[string]string{}
	req := regexp.MustCompile(`(?m)^\s*(?:require\s+)?([a-z0-9./-]+\.[a-z]+/[^\s]+)\s+(v[^\s]+)`)
	for _, m := range req.FindAllStringSubmatch(string(b), -1) {
		require[m[1]] = m[2]
	}
	module = regexp.MustCompile(`(?m)^module\s+(\S+)`).FindStringSubmatch(string(b))[1]
	goVersion = regexp.MustCompile(`(?m)^go\s+(\S+)`).FindStringSubmatch(string(b))[1]
	if regexp.MustCompile(`(?m)^toolchain`).Match(b) {
		t.Error("go.mod has a toolchain line: the machines run their own Go 1.26")
	}
	return module, goVersion, require
}

// TestXcaddyManifest: xcaddy.toml, go.mod and the README's xcaddy command
// describe the same build.
func TestXcaddyManifest(t *testing.T) {
	m := manifest(t)
	module, goVersion, require := gomod(t)

	caddyVersion := unquote(m["caddy"]["version"])
	if got := require["github.com/caddyserver/caddy/v2"]; got != caddyVersion {
		t.Errorf("xcaddy.toml builds Caddy %s, go.mod requires %s", caddyVersion, got)
	}
	if got := unquote(m["plugin"]["module"]); got != module {
		t.Errorf("xcaddy.toml plugin %s, go.mod module %s", got, module)
	}
	if got := unquote(m["build"]["go"]); !strings.HasPrefix(goVersion, got) {
		t.Errorf("xcaddy.toml go %s, go.mod go %s", got, goVersion)
	}
	for mod, v := range m["pins"] {
		if require[mod] != unquote(v) {
			t.Errorf("xcaddy.toml pins %s %s, go.mod requires %s", mod, unquote(v), require[mod])
		}
	}

	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	// The module path is unpublished: without this GOPROXY the go command
	// falls through to "direct" and tries to clone it (issue 9, item 11).
	cmd := `GOPROXY="$(go env GOPROXY | cut -d, -f1)|off" ` + "CADDY_VERSION=" + caddyVersion + " xcaddy build --output " + unquote(m["build"]["output"]) +
		" --with " + module + "=" + unquote(m["plugin"]["replace"])
	if !strings.Contains(string(readme), cmd) {
		t.Errorf("README.md does not give the manifest's xcaddy command:\n%s", cmd)
	}
	toml, _ := os.ReadFile("xcaddy.toml")
	if !strings.Contains(string(toml), cmd) {
		t.Errorf("xcaddy.toml's comment does not give its own command:\n%s", cmd)
	}
}
