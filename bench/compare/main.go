// Command compare puts Hookgate beside Caddy's own ceiling in one run on
// one machine: it builds the gateway (go build ./cmd/caddy), then starts
// each configuration in turn on the same port under the same load — Caddy
// `respond`, Caddy `reverse_proxy` to a loopback backend, Hookgate
// `sync always` (group commit), Hookgate `sync 1s`, Hookgate with GitHub
// HMAC verification (sync always) — and prints, for each configuration and
// connection count, requests/s, p50, p99, the server's CPU time per
// request (from /proc/<pid>/stat), its peak RSS (VmHWM) and the ratio of
// its requests/s to `respond` in the same run. A constant-rate pass then
// offers a fixed load (vegeta, open loop) to each configuration and
// reports its latency.
//
//	go run ./bench/compare -duration 5s -conns 16,64,256 -rate 1000 -out compare.json
//
// Every cell starts a fresh server on an empty store. When taskset exists
// and the machine has two cores or more, the server runs on core 1 and
// this program (the load generator) on core 0. Run it from the module
// root; it needs Linux for /proc.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/hookgate/hookgate/internal/testgw"
)

// options are the command line.
type options struct {
	duration, warmup, rateDuration time.Duration
	conns                          []int
	rate                           int
	body                           int
	addr                           string
	bin                            string
	out                            string
	only                           map[string]bool
	serverProcs                    int
	mode                           string
	memory                         memoryOptions
	mixed                          mixedOptions
	serverEnv                      []string
	loadgenGC                      bool
	profile                        string
	pin                            bool
}

func parseFlags() options {
	var o options
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "measured time of each closed-loop cell (0 skips them)")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured load before each cell")
	flag.DurationVar(&o.rateDuration, "rate-duration", 5*time.Second, "time of each constant-rate run (0 skips them)")
	conns := flag.String("conns", "16,64,256", "connection counts, comma-separated")
	flag.IntVar(&o.rate, "rate", 1000, "offered requests/s of the constant-rate runs")
	flag.IntVar(&o.body, "body", 2048, "request body size in bytes")
	flag.StringVar(&o.addr, "addr", "127.0.0.1:18080", "host:port every configuration listens on")
	flag.StringVar(&o.bin, "bin", "", "gateway binary to use instead of building ./cmd/caddy")
	flag.StringVar(&o.out, "out", "", "write the results as JSON to this file")
	only := flag.String("configs", "", "run only these configurations, comma-separated (default: all)")
	flag.IntVar(&o.serverProcs, "server-procs", 2, "GOMAXPROCS of every server (0: Go's default, which is 1 when pinned to one core)")
	flag.StringVar(&o.mode, "mode", "compare", "compare (the tables), memory (store -events and sample the gateway's memory) or mixed (forwarder and ingest together)")
	flag.Int64Var(&o.memory.events, "events", 1_000_000, "memory: events to store")
	flag.Int64Var(&o.memory.every, "every", 100_000, "memory: sample every this many events")
	flag.IntVar(&o.memory.conns, "memory-conns", 64, "memory: closed-loop clients")
	flag.DurationVar(&o.memory.rest, "rest", 10*time.Second, "memory: wait before the at-rest samples")
	flag.StringVar(&o.memory.dir, "store-dir", "", "memory: parent directory of the store (default: $TMPDIR)")
	flag.BoolVar(&o.memory.keep, "keep", false, "memory: leave the store on disk")
	flag.StringVar(&o.memory.dedup, "dedup", "", "memory: dedup_window of the gateway (default: its default, 6h)")
	flag.StringVar(&o.profile, "profile", "", "write the gateway's profiles into this directory: compare, CPU and allocations of each measured window (<config>-<conns>, <config>-rate); memory, heap at rest; mixed, CPU and allocations while ingest and deliveries run")
	flag.Int64Var(&o.mixed.backlog, "backlog", 150_000, "mixed: events stored before the destination starts")
	flag.IntVar(&o.mixed.concurrency, "concurrency", 32, "mixed: the destination's concurrency")
	flag.IntVar(&o.mixed.ingestConns, "ingest-conns", 64, "mixed: closed-loop ingest clients")
	flag.IntVar(&o.mixed.ingestRate, "ingest-rate", 0, "mixed: offer this constant ingest rate instead of a closed loop (0: closed loop)")
	flag.DurationVar(&o.mixed.drain, "drain", 2*time.Minute, "mixed: longest wait for the backlog to drain at the end")
	flag.BoolVar(&o.loadgenGC, "loadgen-gc", false, "leave the load generator's GC on during measured windows (default: off, bounded by a 2 GiB heap limit)")
	flag.BoolVar(&o.pin, "pin", true, "pin the server to core 1 and this program to core 0 (when taskset exists and there are two cores); false lets both use every core")
	lazy := flag.String("lazy", "1s", "sync interval of the lazy configuration (named hookgate-<interval>)")
	env := flag.String("server-env", "", "more environment of every server, comma-separated (GOGC=50,GOMEMLIMIT=400MiB)")
	flag.Parse()
	setLazy(*lazy)
	if *env != "" {
		o.serverEnv = strings.Split(*env, ",")
	}
	for _, c := range strings.Split(*conns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || n < 1 {
			log.Fatalf("-conns: %q is not a positive number", c)
		}
		o.conns = append(o.conns, n)
	}
	if *only != "" {
		o.only = map[string]bool{}
		for _, n := range strings.Split(*only, ",") {
			o.only[strings.TrimSpace(n)] = true
		}
	}
	return o
}

// report is the whole run, as written to -out.
type report struct {
	Started  time.Time   `json:"started"`
	Machine  machine     `json:"machine"`
	Duration string      `json:"duration_per_cell"`
	BodySize int         `json:"body_bytes"`
	Closed   []closedRow `json:"closed_loop"`
	Rate     []rateRow   `json:"constant_rate"`
}

// machine describes where the run happened.
type machine struct {
	CPU         string `json:"cpu"`
	Cores       int    `json:"cores"`
	Kernel      string `json:"kernel"`
	Go          string `json:"go"`
	Pinned      bool   `json:"pinned"`
	ServerProcs int    `json:"server_gomaxprocs"`
}

// serverStats are what the server's /proc files and admin listener, and
// this process's own counters, told about one measured window.
type serverStats struct {
	CPUMicrosPerReq float64 `json:"cpu_us_per_req"`
	PeakRSSMiB      float64 `json:"peak_rss_mib"`
	// RunqWaitMicrosPerReq is the time the server's threads were runnable
	// but waited for a CPU (schedstat), per request: other jobs on its
	// core; -1 where the kernel keeps no schedstat.
	RunqWaitMicrosPerReq float64 `json:"server_runq_wait_us_per_req"`
	// ServerGCs is how many GC cycles the server ran in the window, -1
	// when its admin listener did not tell.
	ServerGCs int64 `json:"server_gcs"`
	// LoadGenGCs and LoadGenRunqWaitMicrosPerReq are the same for this
	// process, the load generator.
	LoadGenGCs                  uint32  `json:"load_generator_gcs"`
	LoadGenRunqWaitMicrosPerReq float64 `json:"load_generator_runq_wait_us_per_req"`
	Load                        loadAvg `json:"load_average"`
}

// closedRow is one closed-loop cell.
type closedRow struct {
	Config  string  `json:"config"`
	Conns   int     `json:"conns"`
	RPS     float64 `json:"rps"`
	Ratio   float64 `json:"ratio_to_respond"`
	P50Ms   float64 `json:"p50_ms"`
	P99Ms   float64 `json:"p99_ms"`
	Non2xx  int64   `json:"non_2xx"`
	Elapsed float64 `json:"elapsed_s"`
	serverStats
}

// rateRow is one constant-rate run.
type rateRow struct {
	Config   string  `json:"config"`
	Offered  float64 `json:"offered_rps"`
	Achieved float64 `json:"achieved_rps"`
	P50Ms    float64 `json:"p50_ms"`
	P99Ms    float64 `json:"p99_ms"`
	MaxMs    float64 `json:"max_ms"`
	Non2xx   uint64  `json:"non_2xx"`
	serverStats
}

func main() {
	log.SetFlags(0)
	o := parseFlags()
	debug.SetMemoryLimit(2 << 30) // the GC's backstop while -loadgen-gc is off
	pinned := o.pin && pinSelf()
	rep := report{Started: time.Now().UTC(), Machine: describeMachine(pinned, o.serverProcs), Duration: o.duration.String(), BodySize: o.body}
	if o.bin == "" {
		dir, err := os.MkdirTemp("", "hookgate-compare-bin-")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(dir)
		log.Print("building ./cmd/caddy ...")
		if o.bin, err = testgw.Build(dir, "hookgate"); err != nil {
			log.Fatal(err)
		}
	}
	switch o.mode {
	case "compare":
	case "memory":
		rep := runMemory(o, o.memory, pinned)
		printMemory(os.Stdout, rep)
		writeJSON(o.out, rep)
		return
	case "mixed":
		rep := runMixed(o, o.mixed, pinned)
		printMixed(os.Stdout, rep)
		writeJSON(o.out, rep)
		return
	default:
		log.Fatalf("-mode %q: want compare, memory or mixed", o.mode)
	}
	if o.duration <= 0 {
		o.conns = nil // -duration 0: the constant-rate pass only
	}
	for _, c := range selected(o) {
		for _, n := range o.conns {
			row, err := runClosed(o, c, n, pinned)
			if err != nil {
				log.Fatal(err)
			}
			log.Printf("%-16s %4d conns  %8.0f req/s", c.Name, n, row.RPS)
			rep.Closed = append(rep.Closed, row)
		}
	}
	setRatios(rep.Closed)
	if o.rateDuration > 0 {
		for _, c := range selected(o) {
			row, err := runRate(o, c, pinned)
			if err != nil {
				log.Fatal(err)
			}
			rep.Rate = append(rep.Rate, row)
		}
	}
	printReport(os.Stdout, rep)
	writeJSON(o.out, rep)
}

// writeJSON writes v as indented JSON to file, when file is set.
func writeJSON(file string, v any) {
	if file == "" {
		return
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(file, append(b, '\n'), 0o644); err != nil {
		log.Fatal(err)
	}
}

// perReq is d in µs per request, -1 when d is unknown (-1).
func perReq(d time.Duration, reqs float64) float64 {
	if d < 0 {
		return -1
	}
	return float64(d.Microseconds()) / reqs
}

// setLazy makes the lazy configuration sync every interval.
func setLazy(interval string) {
	for i := range configs {
		if configs[i].Name == "hookgate-1s" {
			configs[i].Name, configs[i].Webhooks = "hookgate-"+interval, "sync "+interval
		}
	}
}

func selected(o options) []config {
	var cs []config
	for _, c := range configs {
		if o.only == nil || o.only[c.Name] {
			c.Env = o.serverEnv
			cs = append(cs, c)
		}
	}
	return cs
}

// runClosed measures one closed-loop cell. The CPU per request counts
// every request sent in the measured window (warm-up excluded).
func runClosed(o options, c config, conns int, pinned bool) (closedRow, error) {
	var r closedResult
	warm := func(w *workload) { closedLoop(w, conns, o.warmup) }
	load := func(w *workload) { r = closedLoop(w, conns, o.duration) }
	st, err := measureAfterWarmup(o, c, pinned, warm, load, fmt.Sprintf("%s-%d", c.Name, conns), o.duration)
	if err != nil {
		return closedRow{}, err
	}
	return closedRow{
		Config: c.Name, Conns: conns,
		RPS:   float64(r.Requests) / r.Elapsed.Seconds(),
		P50Ms: ms(r.P50), P99Ms: ms(r.P99), Non2xx: r.Failed, Elapsed: r.Elapsed.Seconds(),
		serverStats: st,
	}, nil
}

// measureAfterWarmup starts a server for c, runs warm (unmeasured, when
// o.warmup > 0), then load, and returns the server's figures over load.
// With -profile, the server's CPU and allocation profiles of the first d
// of load go to <o.profile>/<profile>.{cpu,allocs}.pb.gz.
func measureAfterWarmup(o options, c config, pinned bool, warm, load func(w *workload), profile string, d time.Duration) (serverStats, error) {
	w := newWorkload(o.addr, c, o.body)
	if c.Admin == "" { // for the server's GC count
		port, err := testgw.FreePort()
		if err != nil {
			return serverStats{}, err
		}
		c.Admin = "127.0.0.1:" + port
	}
	srv, err := startServer(o.bin, c, o.addr, pinned, o.serverProcs, w.probe)
	if err != nil {
		return serverStats{}, err
	}
	defer srv.stop()
	if o.warmup > 0 {
		warm(w)
	}
	if o.profile != "" {
		measured := load
		load = func(w *workload) {
			defer cpuProfile(c.Admin, o.profile, profile, d)()
			measured(w)
		}
	}
	return srv.stats(w, o.loadgenGC, load)
}

// stats runs load and returns the server's CPU per request sent during
// it, its peak RSS, how long its threads and this process's waited for a
// CPU, and the GC cycles of both. Unless gcInLoad is set, this process's
// GC is off during load (the heap limit still bounds it), so the load
// generator's own collections are not in the latencies.
func (s *server) stats(w *workload, gcInLoad bool, load func(w *workload)) (serverStats, error) {
	var st serverStats
	st.Load.Start = readLoadAvg()
	before, err := s.cpuTicks()
	if err != nil {
		return st, err
	}
	gc0, gcErr0 := s.numGC()
	waits := startRunqWaits(s.cmd.Process.Pid)
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	n := w.seq.Load()
	if !gcInLoad {
		old := debug.SetGCPercent(-1)
		load(w)
		debug.SetGCPercent(old)
	} else {
		load(w)
	}
	runtime.ReadMemStats(&ms1)
	serverWait, selfWait := waits.end()
	after, err1 := s.cpuTicks()
	rss, err2 := s.peakRSS()
	if err := errors.Join(err1, err2); err != nil {
		return st, err
	}
	gc1, gcErr1 := s.numGC()
	st.Load.End = readLoadAvg()
	reqs := float64(max(w.seq.Load()-n, 1))
	st.CPUMicrosPerReq = float64(after-before) / ticksPerSecond * 1e6 / reqs
	st.PeakRSSMiB = float64(rss) / (1 << 20)
	st.RunqWaitMicrosPerReq, st.LoadGenRunqWaitMicrosPerReq = perReq(serverWait, reqs), perReq(selfWait, reqs)
	st.ServerGCs = gc1 - gc0
	if errors.Join(gcErr0, gcErr1) != nil {
		st.ServerGCs = -1
	}
	st.LoadGenGCs = ms1.NumGC - ms0.NumGC
	return st, nil
}

// runRate measures c at the constant offered rate.
func runRate(o options, c config, pinned bool) (rateRow, error) {
	var r rateResult
	// The warm-up offers the same rate through the same pacer: a
	// closed-loop warm-up would leave seconds of full-speed writes for the
	// lazy sync and the kernel to flush inside the measured window, and
	// the pacer's first requests would open its connections.
	var p *pacer
	warm := func(w *workload) { p = newPacer(w, o.rate); p.run(o.warmup) }
	load := func(w *workload) {
		if p == nil {
			p = newPacer(w, o.rate)
		}
		r = p.run(o.rateDuration)
	}
	st, err := measureAfterWarmup(o, c, pinned, warm, load, c.Name+"-rate", o.rateDuration)
	if err != nil {
		return rateRow{}, err
	}
	return rateRow{
		Config: c.Name, Offered: r.Offered, Achieved: r.Achieved,
		P50Ms: ms(r.P50), P99Ms: ms(r.P99), MaxMs: ms(r.Max), Non2xx: r.Failed,
		serverStats: st,
	}, nil
}

// setRatios fills each row's ratio to respond at the same connections.
func setRatios(rows []closedRow) {
	base := map[int]float64{}
	for _, r := range rows {
		if r.Config == "respond" {
			base[r.Conns] = r.RPS
		}
	}
	for i := range rows {
		if b := base[rows[i].Conns]; b > 0 {
			rows[i].Ratio = rows[i].RPS / b
		}
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// pinSelf moves every thread of this process to core 0, when taskset
// exists and there are two cores or more, so the server has core 1.
func pinSelf() bool {
	if runtime.NumCPU() < 2 {
		log.Print("one core: server and load generator share it")
		return false
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		log.Print("no taskset: server and load generator are not pinned")
		return false
	}
	out, err := exec.Command("taskset", "-a", "-p", "-c", "0", strconv.Itoa(os.Getpid())).CombinedOutput()
	if err != nil {
		log.Printf("taskset: %v %s: not pinned", err, out)
		return false
	}
	runtime.GOMAXPROCS(1)
	return true
}

func describeMachine(pinned bool, procs int) machine {
	m := machine{Cores: runtime.NumCPU(), Go: runtime.Version(), Pinned: pinned, ServerProcs: procs}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				m.CPU = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}
