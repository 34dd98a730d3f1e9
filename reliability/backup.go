package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// backupResult is the outcome of backing up a gateway under ingest and
// restoring it into a new one.
type backupResult struct {
	// AckedBeforeBackup counts events acknowledged before the backup began;
	// Missing those of them not in the restored gateway (must be 0).
	AckedBeforeBackup int `json:"acked_before_backup"`
	Missing           int `json:"missing_after_restore"`
	// AckedDuringBackup counts events acknowledged while the backup ran
	// (each may or may not be in it).
	AckedDuringBackup int `json:"acked_during_backup"`
	// DeliveredBefore counts events the first gateway had delivered before
	// the backup; DeliveredAgain those the restored gateway delivered again
	// (must be 0).
	DeliveredBefore int `json:"delivered_before_backup"`
	DeliveredAgain  int `json:"delivered_again"`
	// Held counts events acknowledged but not deliverable at backup time;
	// HeldDelivered those the restored gateway delivered (must be all).
	Held          int `json:"held"`
	HeldDelivered int `json:"held_delivered_after_restore"`
	// Undelivered counts events in the restored stream that neither
	// gateway delivered (must be 0).
	Undelivered int `json:"undelivered"`
	// StateRestored is whether the restored gateway reports an event
	// delivered before the backup as delivered.
	StateRestored bool `json:"delivery_state_restored"`
	// RefusedWithoutForce is whether restore refused to replace events
	// without --force.
	RefusedWithoutForce bool `json:"refused_without_force"`
	// BackupTook and RestoreTook are the CLI commands' durations.
	BackupTook  time.Duration `json:"backup_took"`
	RestoreTook time.Duration `json:"restore_took"`
	Manifest    string        `json:"manifest"`
}

// backupViolations lists what broke the promise.
func (r *backupResult) backupViolations() []string {
	var v []string
	if r.Missing > 0 {
		v = append(v, fmt.Sprintf("%d events acknowledged before the backup are missing after the restore", r.Missing))
	}
	if r.DeliveredAgain > 0 {
		v = append(v, fmt.Sprintf("%d events delivered before the backup were delivered again after the restore", r.DeliveredAgain))
	}
	if r.HeldDelivered != r.Held {
		v = append(v, fmt.Sprintf("%d of %d events pending at backup time were delivered after the restore", r.HeldDelivered, r.Held))
	}
	if r.Undelivered > 0 {
		v = append(v, fmt.Sprintf("%d restored events were never delivered", r.Undelivered))
	}
	if !r.StateRestored {
		v = append(v, "the restored gateway lost the delivery state")
	}
	if !r.RefusedWithoutForce {
		v = append(v, "restore replaced a store holding events without --force")
	}
	return v
}

// runBackup posts n events to a gateway, lets them be delivered except a
// held-back few, backs it up with caddy webhooks backup while clients keep
// posting, kills it, restores the backup into a new gateway on an empty
// store with caddy webhooks restore, and checks what the new one holds and
// delivers.
func runBackup(bin, dir string, n int, logf func(string, ...any)) (*backupResult, error) {
	held := func(id string) bool { return strings.HasPrefix(id, "demo:held-") }
	sinkA, err := newSink()
	if err != nil {
		return nil, err
	}
	defer sinkA.close()
	sinkA.refuse = held
	cfgA := newGWConfig(filepath.Join(dir, "backup-a"))
	cfgA.Destinations = []destConfig{destinationForChecks(sinkA.url())}
	a, err := startGateway(bin, cfgA)
	if err != nil {
		return nil, err
	}
	defer a.kill()
	rec := newRecorder()
	if _, err := a.waitReady(60*time.Second, rec); err != nil {
		return nil, err
	}
	res := &backupResult{Held: 20}
	if err := postN(rec, a, "before", n, 8); err != nil {
		return nil, err
	}
	if err := postN(rec, a, "held", res.Held, 4); err != nil {
		return nil, err
	}
	before := rec.ids(outcomeOK)
	res.AckedBeforeBackup = len(before)
	var deliverable []string
	for _, id := range before {
		if !held(eventID(id)) {
			deliverable = append(deliverable, id)
		}
	}
	if missing := sinkA.waitDelivered(deliverable, time.Minute); missing > 0 {
		return nil, fmt.Errorf("%d events not delivered before the backup", missing)
	}
	deliveredA := sinkA.deliveries()
	res.DeliveredBefore = len(deliveredA)

	// Back up while clients keep posting.
	ctx, cancel := context.WithCancel(context.Background())
	ld := &load{rec: rec, url: a.demoURL, workers: 2, pause: 5 * time.Millisecond, prefix: "during"}
	ld.start(ctx)
	time.Sleep(300 * time.Millisecond)
	bdir := filepath.Join(dir, "backup")
	start := time.Now()
	out, err := a.cli("webhooks", "backup", bdir)
	res.BackupTook = time.Since(start)
	cancel()
	ld.wait()
	if err != nil {
		return nil, err
	}
	res.Manifest = strings.TrimSpace(out)
	res.AckedDuringBackup = rec.count(outcomeOK) - res.AckedBeforeBackup
	logf("backup of %d events taken in %s while %d more were acknowledged", res.AckedBeforeBackup, res.BackupTook.Round(time.Millisecond), res.AckedDuringBackup)
	a.kill() // the machine is gone

	sinkB, err := newSink()
	if err != nil {
		return nil, err
	}
	defer sinkB.close()
	cfgB := newGWConfig(filepath.Join(dir, "backup-b"))
	cfgB.Destinations = []destConfig{destinationForChecks(sinkB.url())}
	b, err := startReady(bin, cfgB, 60*time.Second, newRecorder())
	if err != nil {
		return nil, err
	}
	defer b.stop()
	// The probe made B's store non-empty: a restore must refuse it.
	if _, err := b.cli("webhooks", "restore", bdir); err != nil && strings.Contains(err.Error(), "--force") {
		res.RefusedWithoutForce = true
	}
	start = time.Now()
	if _, err := b.cli("webhooks", "restore", "--force", bdir); err != nil {
		return nil, err
	}
	res.RestoreTook = time.Since(start)
	logf("restored in %s", res.RestoreTook.Round(time.Millisecond))

	var heldIDs []string
	for _, id := range before {
		if held(eventID(id)) {
			heldIDs = append(heldIDs, id)
		}
	}
	sinkB.waitDelivered(heldIDs, time.Minute)
	res.HeldDelivered = res.Held - sinkB.has(heldIDs)
	stored, err := storedIDs(cfgB.NATS, cfgB.Store, "WEBHOOKS")
	if err != nil {
		return nil, err
	}
	for _, id := range before {
		if stored[eventID(id)] == 0 {
			res.Missing++
		}
	}
	// Everything restored is delivered by one gateway or the other.
	allA := sinkA.deliveries()
	var restored []string
	for eid := range stored {
		if allA[eid] == 0 {
			restored = append(restored, postID(eid))
		}
	}
	res.Undelivered = sinkB.waitDelivered(restored, time.Minute)
	time.Sleep(2 * time.Second) // room for a wrong redelivery to show
	for eid := range sinkB.deliveries() {
		// The new gateway's readiness probes reuse the probe ids the
		// old one had: they are its own events, not redeliveries.
		if deliveredA[eid] > 0 && !strings.Contains(eid, ":probe-") {
			res.DeliveredAgain++
			logf("delivered again: %s", eid)
		}
	}
	res.StateRestored = deliveredState(b, eventID(deliverable[0]))
	return res, nil
}

// postN posts n events with workers concurrent clients; each must get a 2xx.
func postN(rec *recorder, g *gateway, prefix string, n, workers int) error {
	c := newLoadClient(workers)
	errs := make(chan error, workers)
	ids := make(chan string, n)
	for range n {
		ids <- rec.nextID(prefix)
	}
	close(ids)
	for range workers {
		go func() {
			for id := range ids {
				if o := rec.post(context.Background(), c, g.demoURL(), id, nil); o != outcomeOK {
					errs <- fmt.Errorf("event %s: %s (%v)", id, o, rec.statusCounts())
					return
				}
			}
			errs <- nil
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			return err
		}
	}
	return nil
}

// deliveredState asks the gateway for an event's delivery state through
// caddy webhooks deliveries and reports whether it says delivered.
func deliveredState(g *gateway, eid string) bool {
	out, err := g.cli("webhooks", "deliveries", eid)
	if err != nil {
		return false
	}
	var states []struct {
		Status string `json:"status"`
	}
	if json.Unmarshal([]byte(out), &states) != nil {
		return false
	}
	for _, s := range states {
		if s.Status == "delivered" {
			return true
		}
	}
	return false
}
