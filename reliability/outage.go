package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"
)

// outageOpts shapes the downstream outage.
type outageOpts struct {
	Mode    sinkMode      // how the destination fails
	Before  time.Duration // healthy load before the outage
	Outage  time.Duration // how long the destination fails
	After   time.Duration // load after recovery
	Workers int
	Pause   time.Duration // between one worker's requests
	// Breaker is the destination's breaker line; "" keeps the default.
	Breaker string
}

// outageResult is the outage's outcome.
type outageResult struct {
	report
	Mode string `json:"mode"`
	// AckedDuringOutage counts events acknowledged while the destination
	// failed.
	AckedDuringOutage int `json:"acked_during_outage"`
	// PeakAttemptsPerSecond and AttemptsDuringOutage are what the sink saw
	// while failing: a retry storm shows as attempts far above events.
	PeakAttemptsPerSecond int `json:"peak_attempts_per_second"`
	AttemptsDuringOutage  int `json:"attempts_during_outage"`
	// Ingest latency of 2xx answers before and during the outage.
	P50Before time.Duration `json:"ingest_p50_before_ns"`
	P99Before time.Duration `json:"ingest_p99_before_ns"`
	P50During time.Duration `json:"ingest_p50_during_ns"`
	P99During time.Duration `json:"ingest_p99_during_ns"`
	// ResumeAfter is from recovery to the first delivery; DrainAfter from
	// recovery to the last acknowledged event delivered.
	ResumeAfter time.Duration `json:"resume_after_ns"`
	DrainAfter  time.Duration `json:"drain_after_ns"`
}

// runOutage makes the destination fail for a while under load, then
// recover, and checks that every event is delivered without a retry storm.
// The destination keeps its default breaker, the gateway's answer to a
// failing destination.
func runOutage(bin, dir string, o outageOpts, logf func(string, ...any)) (*outageResult, error) {
	snk, err := newSink()
	if err != nil {
		return nil, err
	}
	defer snk.close()
	cfg := newGWConfig(filepath.Join(dir, "outage-"+o.Mode.String()))
	extra := "\t\t\ttimeout 2s\n\t\t\tmax_attempts 1000\n\t\t\tbackoff 200ms 5s"
	if o.Breaker != "" {
		extra += "\n\t\t\t" + o.Breaker
	}
	cfg.Destinations = []destConfig{{Name: "sink", URL: snk.url(), Extra: extra}}
	rec := newRecorder()
	g, err := startReady(bin, cfg, 60*time.Second, rec)
	if err != nil {
		return nil, err
	}
	defer g.stop()
	ctx, cancel := context.WithCancel(context.Background())
	ld := &load{rec: rec, url: g.demoURL, workers: o.Workers, pause: o.Pause, prefix: "outage"}
	t0 := time.Now()
	ld.start(ctx)
	time.Sleep(o.Before)
	t1 := time.Now()
	snk.setMode(o.Mode)
	okBefore := rec.count(outcomeOK)
	logf("destination now answers %s", o.Mode)
	time.Sleep(o.Outage)
	t2 := time.Now()
	okDuring := rec.count(outcomeOK) - okBefore
	backlog := rec.ids(outcomeOK)
	snk.setMode(sinkOK)
	logf("destination recovered; %d events acknowledged during the outage", okDuring)
	time.Sleep(o.After)
	cancel()
	ld.wait()
	res := &outageResult{Mode: o.Mode.String(), AckedDuringOutage: okDuring}
	res.PeakAttemptsPerSecond, res.AttemptsDuringOutage = snk.attemptRate(t1, t2)
	res.P50Before, res.P99Before, _ = rec.latency(t0, t1)
	res.P50During, res.P99During, _ = rec.latency(t1, t2)
	if res.report, err = checkStored(rec, cfg, snk, 2*time.Minute); err != nil {
		return nil, err
	}
	if t := snk.firstDeliveryAfter(t2); !t.IsZero() {
		res.ResumeAfter = t.Sub(t2)
	}
	// The backlog of the outage is drained when the last event
	// acknowledged before recovery is delivered.
	for _, id := range backlog {
		if t := snk.deliveredAt(id); !t.IsZero() {
			res.DrainAfter = max(res.DrainAfter, t.Sub(t2))
		}
	}
	return res, nil
}

// outageViolations lists what broke the promise: lost or undelivered
// events, ingest refusing events because a destination failed, or a retry
// storm (more attempts during the outage than events acknowledged in it:
// without the breaker each event would be tried several times).
func (r *outageResult) outageViolations() []string {
	v := r.violations()
	if n := r.Failed + r.Unknown; n > r.NonOK["connection refused"] {
		v = append(v, fmt.Sprintf("ingest answered %d requests with something other than a 2xx while a destination failed: %v", n, r.NonOK))
	}
	if limit := max(r.AckedDuringOutage, 50); r.AttemptsDuringOutage > limit {
		v = append(v, fmt.Sprintf("retry storm: %d attempts during the outage for %d new events (limit %d)", r.AttemptsDuringOutage, r.AckedDuringOutage, limit))
	}
	if r.AckedDuringOutage == 0 {
		v = append(v, "no event was acknowledged during the outage")
	}
	return v
}
