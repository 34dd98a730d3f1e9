// Package clitest runs a test binary again as the caddy command, so that
// tests exercise the real CLI in a real process with real exit codes.
//
// A test package's TestMain calls Child first; when it reports true, it
// runs the command's main and exits.
package clitest

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// env marks the re-executed test binary.
const env = "HOOKGATE_TEST_RUN_MAIN"

// Child reports whether this process is the re-executed binary; if so it
// has set os.Args to the command line of caddy.
func Child() bool {
	if os.Getenv(env) != "1" {
		return false
	}
	os.Args = append([]string{"caddy"}, os.Args[1:]...)
	return true
}

// Run runs the CLI with args and stdin and returns the exit code, stdout
// and stderr.
func Run(t testing.TB, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), env+"=1")
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

// Shim writes an executable named caddy into dir that runs this test
// binary as the CLI, so that a command line written for users ("caddy
// webhooks send ...") runs the real command in a shell whose PATH starts
// with dir.
func Shim(t testing.TB, dir string) {
	t.Helper()
	script := "#!/bin/sh\n" + env + "=1 exec " + shellQuote(os.Args[0]) + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(dir, "caddy"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
