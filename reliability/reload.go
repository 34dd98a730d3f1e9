package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"time"
)

// reloadResult is the outcome of reloading under load.
type reloadResult struct {
	report
	Reloads int `json:"reloads"`
	// Explained maps every non-2xx seen to its explanation; Unexplained
	// lists those without one (must be empty).
	Explained   map[string]string `json:"explained"`
	Unexplained []string          `json:"unexplained,omitempty"`
}

// reloadVariant returns the i-th config of the reload cycle: it changes
// sources, rates and the destination's URL, concurrency and rate, while
// the demo source and the destination's name (its consumer) stay.
func reloadVariant(base gwConfig, snk *sink, i int) gwConfig {
	c := base
	d := destinationForChecks(snk.url())
	switch i % 4 {
	case 1:
		c.Sources = "\t\tsource other {\n\t\t\tverify none\n\t\t}"
		d.URL += "/v2"
		d.Extra += "\n\t\t\trate 2000/s"
	case 2:
		c.Sources = "\t\tsource other {\n\t\t\tverify none\n\t\t\trate 10/s\n\t\t}\n\t\tsource third {\n\t\t\tverify none\n\t\t}"
		c.Ingest = "\t\tstatus 202"
		d.Extra = "\t\t\ttimeout 3s\n\t\t\tmax_attempts 1000\n\t\t\tbackoff 50ms 1s\n\t\t\tconcurrency 4\n\t\t\tbreaker off"
	case 3:
		d.URL += "/v3"
		c.Ingest = "\t\tpublish_timeout 8s"
	}
	c.Destinations = []destConfig{d}
	return c
}

// runReload reloads the gateway every 1–2 s with differing configs while
// clients post, then checks every acknowledged event and explains every
// non-2xx.
func runReload(bin, dir string, reloads, workers int, logf func(string, ...any)) (*reloadResult, error) {
	snk, err := newSink()
	if err != nil {
		return nil, err
	}
	defer snk.close()
	base := newGWConfig(filepath.Join(dir, "reload"))
	cfg := reloadVariant(base, snk, 0)
	rec := newRecorder()
	g, err := startReady(bin, cfg, 60*time.Second, rec)
	if err != nil {
		return nil, err
	}
	defer g.stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ld := &load{rec: rec, url: g.demoURL, workers: workers, pause: 2 * time.Millisecond, prefix: "reload"}
	ld.start(ctx)
	res := &reloadResult{Explained: map[string]string{}}
	for i := 1; i <= reloads; i++ {
		time.Sleep(time.Second + rand.N(time.Second))
		if err := g.reload(reloadVariant(base, snk, i)); err != nil {
			return nil, fmt.Errorf("reload %d: %w", i, err)
		}
		res.Reloads++
		if i%10 == 0 || i == reloads {
			logf("reload %d/%d done; %d acked so far", i, reloads, rec.count(outcomeOK))
		}
	}
	time.Sleep(time.Second)
	cancel()
	ld.wait()
	if res.report, err = checkStored(rec, cfg, snk, time.Minute); err != nil {
		return nil, err
	}
	for k := range res.NonOK {
		if why := explainNonOK(k); why != "" {
			res.Explained[k] = why
		} else {
			res.Unexplained = append(res.Unexplained, k)
		}
	}
	return res, nil
}
