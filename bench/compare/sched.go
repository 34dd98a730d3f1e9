package main

import (
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// schedStat is what the kernel's scheduler counted for every thread of a
// process (/proc/<pid>/task/*/schedstat, see the kernel's
// Documentation/scheduler/sched-stats.rst): time on a CPU and time spent
// runnable on a run queue, waiting for a CPU. The wait is the machine's
// share of a latency figure: a request whose thread waits for a core that
// another job holds is slow for no fault of the code under test.
type schedStat struct {
	OnCPU, RunqWait time.Duration
}

// readSchedStat sums the schedstat of every thread of pid now. Threads
// that exited are not counted (Go rarely ends its threads).
func readSchedStat(pid int) (schedStat, error) {
	files, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(files) == 0 {
		return schedStat{}, fmt.Errorf("no schedstat for pid %d (kernel without CONFIG_SCHED_INFO?): %v", pid, err)
	}
	var s schedStat
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the thread ended meanwhile
		}
		v := strings.Fields(string(b))
		if len(v) < 2 {
			continue
		}
		cpu, err1 := strconv.ParseInt(v[0], 10, 64)
		wait, err2 := strconv.ParseInt(v[1], 10, 64)
		if err1 != nil || err2 != nil {
			return schedStat{}, fmt.Errorf("%s: %q", f, b)
		}
		s.OnCPU += time.Duration(cpu)
		s.RunqWait += time.Duration(wait)
	}
	return s, nil
}

func (a schedStat) sub(b schedStat) schedStat {
	return schedStat{OnCPU: a.OnCPU - b.OnCPU, RunqWait: a.RunqWait - b.RunqWait}
}

// runqWaits measures, over one window, the run-queue wait of a server
// process and of this process. A kernel without schedstats makes both -1
// rather than failing the run.
type runqWaits struct {
	pid          int
	server, self schedStat
	err          error
}

// startRunqWaits reads both counters at the start of a window.
func startRunqWaits(pid int) runqWaits {
	r := runqWaits{pid: pid}
	var err1, err2 error
	r.server, err1 = readSchedStat(pid)
	r.self, err2 = readSchedStat(os.Getpid())
	r.err = errors.Join(err1, err2)
	return r
}

// end returns how long the server's and this process's threads waited
// for a CPU since start, summed over threads; -1 each when unknown.
func (r runqWaits) end() (server, self time.Duration) {
	s1, err1 := readSchedStat(r.pid)
	m1, err2 := readSchedStat(os.Getpid())
	if err := errors.Join(r.err, err1, err2); err != nil {
		log.Printf("run-queue wait unknown: %v", err)
		return -1, -1
	}
	return s1.sub(r.server).RunqWait, m1.sub(r.self).RunqWait
}
