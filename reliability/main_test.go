package main

import (
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/hookgate/hookgate/internal/testgw"
)

// bin is cmd/caddy, built once for all tests.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hookgate-reliability-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin, err = testgw.Build(dir, "caddy")
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

// TestBackupRestore backs up a gateway with caddy webhooks backup while
// clients post, restores it into a new gateway with caddy webhooks
// restore: every event acknowledged before the backup is there, its
// delivery state too, nothing delivered before is delivered again, and
// what was pending is delivered.
func TestBackupRestore(t *testing.T) {
	r, err := runBackup(bin, t.TempDir(), 200, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", *r)
	noViolations(t, r.backupViolations())
}

// TestHostileInput sends the attack table to a live gateway: each answer
// is the one the table wants, nothing rejected is stored, and the gateway
// neither dies nor panics.
func TestHostileInput(t *testing.T) {
	r, err := runHostile(bin, t.TempDir(), t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range r.Rows {
		t.Logf("%-50s %3d stored=%v", row.Name, row.Status, row.Stored)
	}
	noViolations(t, r.Failures)
}

// TestPowerLossSyncBeforeAck traces a real gateway's system calls: with
// sync always, every event's write is followed by a sync of its file that
// returns before the event's 2xx is written; with a lazy interval most are
// not, which shows the check can tell the difference.
func TestPowerLossSyncBeforeAck(t *testing.T) {
	r, err := runPower(bin, t.TempDir(), 150, t.Logf)
	if errors.Is(err, errNoStrace) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", *r)
	noViolations(t, r.powerViolations())
}

// TestFullStore fills a gateway whose max_store is tiny: no 2xx once full,
// a 503 with Retry-After at once (long before publish_timeout), every
// acknowledged event stored and no refused one.
func TestFullStore(t *testing.T) {
	r, err := runFullStore(bin, t.TempDir(), 30, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(r.report)
	t.Logf("acked before full %d, refused after %d, false 2xx %d, slowest 503 %s", r.AckedBeforeFull, r.RefusedAfterFull, r.OKAfterFull, r.Slowest503)
	noViolations(t, r.fullViolations())
}

// TestFullDisk puts the store on a small tmpfs and fills the filesystem:
// no false 2xx, 503 + Retry-After, every acknowledged event kept, and (once
// the engine recovers by itself) storing again once space is back.
func TestFullDisk(t *testing.T) {
	r, err := runTmpfs(bin, t.TempDir(), t.Logf)
	if errors.Is(err, errNoMount) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Log(r.report)
	t.Logf("acked before full %d, refused after %d, false 2xx %d, slowest refusal %s, recovered by itself %v after %s",
		r.AckedBeforeFull, r.RefusedAfterFull, r.OKAfterFull, r.Slowest503, r.Recovered, r.RecoveredAfter)
	noViolations(t, r.tmpfsViolations())
}

// TestDownstreamOutage makes the destination answer 503, reset
// connections, then hang, each for a few seconds under load: every event
// is delivered once it recovers, ingest answers 2xx throughout, and the
// attempts during the outage stay far below a retry storm.
func TestDownstreamOutage(t *testing.T) {
	for _, mode := range []sinkMode{sink503, sinkReset, sinkHang} {
		t.Run(mode.String(), func(t *testing.T) {
			r, err := runOutage(bin, t.TempDir(), outageOpts{Mode: mode, Before: time.Second, Outage: 4 * time.Second, After: 2 * time.Second,
				Workers: 2, Pause: 20 * time.Millisecond, Breaker: "breaker cooldown 2s"}, t.Logf)
			if err != nil {
				t.Fatal(err)
			}
			t.Log(r.report)
			t.Logf("acked during outage %d; attempts during outage %d (peak %d/s); ingest p50/p99 before %s/%s, during %s/%s; deliveries resumed %s after recovery, drained after %s",
				r.AckedDuringOutage, r.AttemptsDuringOutage, r.PeakAttemptsPerSecond, r.P50Before, r.P99Before, r.P50During, r.P99During, r.ResumeAfter, r.DrainAfter)
			noViolations(t, r.outageViolations())
		})
	}
}

// TestReloadUnderLoad reloads the gateway every 1–2 s with configs that
// differ in sources, rates and the destination while clients post: no
// acknowledged event is lost or undelivered and every non-2xx is explained.
func TestReloadUnderLoad(t *testing.T) {
	r, err := runReload(bin, t.TempDir(), 5, 4, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(r.report)
	for k, why := range r.Explained {
		t.Logf("%s: %s", k, why)
	}
	noViolations(t, r.violations())
	for _, k := range r.Unexplained {
		t.Errorf("unexplained answer: %s (%d times)", k, r.NonOK[k])
	}
}
