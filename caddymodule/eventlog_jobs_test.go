package caddymodule

import (
	"fmt"
	"testing"
	"time"
)

// TestJobRegistryBounded: a finished bulk job stays readable for jobKeep
// after the registry first sees it finished, then goes; a running job
// stays; and the registry never holds more than maxJobs, the oldest
// finished jobs making room before any running one.
func TestJobRegistryBounded(t *testing.T) {
	r := &jobRegistry{m: map[string]*job{}}
	finish := func(j *job) { j.queuedAll.Store(true) } // nothing queued: done
	running := r.add("replay", EventFilter{}, 5)
	done := r.add("redrive", EventFilter{}, 0)
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
		j := r.add("replay", EventFilter{Source: fmt.Sprint(i)}, 0)
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
