package main

import (
	"fmt"
	"os"
	"testing"
	"time"
)

// bin is cmd/caddy, built once for all tests.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hookgate-reliability-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin, err = buildGateway(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// noViolations fails t with every violation.
func noViolations(t *testing.T, vs []string) {
	t.Helper()
	for _, v := range vs {
		t.Error(v)
	}
}

// TestCrashLoop kills the gateway with SIGKILL under concurrent load three
// times: no acknowledged event may be lost or go undelivered.
func TestCrashLoop(t *testing.T) {
	r, err := runCrash(bin, t.TempDir(), crashOpts{Cycles: 3, Up: 1500 * time.Millisecond, Workers: 8}, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(r.report)
	t.Logf("time to first 2xx after each restart: %v", r.FirstOK)
	noViolations(t, r.violations())
	if r.OK < 100 {
		t.Errorf("only %d events acknowledged: the load did not run", r.OK)
	}
}
