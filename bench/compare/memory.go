package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hookgate/hookgate/internal/testgw"
)

// memoryOptions are the flags of -mode memory.
type memoryOptions struct {
	events int64         // events to store
	every  int64         // sample every this many events
	conns  int           // closed-loop clients
	rest   time.Duration // wait before the at-rest samples
	dir    string        // parent of the store directory
	keep   bool          // leave the store in place
	dedup  string        // dedup_window, "" for the default (6h)
}

// memSample is the server's memory at one point of the memory run.
type memSample struct {
	Phase  string  `json:"phase"`
	Events int64   `json:"events_stored"`
	AtS    float64 `json:"at_s"` // since the phase started
	RSSMiB float64 `json:"rss_mib"`
	HWMMiB float64 `json:"peak_rss_mib"`
	goHeap
}

// goHeap is the gateway's Go heap as its /debug/pprof/heap?debug=1 page
// prints runtime.MemStats (MiB, and the number of GCs so far).
type goHeap struct {
	HeapInuseMiB float64 `json:"heap_inuse_mib"`
	HeapSysMiB   float64 `json:"heap_sys_mib"`
	NextGCMiB    float64 `json:"next_gc_mib"`
	SysMiB       float64 `json:"go_sys_mib"`
	NumGC        int64   `json:"num_gc"`
}

// memoryReport is the memory run, as written to -out.
type memoryReport struct {
	Started     time.Time   `json:"started"`
	Machine     machine     `json:"machine"`
	Events      int64       `json:"events"`
	BodyBytes   int         `json:"body_bytes"`
	Conns       int         `json:"conns"`
	DedupWindow string      `json:"dedup_window"`
	Env         []string    `json:"server_env,omitempty"`
	IngestRPS   float64     `json:"ingest_rps"`
	Non2xx      int64       `json:"non_2xx"`
	StoreMiB    float64     `json:"store_mib"`
	RestartS    float64     `json:"restart_ready_s"`
	Samples     []memSample `json:"samples"`
}

// memoryConfig is `sync always` (the default) with the admin listener on,
// for /debug/pprof.
func memoryConfig(mo memoryOptions, admin string, env []string) config {
	c := configNamed("hookgate-always")
	c.Name = "hookgate-memory"
	c.Admin = admin
	c.Env = env
	if mo.dedup != "" {
		c.Webhooks += "\n\t\tdedup_window " + mo.dedup
	}
	return c
}

// runMemory stores mo.events events of o.body bytes with fresh delivery
// ids in one gateway process, sampling its memory every mo.every events,
// at rest after the ingest, then again after a restart on the same store
// (which rebuilds the dedup window from the stored events).
func runMemory(o options, mo memoryOptions, pinned bool) memoryReport {
	adminPort, err := testgw.FreePort()
	if err != nil {
		log.Fatal(err)
	}
	admin := "127.0.0.1:" + adminPort
	c := memoryConfig(mo, admin, o.serverEnv)
	dir, err := os.MkdirTemp(mo.dir, "hookgate-memory-")
	if err != nil {
		log.Fatal(err)
	}
	if !mo.keep {
		defer os.RemoveAll(dir)
	}
	rep := memoryReport{
		Started: time.Now().UTC(), Machine: describeMachine(pinned, o.serverProcs),
		Events: mo.events, BodyBytes: o.body, Conns: mo.conns, DedupWindow: orDefaultString(mo.dedup, "6h (default)"), Env: o.serverEnv,
	}
	w := newWorkload(o.addr, c, o.body)
	m := &memProbe{admin: admin, profile: o.profile}

	srv, err := startServerIn(dir, true, o.bin, c, o.addr, pinned, o.serverProcs, w.probe)
	if err != nil {
		log.Fatal(err)
	}
	m.srv = srv
	rep.Samples = append(rep.Samples, m.sample("empty", w, time.Now()))
	r, samples := ingestSampled(w, m, mo)
	rep.Samples = append(rep.Samples, samples...)
	rep.IngestRPS, rep.Non2xx = float64(r.Requests)/r.Elapsed.Seconds(), r.Failed
	rep.Samples = append(rep.Samples, m.atRest("after ingest", w, mo.rest)...)
	srv.stop()
	rep.StoreMiB = float64(dirSize(filepath.Join(dir, "store"))) / (1 << 20)

	t0 := time.Now()
	srv, err = startServerIn(dir, true, o.bin, c, o.addr, pinned, o.serverProcs, w.probe)
	if err != nil {
		log.Fatal(err)
	}
	rep.RestartS = time.Since(t0).Seconds()
	m.srv = srv
	rep.Samples = append(rep.Samples, m.sample("restarted", w, t0))
	rep.Samples = append(rep.Samples, m.atRest("after restart", w, mo.rest)...)
	srv.stop()
	return rep
}

// ingestSampled sends mo.events requests from mo.conns clients and samples
// the server's memory each time another mo.every have been sent.
func ingestSampled(w *workload, m *memProbe, mo memoryOptions) (closedResult, []memSample) {
	done := make(chan closedResult)
	start := time.Now()
	go func() { done <- closedLoopUntil(w, mo.conns, mo.events) }()
	var samples []memSample
	next := mo.every
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case r := <-done:
			samples = append(samples, m.sample("ingest done", w, start))
			return r, samples
		case <-tick.C:
			if w.stored.Load() >= next {
				s := m.sample("ingest", w, start)
				log.Printf("memory: %8d events  RSS %5.0f MiB  peak %5.0f MiB  heap in use %5.0f MiB", s.Events, s.RSSMiB, s.HWMMiB, s.HeapInuseMiB)
				samples = append(samples, s)
				next += mo.every
			}
		}
	}
}

// memProbe reads one server's memory.
type memProbe struct {
	srv     *server
	admin   string // the server's admin listener
	profile string // directory for heap profiles, "" for none
}

// sample reads the server's RSS, peak RSS and Go heap now.
func (m *memProbe) sample(phase string, w *workload, since time.Time) memSample {
	s := memSample{Phase: phase, Events: w.stored.Load(), AtS: time.Since(since).Seconds()}
	rss, err1 := m.srv.rss()
	hwm, err2 := m.srv.peakRSS()
	if err1 != nil || err2 != nil {
		log.Fatalf("memory: /proc of the server: %v %v", err1, err2)
	}
	s.RSSMiB, s.HWMMiB = mib(rss), mib(hwm)
	h, err := m.heap(false, "")
	if err != nil {
		log.Printf("memory: Go heap: %v", err)
	}
	s.goHeap = h
	return s
}

// atRest waits d, samples, then samples again after a GC the heap profile
// forces (and writes that profile when asked).
func (m *memProbe) atRest(phase string, w *workload, d time.Duration) []memSample {
	time.Sleep(d)
	s := m.sample(phase+", at rest", w, time.Now().Add(-d))
	file := ""
	if m.profile != "" {
		file = filepath.Join(m.profile, strings.ReplaceAll(phase, " ", "-")+".heap.pb.gz")
	}
	if _, err := m.heap(true, file); err != nil {
		log.Printf("memory: heap profile: %v", err)
	}
	g := m.sample(phase+", after a forced GC", w, time.Now().Add(-d))
	return []memSample{s, g}
}

// heap reads the server's Go heap figures from its admin listener's
// /debug/pprof/heap (runtime/pprof: debug=1 ends with runtime.MemStats as
// "# Name = value" lines). With gc the server collects first; file, when
// set, receives the binary profile for `go tool pprof`.
func (m *memProbe) heap(gc bool, file string) (goHeap, error) {
	q := "?debug=1"
	if gc {
		q += "&gc=1"
	}
	stats, err := fetchMemStats("http://" + m.admin + "/debug/pprof/heap" + q)
	if err != nil || file == "" {
		return stats, err
	}
	return stats, fetchToFile("http://"+m.admin+"/debug/pprof/heap", file)
}

// numGC is the server's GC cycles so far, from its admin listener (-1
// when it has none).
func (s *server) numGC() (int64, error) {
	if s.admin == "" {
		return -1, errors.New("no admin listener")
	}
	h, err := fetchMemStats("http://" + s.admin + "/debug/pprof/heap?debug=1")
	return h.NumGC, err
}

func fetchMemStats(url string) (goHeap, error) {
	resp, err := http.Get(url)
	if err != nil {
		return goHeap{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return goHeap{}, fmt.Errorf("%s: status %d", url, resp.StatusCode)
	}
	return parseMemStats(resp.Body)
}

// parseMemStats reads the "# HeapInuse = 123" lines of a debug=1 heap
// profile.
func parseMemStats(r io.Reader) (goHeap, error) {
	v := map[string]int64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "# "), " = ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(val), 10, 64); err == nil {
			v[name] = n
		}
	}
	if _, ok := v["HeapInuse"]; !ok {
		return goHeap{}, fmt.Errorf("no MemStats in the heap profile (%v)", sc.Err())
	}
	return goHeap{
		HeapInuseMiB: mib(v["HeapInuse"]), HeapSysMiB: mib(v["HeapSys"]),
		NextGCMiB: mib(v["NextGC"]), SysMiB: mib(v["Sys"]), NumGC: v["NumGC"],
	}, nil
}

func fetchToFile(url, file string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// dirSize is the bytes of the regular files under dir.
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func orDefaultString(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// printMemory writes the memory run as a Markdown table.
func printMemory(w io.Writer, r memoryReport) {
	m := r.Machine
	fmt.Fprintf(w, "\n%s, %d cores, Linux %s, %s; pinned: %v; server GOMAXPROCS %d; env %v\n",
		m.CPU, m.Cores, m.Kernel, m.Go, m.Pinned, m.ServerProcs, r.Env)
	fmt.Fprintf(w, "%d events of %d B, %d conns, sync always, dedup window %s: %.0f req/s, %d non-2xx; store %.0f MiB on disk; restart ready in %.1f s\n\n",
		r.Events, r.BodyBytes, r.Conns, r.DedupWindow, r.IngestRPS, r.Non2xx, r.StoreMiB, r.RestartS)
	fmt.Fprintln(w, "| phase | events stored | at s | RSS MiB | peak RSS MiB | Go heap in use MiB | next GC MiB | Go sys MiB | GCs |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, s := range r.Samples {
		fmt.Fprintf(w, "| %s | %d | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %d |\n",
			s.Phase, s.Events, s.AtS, s.RSSMiB, s.HWMMiB, s.HeapInuseMiB, s.NextGCMiB, s.SysMiB, s.NumGC)
	}
}
