package caddymodule

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// mustAdd adds a job to r.
func mustAdd(t *testing.T, r *jobRegistry, kind string, f EventFilter, matched int) *job {
	t.Helper()
	j, err := r.add(kind, f, matched)
	if err != nil {
		t.Fatalf("add %s job: %v", kind, err)
	}
	return j
}

// TestJobRegistryBounded: a finished bulk job stays readable for jobKeep
// after the registry first sees it finished, then goes; a running job
// stays; and the registry never holds more than maxJobs, the oldest
// finished jobs making room before any running one.
func TestJobRegistryBounded(t *testing.T) {
	r := &jobRegistry{m: map[string]*job{}}
	finish := func(j *job) { j.queuedAll.Store(true) } // nothing queued: done
	running := mustAdd(t, r, "replay", EventFilter{}, 5)
	done := mustAdd(t, r, "redrive", EventFilter{}, 0)
	finish(done)
	now := time.Now()
	r.mu.Lock()
	r.prune(now, maxJobs)
	r.mu.Unlock()
	if r.get(done.v.ID) == nil || r.get(running.v.ID) == nil {
		t.Fatal("a job just finished, or one running, was dropped")
	}
	r.mu.Lock()
	r.prune(now.Add(jobKeep+time.Second), maxJobs)
	r.mu.Unlock()
	if r.get(done.v.ID) != nil {
		t.Errorf("job %s finished more than %v ago is still kept", done.v.ID, jobKeep)
	}
	if r.get(running.v.ID) == nil {
		t.Error("a running job was dropped for its age")
	}

	var finished []*job
	for i := range maxJobs + 20 {
		j := mustAdd(t, r, "replay", EventFilter{Source: fmt.Sprint(i)}, 0)
		finish(j)
		finished = append(finished, j)
	}
	if n := len(r.m); n > maxJobs {
		t.Fatalf("%d jobs kept, want at most %d", n, maxJobs)
	}
	if r.get(running.v.ID) == nil {
		t.Error("the running job was dropped while finished ones were kept")
	}
	if last := finished[len(finished)-1]; r.get(last.v.ID) == nil {
		t.Error("the newest job was dropped")
	}
	if r.get(finished[0].v.ID) != nil {
		t.Error("the oldest finished job was kept over newer ones")
	}
}

// TestJobRegistryKeepsUnfinished: while maxJobs jobs are unfinished, a
// new one is refused with a 429 and none is dropped (its counts would
// go nowhere and its GET would 404); once one finishes, a new job takes
// its place.
func TestJobRegistryKeepsUnfinished(t *testing.T) {
	r := &jobRegistry{m: map[string]*job{}}
	var all []*job
	for i := range maxJobs {
		all = append(all, mustAdd(t, r, "replay", EventFilter{Source: fmt.Sprint(i)}, 5))
	}
	_, err := r.add("replay", EventFilter{}, 5)
	var ae caddy.APIError
	if !errors.As(err, &ae) || ae.HTTPStatus != http.StatusTooManyRequests {
		t.Fatalf("add with %d jobs running: %v, want a 429", maxJobs, err)
	}
	if r.full() == nil {
		t.Error("full says there is room")
	}
	for _, j := range all {
		if r.get(j.v.ID) == nil {
			t.Fatalf("running job %s was dropped", j.v.ID)
		}
	}
	all[7].mu.Lock()
	all[7].v.Error = "stopped" // failed: finished
	all[7].mu.Unlock()
	if err := r.full(); err != nil {
		t.Fatalf("full with one job finished: %v", err)
	}
	fresh := mustAdd(t, r, "redrive", EventFilter{}, 1)
	if r.get(all[7].v.ID) != nil || r.get(fresh.v.ID) == nil {
		t.Error("the finished job did not make room for the new one")
	}
	for i, j := range all {
		if i != 7 && r.get(j.v.ID) == nil {
			t.Errorf("running job %d was dropped", i)
		}
	}
}

// TestJobRegistryDropsFirstEnded: the finished job that makes room is
// the one that ended first, not the one that started first.
func TestJobRegistryDropsFirstEnded(t *testing.T) {
	r := &jobRegistry{m: map[string]*job{}}
	t0 := time.Now().Add(-30 * time.Minute)
	var all []*job
	for i := range maxJobs {
		j := mustAdd(t, r, "replay", EventFilter{Source: fmt.Sprint(i)}, 0)
		j.queuedAll.Store(true)
		j.v.StartedAt = t0.Add(time.Duration(i) * time.Second)
		j.ended = t0.Add(10*time.Minute + time.Duration(i)*time.Second)
		all = append(all, j)
	}
	long, short := all[0], all[50] // started first but ended last; ended first
	long.ended = t0.Add(20 * time.Minute)
	short.ended = t0.Add(time.Minute)
	mustAdd(t, r, "replay", EventFilter{}, 0)
	if r.get(short.v.ID) != nil {
		t.Error("the job that ended first is still kept")
	}
	if r.get(long.v.ID) == nil {
		t.Error("the job that started first but ended last was dropped")
	}
}
