package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fuzzallModule is a throwaway module with three fuzz targets: one that
// passes, one that crashes on any input longer than one byte, and one whose
// run the fake go below ends like Go 1.26's coordinator race. Its source
// says "fn" for "func" (replaced when written), so that neither grep
// '^func Fuzz' nor fuzzall.sh over this repository counts these targets.
var fuzzallModule = map[string]string{
	"go.mod": "module fuzzall.test\n\ngo 1.26.0\n",
	"x_test.go": `package x

import "testing"

fn FuzzOK(f *testing.F) {
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {})
}

fn FuzzCrash(f *testing.F) {
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 1 {
			panic("found")
		}
	})
}

fn FuzzFlake(f *testing.F) {
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {})
}
`,
}

// fakeGo passes every command to the real go except the fuzz run of
// FuzzFlake, which it ends the way golang/go#75804 does: after the fuzz
// time, "context deadline exceeded", no crasher. The race cannot be
// produced on demand, hence the fake.
const fakeGo = `#!/bin/sh
case "$*" in
*"-fuzz ^FuzzFlake\$"*)
	sleep 2
	echo 'fuzz: elapsed: 2s, execs: 1234567 (617283/sec), new interesting: 3 (total: 4)'
	echo '--- FAIL: FuzzFlake (2.01s)'
	echo '    context deadline exceeded'
	echo 'FAIL'
	exit 1 ;;
esac
exec "$REAL_GO" "$@"
`

// TestFuzzAll runs reliability/fuzzall.sh on the throwaway module: the
// table has one row per target, a clean run is ok, a written crasher fails
// the run, and the coordinator flake is recorded as ok.
func TestFuzzAll(t *testing.T) {
	realGo, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	script, err := filepath.Abs("fuzzall.sh")
	if err != nil {
		t.Fatal(err)
	}
	mod, fake, out := t.TempDir(), t.TempDir(), t.TempDir()
	for name, text := range fuzzallModule {
		writeFile(t, filepath.Join(mod, name), strings.ReplaceAll(text, "\nfn ", "\nfunc "), 0o644)
	}
	writeFile(t, filepath.Join(fake, "go"), fakeGo, 0o755)

	// -j 100: the limit counts every fuzzer on the machine, and a long
	// fuzz run elsewhere must not stall this test.
	cmd := exec.Command("bash", script, "-t", "2s", "-j", "100", "-o", out, "./...")
	cmd.Dir = mod
	cmd.Env = append(os.Environ(), "PATH="+fake+string(os.PathListSeparator)+os.Getenv("PATH"),
		"REAL_GO="+realGo, "GOWORK=off", "GOFLAGS=")
	log, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("fuzzall.sh: %v (want exit 1, a crasher)\n%s", err, log)
	}
	table, err := os.ReadFile(filepath.Join(out, "table.md"))
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, line := range strings.Split(string(table), "\n") {
		if cells := strings.Split(line, " | "); len(cells) == 6 {
			rows[strings.TrimPrefix(cells[0], "| ")] = line
		}
	}
	for name, want := range map[string]string{
		"FuzzOK":    "| ok |",
		"FuzzCrash": "| CRASHER ./testdata/fuzz/FuzzCrash/",
		"FuzzFlake": "| 1,234,567 | 3 | ok (coordinator deadline flake) |",
	} {
		if !strings.Contains(rows[name], want) {
			t.Errorf("row of %s is %q, want it to contain %q\ntable:\n%s\nlog:\n%s", name, rows[name], want, table, log)
		}
	}
}

// writeFile writes text to path with mode perm or fails t.
func writeFile(t *testing.T, path, text string, perm os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), perm); err != nil {
		t.Fatal(err)
	}
}

// TestFuzzAllRefusesOtherFuzzTimes: the coordinator-flake check compares a
// run's length with -t in seconds, so a compound duration or an execution
// count is a usage error (exit 2), not a run whose flakes become failures.
func TestFuzzAllRefusesOtherFuzzTimes(t *testing.T) {
	script, err := filepath.Abs("fuzzall.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, ft := range []string{"1m30s", "1000x", "m", "10"} {
		cmd := exec.Command("bash", script, "-t", ft, "-o", t.TempDir())
		cmd.Dir = t.TempDir()
		b, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(b), "want a whole number of s, m or h") {
			t.Errorf("-t %s: %v, %q; want exit 2 and the usage line", ft, err, b)
		}
	}
}
