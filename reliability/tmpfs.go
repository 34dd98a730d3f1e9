package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// errNoMount means the tmpfs scenario cannot run here.
var errNoMount = errors.New("cannot mount a tmpfs here (needs root and mount permission); the full-disk scenario is skipped, the max_store scenario still runs")

// tmpfsResult is the outcome of filling a real filesystem.
type tmpfsResult struct {
	report
	// fillCounts counts the answers while the disk was full; a 2xx then
	// is checked in the stream like every other.
	fillCounts
	// Recovered is whether the gateway stored events again once space was
	// freed, without a restart, and RecoveredAfter how long that took.
	Recovered      bool          `json:"recovered_by_itself"`
	RecoveredAfter time.Duration `json:"recovered_after"`
	// RecoveryWait is how long the scenario waited for that.
	RecoveryWait time.Duration `json:"recovery_wait"`
	// ExpectRecovery says whether the build under test promises it.
	ExpectRecovery bool `json:"expect_recovery"`
}

// tmpfsViolations lists what broke the promise.
func (r *tmpfsResult) tmpfsViolations() []string {
	v := r.violations()
	if r.OKAfterFull > 0 && r.Lost > 0 {
		v = append(v, fmt.Sprintf("%d 2xx while the disk was full, and %d acknowledged events lost", r.OKAfterFull, r.Lost))
	}
	if r.MissingRetryAfter > 0 {
		v = append(v, fmt.Sprintf("%d 503s without Retry-After", r.MissingRetryAfter))
	}
	if r.Slowest503 >= tmpfsPublishTimeout {
		v = append(v, fmt.Sprintf("a refusal took %s: the gateway waited for publish_timeout instead of knowing the disk was full", r.Slowest503))
	}
	if r.ExpectRecovery && !r.Recovered {
		v = append(v, fmt.Sprintf("the gateway did not store events again within %s of space coming back", r.RecoveryWait))
	}
	return v
}

// tmpfsExpectRecovery says whether the gateway recovers from a full disk
// by itself: it does since the engine watches for free space
// (caddymodule/health.go).
const tmpfsExpectRecovery = true

// tmpfsPublishTimeout is the handler's publish_timeout in the full-disk
// run: a refusal as slow as this waited for it.
const tmpfsPublishTimeout = 3 * time.Second

// runTmpfs puts the store on a small tmpfs, fills the filesystem, posts
// until refused and on, frees the space, and waits for the gateway to
// store events again.
func runTmpfs(bin, dir string, logf func(string, ...any)) (*tmpfsResult, error) {
	mnt := filepath.Join(dir, "tmpfs")
	if err := os.MkdirAll(mnt, 0o700); err != nil {
		return nil, err
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", mnt).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("%w: %s", errNoMount, strings.TrimSpace(string(out)))
	}
	defer exec.Command("umount", "-l", mnt).Run()
	cfg := newGWConfig(filepath.Join(dir, "tmpfs-gw"))
	cfg.Store = filepath.Join(mnt, "store")
	cfg.Ingest = fmt.Sprintf("\t\tpublish_timeout %s\n\t\tretry_after 7s", tmpfsPublishTimeout)
	rec := newRecorder()
	g, err := startReady(bin, cfg, 60*time.Second, rec)
	if err != nil {
		return nil, err
	}
	defer g.stop()
	// Leave about 1 MiB free. The tmpfs is larger than the free space the
	// engine waits for before recovering (4 × the largest message, 16 MiB
	// with the default max_event_size).
	filler := filepath.Join(mnt, "filler")
	if err := fillFS(mnt, filler, 1<<20); err != nil {
		return nil, err
	}
	res := &tmpfsResult{ExpectRecovery: tmpfsExpectRecovery, RecoveryWait: time.Minute}
	if !tmpfsExpectRecovery {
		res.RecoveryWait = 10 * time.Second // only to report
	}
	c := newLoadClient(1)
	full := res.postUntilFull(rec, c, g.demoURL(), "disk", 20000, 5, false)
	if !full {
		return nil, fmt.Errorf("the filesystem never filled: %d events acknowledged", res.AckedBeforeFull)
	}
	logf("disk full after %d events; %d more requests, %d of them 2xx", res.AckedBeforeFull, res.RefusedAfterFull, res.OKAfterFull)
	if err := os.Remove(filler); err != nil {
		return nil, err
	}
	freed := time.Now()
	for time.Since(freed) < res.RecoveryWait {
		if o, _, _ := postTimed(rec, c, g.demoURL(), rec.nextID("after")); o == outcomeOK {
			res.Recovered, res.RecoveredAfter = true, time.Since(freed)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	logf("space freed; stored again by itself: %v (after %s)", res.Recovered, res.RecoveredAfter.Round(time.Millisecond))
	if !res.Recovered {
		// Read the stream through a restarted gateway.
		g.stop()
		if err := g.restart(); err != nil {
			return nil, err
		}
		if _, err := g.waitReady(60*time.Second, rec); err != nil {
			return nil, err
		}
	}
	if res.report, err = checkStored(rec, cfg, nil, 0); err != nil {
		return nil, err
	}
	return res, nil
}

// fillFS writes path until the filesystem at mnt has about keep bytes free.
func fillFS(mnt, path string, keep int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		free, err := freeBytes(mnt)
		if err != nil {
			return err
		}
		if free <= keep {
			return f.Sync()
		}
		if _, err := f.Write(buf[:min(int64(len(buf)), free-keep)]); err != nil {
			return fmt.Errorf("fill %s: %w", mnt, err)
		}
	}
}
