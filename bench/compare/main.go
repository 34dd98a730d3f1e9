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
	"flag"
	"log"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"
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
}

func parseFlags() options {
	var o options
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "measured time of each closed-loop cell")
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
	flag.Parse()
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

// serverStats are what the server's /proc files told.
type serverStats struct {
	CPUMicrosPerReq float64 `json:"cpu_us_per_req"`
	PeakRSSMiB      float64 `json:"peak_rss_mib"`
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
	pinned := pinSelf()
	rep := report{Started: time.Now().UTC(), Machine: describeMachine(pinned, o.serverProcs), Duration: o.duration.String(), BodySize: o.body}
	if o.bin == "" {
		dir, err := os.MkdirTemp("", "hookgate-compare-bin-")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(dir)
		log.Print("building ./cmd/caddy ...")
		if o.bin, err = buildGateway(dir); err != nil {
			log.Fatal(err)
		}
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
	if o.out != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			log.Fatal(err)
		}
		if err := os.WriteFile(o.out, append(b, '\n'), 0o644); err != nil {
			log.Fatal(err)
		}
	}
}

func selected(o options) []config {
	var cs []config
	for _, c := range configs {
		if o.only == nil || o.only[c.Name] {
			cs = append(cs, c)
		}
	}
	return cs
}

// runClosed measures one closed-loop cell. The CPU per request counts
// every request sent in the measured window (warm-up excluded).
func runClosed(o options, c config, conns int, pinned bool) (closedRow, error) {
	var r closedResult
	st, err := measureAfterWarmup(o, c, pinned, conns, func(w *workload) { r = closedLoop(w, conns, o.duration) })
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

// measureAfterWarmup is measure with an unmeasured closed-loop warm-up of
// o.warmup at conns before the measured load.
func measureAfterWarmup(o options, c config, pinned bool, conns int, load func(w *workload)) (serverStats, error) {
	w := newWorkload(o.addr, c, o.body)
	srv, err := startServer(o.bin, c, o.addr, pinned, o.serverProcs, w.probe)
	if err != nil {
		return serverStats{}, err
	}
	defer srv.stop()
	if o.warmup > 0 {
		closedLoop(w, conns, o.warmup)
	}
	return srv.stats(w, load)
}

// stats runs load and returns the server's CPU per request sent during it
// and its peak RSS.
func (s *server) stats(w *workload, load func(w *workload)) (serverStats, error) {
	before, err := s.cpuTicks()
	if err != nil {
		return serverStats{}, err
	}
	n := w.seq.Load()
	load(w)
	after, err := s.cpuTicks()
	if err != nil {
		return serverStats{}, err
	}
	rss, err := s.peakRSS()
	if err != nil {
		return serverStats{}, err
	}
	reqs := max(w.seq.Load()-n, 1)
	return serverStats{
		CPUMicrosPerReq: float64(after-before) / ticksPerSecond * 1e6 / float64(reqs),
		PeakRSSMiB:      float64(rss) / (1 << 20),
	}, nil
}

// runRate measures c at the constant offered rate.
func runRate(o options, c config, pinned bool) (rateRow, error) {
	var r rateResult
	st, err := measureAfterWarmup(o, c, pinned, 16, func(w *workload) { r = constantRate(w, o.rate, o.rateDuration) })
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
