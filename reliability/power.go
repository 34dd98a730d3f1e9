package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// errNoStrace means the power scenario cannot run here.
var errNoStrace = errors.New("strace is not installed or cannot trace here (apt-get install -y strace; ptrace must be allowed); the power-loss check needs it to trace the gateway's system calls")

// powerResult is what the system-call trace shows for each sync mode.
type powerResult struct {
	Always powerRun `json:"sync_always"`
	Lazy   powerRun `json:"sync_lazy"`
}

// powerRun is one traced run.
type powerRun struct {
	Sync string `json:"sync"`
	// Events counts 2xx'd events found in the trace (their write and
	// their answer); Covered those with a sync of the written file that
	// began after the write returned and returned before the answer was
	// written.
	Events  int `json:"events"`
	Covered int `json:"covered"`
	// Syncs counts fsync/fdatasync/syncfs calls in the run.
	Syncs int `json:"syncs"`
	// Acked counts the 2xx answers of the run.
	Acked int `json:"acked"`
	// Uncovered names a few events without a covering sync.
	Uncovered []string `json:"uncovered,omitempty"`
}

// powerViolations: with sync always every event is covered; with a lazy
// interval most are not (else the check could not tell the difference).
func (r *powerResult) powerViolations() []string {
	var v []string
	if r.Always.Events == 0 || r.Always.Covered != r.Always.Events {
		v = append(v, fmt.Sprintf("sync always: %d of %d events had a sync between their write and their 2xx (e.g. %v)", r.Always.Covered, r.Always.Events, r.Always.Uncovered))
	}
	for _, run := range []powerRun{r.Always, r.Lazy} {
		if run.Events*10 < run.Acked*9 {
			v = append(v, fmt.Sprintf("sync %s: the trace shows the write and answer of only %d of %d acknowledged events", run.Sync, run.Events, run.Acked))
		}
	}
	if r.Lazy.Events == 0 || r.Lazy.Covered*2 > r.Lazy.Events {
		v = append(v, fmt.Sprintf("sync %s: %d of %d events covered by a sync: the check cannot tell lazy from always", r.Lazy.Sync, r.Lazy.Covered, r.Lazy.Events))
	}
	return v
}

// runPower traces a gateway with strace while posting n events, once with
// sync always and once with a lazy interval.
func runPower(bin, dir string, n int, logf func(string, ...any)) (*powerResult, error) {
	if _, err := exec.LookPath("strace"); err != nil {
		return nil, errNoStrace
	}
	// strace may be installed yet not allowed to trace (no ptrace in a
	// container) or too old for --seccomp-bpf.
	if out, err := exec.Command("strace", "-f", "--seccomp-bpf", "-e", "trace=fsync", "-o", os.DevNull, "true").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("%w: strace cannot trace here: %v %s", errNoStrace, err, strings.TrimSpace(string(out)))
	}
	res := &powerResult{}
	var err error
	if res.Always, err = tracedRun(bin, filepath.Join(dir, "power-always"), "always", n); err != nil {
		return nil, err
	}
	logf("sync always: %d of %d events had a sync between write and 2xx (%d syncs)", res.Always.Covered, res.Always.Events, res.Always.Syncs)
	if res.Lazy, err = tracedRun(bin, filepath.Join(dir, "power-lazy"), "1m", n); err != nil {
		return nil, err
	}
	logf("sync 1m: %d of %d events had a sync between write and 2xx (%d syncs)", res.Lazy.Covered, res.Lazy.Events, res.Lazy.Syncs)
	return res, nil
}

// tracedRun runs one gateway under strace, posts n events from 4 clients
// and reads the trace.
func tracedRun(bin, dir, syncMode string, n int) (powerRun, error) {
	cfg := newGWConfig(dir)
	cfg.Sync = syncMode
	trace := filepath.Join(dir, "strace.out")
	wrap := []string{"strace", "-f", "--seccomp-bpf", "-tt", "-T", "-y", "-s", "65536", "-e", "trace=fsync,fdatasync,syncfs,pwrite64,write", "-o", trace}
	rec := newRecorder()
	g, err := startReady(bin, cfg, 2*time.Minute, rec, wrap...)
	if err != nil {
		return powerRun{}, err
	}
	defer g.stop()
	ctx, cancel := context.WithCancel(context.Background())
	ld := &load{rec: rec, url: g.demoURL, workers: 4, prefix: "pw"}
	ld.start(ctx)
	for rec.count(outcomeOK) < n && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	ld.wait()
	g.stop()
	run, err := analyseTrace(trace, rec.ids(outcomeOK))
	run.Sync, run.Acked = syncMode, rec.count(outcomeOK)
	return run, err
}

// syscallRec is one traced system call.
type syscallRec struct {
	name       string
	fd         int
	path       string // the fd's file, from strace -y
	start, end time.Time
	buf        string // the first argument string, escaped as strace prints it
}

// traceLine matches "PID HH:MM:SS.micro rest".
var traceLine = regexp.MustCompile(`^(\d+)\s+(\d\d:\d\d:\d\d\.\d+) (.*)$`)

// durationSuffix matches strace -T's " <0.000123>".
var durationSuffix = regexp.MustCompile(` <(\d+\.\d+)>$`)

// parseTrace reads an strace -f -tt -T file into completed calls.
func parseTrace(path string) ([]syscallRec, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []syscallRec
	pending := map[string]*syscallRec{} // pid → unfinished call
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		m := traceLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		pid, rest := m[1], m[3]
		ts, err := time.Parse("15:04:05.000000", m[2])
		if err != nil {
			continue
		}
		if strings.HasPrefix(rest, "<... ") {
			p := pending[pid]
			delete(pending, pid)
			if p == nil {
				continue
			}
			p.end = ts
			if d := durationSuffix.FindStringSubmatch(rest); d != nil {
				p.end = p.start.Add(secs(d[1]))
			}
			out = append(out, *p)
			continue
		}
		open := strings.IndexByte(rest, '(')
		if open <= 0 {
			continue
		}
		rec := syscallRec{name: rest[:open], start: ts, fd: -1}
		args := rest[open+1:]
		if i := strings.IndexFunc(args, func(r rune) bool { return r < '0' || r > '9' }); i > 0 {
			rec.fd, _ = strconv.Atoi(args[:i])
			// strace -y prints the fd's file: 13</store/.../1.blk>.
			if rest := args[i:]; strings.HasPrefix(rest, "<") {
				if end := strings.IndexByte(rest, '>'); end > 0 {
					rec.path = rest[1:end]
				}
			}
		}
		if i := strings.IndexByte(args, '"'); i >= 0 {
			rec.buf = args[i:]
		}
		if strings.HasSuffix(rest, "<unfinished ...>") {
			pending[pid] = &rec
			continue
		}
		rec.end = ts
		if d := durationSuffix.FindStringSubmatch(rest); d != nil {
			rec.end = ts.Add(secs(d[1]))
		}
		out = append(out, rec)
	}
	return out, sc.Err()
}

func secs(s string) time.Duration {
	f, _ := strconv.ParseFloat(s, 64)
	return time.Duration(f * float64(time.Second))
}

// analyseTrace finds, for each acknowledged id, the write that stored it
// and the write of its 2xx, and whether a sync of the written file (or of
// its filesystem) ran wholly between the two.
func analyseTrace(path string, ok []string) (powerRun, error) {
	calls, err := parseTrace(path)
	if err != nil {
		return powerRun{}, err
	}
	var run powerRun
	var syncs []syscallRec
	for _, c := range calls {
		if c.name == "fsync" || c.name == "fdatasync" || c.name == "syncfs" {
			syncs = append(syncs, c)
		}
	}
	run.Syncs = len(syncs)
	stored := map[string]syscallRec{}
	answered := map[string]syscallRec{}
	for _, c := range calls {
		if c.name != "write" && c.name != "pwrite64" {
			continue
		}
		// strace escapes quotes: the body is {\"id\":\"pw-1\",\"pad\"...,
		// the answer {\"id\":\"demo:pw-1\",...} after "HTTP/1.1 2".
		// One write may hold many events (a group commit): all count.
		for _, m := range bodyID.FindAllStringSubmatch(c.buf, -1) {
			if _, seen := stored[m[1]]; !seen && !strings.Contains(c.buf, "HTTP/1.1") {
				stored[m[1]] = c
			}
		}
		if id, ok := between(c.buf, `\"id\":\"demo:`, `\"`); ok && strings.HasPrefix(c.buf, `"HTTP/1.1 2`) {
			answered[id] = c
		}
	}
	for _, id := range ok {
		w, okw := stored[id]
		a, oka := answered[id]
		if !okw || !oka {
			continue
		}
		run.Events++
		if covered(w, a, syncs) {
			run.Covered++
		} else if len(run.Uncovered) < 5 {
			run.Uncovered = append(run.Uncovered, id)
		}
	}
	if run.Events == 0 {
		return run, fmt.Errorf("trace %s: found no event's write and answer (%d calls, %d writes of events, %d answers)", path, len(calls), len(stored), len(answered))
	}
	return run, nil
}

// bodyID finds the id in the load's bodies as strace prints them.
var bodyID = regexp.MustCompile(`\{\\"id\\":\\"([a-z]+-\d+)\\",\\"pad\\"`)

// covered reports whether a sync of w's file (through any descriptor, or
// a syncfs) began after w returned and returned before the answer a began.
func covered(w, a syscallRec, syncs []syscallRec) bool {
	for _, s := range syncs {
		sameFile := s.fd == w.fd
		if s.path != "" && w.path != "" {
			// The store may sync the file through another descriptor.
			sameFile = s.path == w.path
		}
		if (s.name == "syncfs" || sameFile) && !s.start.Before(w.end) && !s.end.After(a.start) {
			return true
		}
	}
	return false
}

// between returns the text between prefix and the next suffix.
func between(s, prefix, suffix string) (string, bool) {
	_, after, ok := strings.Cut(s, prefix)
	if !ok {
		return "", false
	}
	v, _, ok := strings.Cut(after, suffix)
	return v, ok
}
