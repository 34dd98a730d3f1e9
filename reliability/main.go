// Command reliability checks Hookgate's promise — a 2xx means the event is
// stored and will be delivered — against real gateway processes built from
// cmd/caddy, the way Jepsen checks databases: every request the load sends
// is recorded as ok (2xx), failed (a definite non-2xx) or unknown (timeout,
// reset); at the end every ok event must be in the WEBHOOKS stream (read
// through the gateway's NATS listener) and delivered to a loopback sink
// that records Idempotency-Key.
//
// Scenarios: crash (kill -9 loop under load), outage (the destination
// answers 503, resets or hangs, then recovers), fullstore (max_store
// reached), tmpfs (a real filesystem fills up), reload (caddy reload every
// 1–2 s with differing configs), hostile (the attack table against a live
// gateway), power (strace shows a sync before every 2xx with sync always,
// and none with a lazy interval), backup (caddy webhooks backup and restore
// while ingest runs). `go test ./reliability/` runs short versions; this
// command runs long ones:
//
//	go run ./reliability -scenario crash -cycles 20 -duration 10m
//	go run ./reliability -scenario outage -mode hang -outage 2m
//	go run ./reliability -scenario reload -reloads 30
//
// Figures of real runs are in docs/RELIABILITY.md.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	"github.com/hookgate/hookgate/internal/testgw"
)

func main() {
	scenario := flag.String("scenario", "crash", "crash|outage|fullstore|tmpfs|reload|hostile|power|backup")
	cycles := flag.Int("cycles", 20, "crash: kill -9 cycles")
	duration := flag.Duration("duration", 10*time.Minute, "crash: total time under load, spread over the cycles")
	workers := flag.Int("workers", 16, "concurrent posting clients")
	mode := flag.String("mode", "503", "outage: how the destination fails: 503|reset|hang")
	outage := flag.Duration("outage", 2*time.Minute, "outage: how long the destination fails")
	reloads := flag.Int("reloads", 30, "reload: how many reloads")
	events := flag.Int("events", 500, "power: events traced; backup: events before the backup; fullstore: requests after full")
	keep := flag.String("dir", "", "working directory to keep (default: a temporary one, removed)")
	flag.Parse()

	dir := *keep
	if dir == "" {
		d, err := os.MkdirTemp("", "hookgate-reliability-")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(d)
		dir = d
	}
	logf := func(format string, args ...any) { log.Printf(format, args...) }
	log.Printf("building cmd/caddy into %s", dir)
	bin, err := testgw.Build(dir, "caddy")
	if err != nil {
		log.Fatal(err)
	}
	var res any
	var violations []string
	switch *scenario {
	case "crash":
		up := *duration / time.Duration(max(1, *cycles))
		r, e := runCrash(bin, dir, crashOpts{Cycles: *cycles, Up: up, Workers: *workers}, logf)
		res, err = r, e
		if r != nil {
			violations = r.violations()
		}
	case "outage":
		m, ok := map[string]sinkMode{"503": sink503, "reset": sinkReset, "hang": sinkHang}[*mode]
		if !ok {
			log.Fatalf("-mode %q: want 503, reset or hang", *mode)
		}
		r, e := runOutage(bin, dir, outageOpts{Mode: m, Before: 5 * time.Second, Outage: *outage, After: 10 * time.Second, Workers: *workers, Pause: 20 * time.Millisecond}, logf)
		res, err = r, e
		if r != nil {
			violations = r.outageViolations()
		}
	case "fullstore":
		r, e := runFullStore(bin, dir, *events, logf)
		res, err = r, e
		if r != nil {
			violations = r.fullViolations()
		}
	case "tmpfs":
		r, e := runTmpfs(bin, dir, logf)
		res, err = r, e
		if r != nil {
			violations = r.tmpfsViolations()
		}
	case "reload":
		r, e := runReload(bin, dir, *reloads, *workers, logf)
		res, err = r, e
		if r != nil {
			violations = append(r.violations(), r.Unexplained...)
		}
	case "hostile":
		r, e := runHostile(bin, dir, logf)
		res, err = r, e
		if r != nil {
			violations = r.Failures
		}
	case "power":
		r, e := runPower(bin, dir, *events, logf)
		res, err = r, e
		if r != nil {
			violations = r.powerViolations()
		}
	case "backup":
		r, e := runBackup(bin, dir, *events, logf)
		res, err = r, e
		if r != nil {
			violations = r.backupViolations()
		}
	default:
		log.Fatalf("-scenario %q: unknown", *scenario)
	}
	if err != nil {
		log.Fatalf("%s: %v", *scenario, err)
	}
	out, _ := json.MarshalIndent(res, "", "  ")
	fmt.Println(string(out))
	if len(violations) > 0 {
		log.Fatalf("%s: FAILED: %s", *scenario, strings.Join(violations, "; "))
	}
	log.Printf("%s: passed", *scenario)
}
