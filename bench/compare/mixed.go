package main

import (
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/hookgate/hookgate/internal/testgw"
)

// mixedOptions are the flags of -mode mixed.
type mixedOptions struct {
	backlog     int64         // events stored before the destination exists
	concurrency int           // the destination's concurrency
	ingestConns int           // closed-loop ingest clients during the mixed phase
	ingestRate  int           // > 0: offer this constant rate instead of a closed loop
	drain       time.Duration // longest wait for the backlog to drain at the end
}

// mixedPhase is one measured window of the mixed run.
type mixedPhase struct {
	Phase        string  `json:"phase"`
	Seconds      float64 `json:"seconds"`
	DeliveriesPS float64 `json:"deliveries_per_s"`
	IngestRPS    float64 `json:"ingest_rps"`
	IngestP99Ms  float64 `json:"ingest_p99_ms,omitempty"`
	IngestNon2xx int64   `json:"ingest_non_2xx"`
	LagAtEnd     int64   `json:"lag_at_end"` // events stored, not yet delivered
	ServerCPUPct float64 `json:"server_cpu_pct"`
	// ServerRunqPct is the time the server's threads waited for a CPU, in
	// percent of the window (more than 100 when several waited at once),
	// -1 where the kernel keeps no schedstat.
	ServerRunqPct float64 `json:"server_runq_wait_pct"`
	LoadGenCPUPct float64 `json:"load_generator_cpu_pct"` // this process: ingest clients and the sink
	Load          loadAvg `json:"load_average"`
	// ServerCPUPerDeliveryUs is the server's CPU per delivery in µs, in
	// a phase without ingest only (with ingest the CPU is shared and
	// cannot be split). Unlike deliveries/s it hardly moves with how
	// much of its core the server got, which makes it the figure to
	// compare two builds by on a shared machine.
	ServerCPUPerDeliveryUs float64 `json:"server_cpu_us_per_delivery,omitempty"`
}

// mixedReport is the mixed run, as written to -out.
type mixedReport struct {
	Started     time.Time    `json:"started"`
	Machine     machine      `json:"machine"`
	Backlog     int64        `json:"backlog"`
	Concurrency int          `json:"concurrency"`
	IngestConns int          `json:"ingest_conns"`
	IngestRate  int          `json:"ingest_rate,omitempty"`
	Phases      []mixedPhase `json:"phases"`
	DrainS      float64      `json:"drain_s"` // after ingest stopped, until every event was delivered (-1: not within -drain)
}

// sink is the destination: a fasthttp server on loopback in this process
// that answers 204 at once and counts what it received.
type sink struct {
	ln  net.Listener
	srv *fasthttp.Server
	got atomic.Int64
}

func startSink() (*sink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &sink{ln: ln}
	s.srv = &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		s.got.Add(1)
		ctx.SetStatusCode(fasthttp.StatusNoContent)
	}}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

func (s *sink) url() string { return "http://" + s.ln.Addr().String() + "/hook" }

// mixedConfig is `sync always` (the default) with, when sinkURL is set,
// one destination at concurrency conc delivering to it.
func mixedConfig(sinkURL string, conc int, env []string) config {
	c := configNamed("hookgate-always")
	c.Name = "hookgate-mixed"
	c.Env = env
	if sinkURL != "" {
		c.Webhooks += fmt.Sprintf("\n\t\tdestination sink {\n\t\t\turl %s\n\t\t\tconcurrency %d\n\t\t}", sinkURL, conc)
	}
	return c
}

// runMixed stores a backlog with no destination, restarts the gateway on
// the same store with a destination at mo.concurrency pointing to a sink
// in this process, and measures deliveries/s first with no ingest (the
// backlog alone), then while clients ingest, then how long the rest takes
// to drain.
func runMixed(o options, mo mixedOptions, pinned bool) mixedReport {
	dir, err := os.MkdirTemp("", "hookgate-mixed-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	rep := mixedReport{Started: time.Now().UTC(), Machine: describeMachine(pinned, o.serverProcs),
		Backlog: mo.backlog, Concurrency: mo.concurrency, IngestConns: mo.ingestConns, IngestRate: mo.ingestRate}
	w := newWorkload(o.addr, mixedConfig("", 0, o.serverEnv), o.body)

	srv, err := startServerIn(dir, true, o.bin, mixedConfig("", 0, o.serverEnv), o.addr, pinned, o.serverProcs, w.probe)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("mixed: storing a backlog of %d events", mo.backlog)
	closedLoopUntil(w, 64, mo.backlog)
	srv.stop()

	sk, err := startSink()
	if err != nil {
		log.Fatal(err)
	}
	defer sk.srv.Shutdown()
	c := mixedConfig(sk.url(), mo.concurrency, o.serverEnv)
	adminPort, err := testgw.FreePort()
	if err != nil {
		log.Fatal(err)
	}
	c.Admin = "127.0.0.1:" + adminPort
	srv, err = startServerIn(dir, true, o.bin, c, o.addr, pinned, o.serverProcs, w.probe)
	if err != nil {
		log.Fatal(err)
	}
	defer srv.stop()
	time.Sleep(o.warmup)
	rep.Phases = append(rep.Phases, measurePhase("deliveries only (backlog)", srv, sk, w, func() closedResult {
		stop := cpuProfile(c.Admin, o.profile, "deliveries-only", o.duration)
		time.Sleep(o.duration)
		stop()
		return closedResult{}
	}))
	rep.Phases = append(rep.Phases, measurePhase("deliveries while ingest runs", srv, sk, w, func() closedResult {
		defer cpuProfile(c.Admin, o.profile, "deliveries-and-ingest", o.duration)()
		if mo.ingestRate > 0 {
			r := constantRate(w, mo.ingestRate, o.duration)
			return closedResult{Requests: int64(r.Requests - r.Failed), Failed: int64(r.Failed), P99: r.P99}
		}
		return closedLoop(w, mo.ingestConns, o.duration)
	}))
	rep.DrainS = waitDrained(sk, w, mo.drain)
	return rep
}

// measurePhase runs load and measures, over the same window, the sink's
// deliveries/s, the ingest the load achieved, the lag at its end and the
// CPU of the server and of this process.
func measurePhase(name string, srv *server, sk *sink, w *workload, load func() closedResult) mixedPhase {
	la0 := readLoadAvg()
	cpu0, err := srv.cpuTicks()
	if err != nil {
		log.Fatal(err)
	}
	waits := startRunqWaits(srv.cmd.Process.Pid)
	self0, got0, t0 := selfCPU(), sk.got.Load(), time.Now()
	r := load()
	el := time.Since(t0)
	got1, self1 := sk.got.Load(), selfCPU()
	serverWait, _ := waits.end()
	cpu1, err := srv.cpuTicks()
	if err != nil {
		log.Fatal(err)
	}
	p := mixedPhase{
		Phase: name, Seconds: el.Seconds(),
		DeliveriesPS: float64(got1-got0) / el.Seconds(),
		IngestRPS:    float64(r.Requests) / el.Seconds(), IngestP99Ms: ms(r.P99), IngestNon2xx: r.Failed,
		LagAtEnd:      w.stored.Load() - got1,
		ServerCPUPct:  float64(cpu1-cpu0) / ticksPerSecond / el.Seconds() * 100,
		ServerRunqPct: percentOf(serverWait, el),
		LoadGenCPUPct: (self1 - self0).Seconds() / el.Seconds() * 100,
		Load:          loadAvg{Start: la0, End: readLoadAvg()},
	}
	if r.Requests == 0 && p.DeliveriesPS > 0 {
		p.ServerCPUPerDeliveryUs = cpuPerDeliveryUs(p.ServerCPUPct, p.DeliveriesPS)
	}
	log.Printf("mixed: %-30s %8.0f deliveries/s  %8.0f ingest req/s  lag %d", name, p.DeliveriesPS, p.IngestRPS, p.LagAtEnd)
	return p
}

// cpuPerDeliveryUs is the server's CPU per delivery in µs: pct percent
// of one core (10⁴ µs a second per percent) over perSec deliveries a
// second.
func cpuPerDeliveryUs(pct, perSec float64) float64 {
	return pct * 1e4 / perSec
}

// percentOf is d in percent of window, -1 when d is unknown (-1).
func percentOf(d, window time.Duration) float64 {
	if d < 0 {
		return -1
	}
	return d.Seconds() / window.Seconds() * 100
}

// waitDrained waits until the sink has received every event stored (the
// backlog, the probes and the ingest answered 2xx) and returns how long that took, or
// -1 after max.
func waitDrained(sk *sink, w *workload, max time.Duration) float64 {
	t0 := time.Now()
	for time.Since(t0) < max {
		if sk.got.Load() >= w.stored.Load() {
			return time.Since(t0).Seconds()
		}
		time.Sleep(50 * time.Millisecond)
	}
	log.Printf("mixed: not drained after %s: %d events stored, %d deliveries", max, w.stored.Load(), sk.got.Load())
	return -1
}

// cpuProfile starts a CPU profile and an allocation profile (the
// allocations of the window only) of the server over d from its admin
// listener into dir/name.{cpu,allocs}.pb.gz, when dir is set; the returned
// function waits for them.
func cpuProfile(admin, dir, name string, d time.Duration) func() {
	if dir == "" {
		return func() {}
	}
	var wg sync.WaitGroup
	for _, kind := range []struct{ path, file string }{{"profile", "cpu"}, {"allocs", "allocs"}} {
		wg.Go(func() {
			url := fmt.Sprintf("http://%s/debug/pprof/%s?seconds=%d", admin, kind.path, max(1, int(d.Seconds())))
			if err := fetchToFile(url, filepath.Join(dir, name+"."+kind.file+".pb.gz")); err != nil {
				log.Printf("%s: %s profile: %v", name, kind.file, err)
			}
		})
	}
	return wg.Wait
}

// selfCPU is this process's user+system CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// printMixed writes the mixed run as a Markdown table.
func printMixed(w io.Writer, r mixedReport) {
	m := r.Machine
	fmt.Fprintf(w, "\n%s, %d cores, Linux %s, %s; pinned (server core 1, load and sink core 0): %v; server GOMAXPROCS %d\n",
		m.CPU, m.Cores, m.Kernel, m.Go, m.Pinned, m.ServerProcs)
	ingest := fmt.Sprintf("closed loop, %d conns", r.IngestConns)
	if r.IngestRate > 0 {
		ingest = fmt.Sprintf("%d req/s offered", r.IngestRate)
	}
	fmt.Fprintf(w, "backlog %d events, one destination at concurrency %d, sync always, ingest %s; drained %.1f s after ingest stopped\n\n",
		r.Backlog, r.Concurrency, ingest, r.DrainS)
	fmt.Fprintln(w, "| phase | s | deliveries/s | ingest req/s | ingest p99 ms | ingest non-2xx | lag at end | server CPU % | server CPU µs a delivery | server runq wait % | load gen + sink CPU % | load avg start → end |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
	for _, p := range r.Phases {
		perDelivery := "–" // shared with ingest
		if p.ServerCPUPerDeliveryUs > 0 {
			perDelivery = fmt.Sprintf("%.1f", p.ServerCPUPerDeliveryUs)
		}
		fmt.Fprintf(w, "| %s | %.1f | %.0f | %.0f | %.2f | %d | %d | %.0f | %s | %.0f | %.0f | %.2f → %.2f |\n",
			p.Phase, p.Seconds, p.DeliveriesPS, p.IngestRPS, p.IngestP99Ms, p.IngestNon2xx, p.LagAtEnd, p.ServerCPUPct, perDelivery, p.ServerRunqPct, p.LoadGenCPUPct, p.Load.Start, p.Load.End)
	}
}
