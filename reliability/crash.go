package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"time"
)

// crashOpts shapes the crash loop.
type crashOpts struct {
	Cycles  int           // kill -9 cycles
	Up      time.Duration // mean time the gateway runs before a kill (uniform in [Up/2, 3Up/2))
	Workers int           // concurrent posting clients
}

// crashResult is the crash loop's outcome.
type crashResult struct {
	report
	Cycles int `json:"cycles"`
	// FirstOK is, per restart, the time from starting the process to the
	// first 2xx.
	FirstOK []time.Duration `json:"time_to_first_2xx"`
}

// destinationForChecks is the sink's destination block for scenarios that
// are not about the destination: patient, fast retries, no breaker.
func destinationForChecks(url string) destConfig {
	return destConfig{Name: "sink", URL: url, Extra: "\t\t\ttimeout 5s\n\t\t\tmax_attempts 1000\n\t\t\tbackoff 100ms 2s\n\t\t\tconcurrency 16\n\t\t\tbreaker off"}
}

// runCrash kills the gateway with SIGKILL at random moments under load,
// restarts it on the same store, and checks every acknowledged event.
func runCrash(bin, dir string, o crashOpts, logf func(string, ...any)) (*crashResult, error) {
	snk, err := newSink()
	if err != nil {
		return nil, err
	}
	defer snk.close()
	cfg := newGWConfig(filepath.Join(dir, "crash"))
	cfg.Destinations = []destConfig{destinationForChecks(snk.url())}
	rec := newRecorder()
	g, err := startReady(bin, cfg, 60*time.Second, rec)
	if err != nil {
		return nil, err
	}
	defer g.stop()
	ctx, cancel := context.WithCancel(context.Background())
	ld := &load{rec: rec, url: g.demoURL, workers: o.Workers, prefix: "crash"}
	ld.start(ctx)
	res := &crashResult{}
	for i := range o.Cycles {
		time.Sleep(o.Up/2 + rand.N(o.Up))
		g.kill()
		start := time.Now()
		if err := g.restart(); err != nil {
			cancel()
			return nil, err
		}
		first, err := waitFirstOK(rec, g, start, 2*time.Minute)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("cycle %d: %w", i+1, err)
		}
		res.FirstOK = append(res.FirstOK, first)
		res.Cycles++
		logf("cycle %d/%d: killed, first 2xx %s after restart; %d acked so far", i+1, o.Cycles, first.Round(time.Millisecond), rec.count(outcomeOK))
	}
	time.Sleep(o.Up / 2)
	cancel()
	ld.wait()
	if res.report, err = checkStored(rec, cfg, snk, time.Minute); err != nil {
		return nil, err
	}
	return res, nil
}

// waitFirstOK waits until the load gets a 2xx answered after start.
func waitFirstOK(rec *recorder, g *gateway, start time.Time, d time.Duration) (time.Duration, error) {
	deadline := start.Add(d)
	for time.Now().Before(deadline) {
		if t := rec.firstOKAfter(start); !t.IsZero() {
			return t.Sub(start), nil
		}
		if !g.alive() {
			return 0, fmt.Errorf("gateway exited after restart: %v; log: %s", g.err, g.tail())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return 0, fmt.Errorf("no 2xx within %s of the restart; log: %s", d, g.tail())
}
