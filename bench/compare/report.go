package main

import (
	"fmt"
	"io"
)

// printReport writes the two tables as Markdown, ready for the docs.
func printReport(w io.Writer, r report) {
	m := r.Machine
	fmt.Fprintf(w, "\n%s, %d cores, Linux %s, %s; pinned (server core 1, load core 0): %v; server GOMAXPROCS %d; body %d B; %s per cell\n\n",
		m.CPU, m.Cores, m.Kernel, m.Go, m.Pinned, m.ServerProcs, r.BodySize, r.Duration)
	fmt.Fprintln(w, "| configuration | conns | req/s | ratio to respond | p50 ms | p99 ms | CPU µs/req | peak RSS MiB | non-2xx |"+noiseHeader)
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|"+noiseRule)
	for _, c := range r.Closed {
		fmt.Fprintf(w, "| %s | %d | %.0f | %.2f | %.2f | %.2f | %.0f | %.0f | %d |%s\n",
			c.Config, c.Conns, c.RPS, c.Ratio, c.P50Ms, c.P99Ms, c.CPUMicrosPerReq, c.PeakRSSMiB, c.Non2xx, noise(c.serverStats))
	}
	if len(r.Rate) == 0 {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| configuration | offered req/s | achieved req/s | p50 ms | p99 ms | max ms | CPU µs/req | peak RSS MiB | non-2xx |"+noiseHeader)
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|"+noiseRule)
	for _, c := range r.Rate {
		fmt.Fprintf(w, "| %s | %.0f | %.0f | %.2f | %.2f | %.2f | %.0f | %.0f | %d |%s\n",
			c.Config, c.Offered, c.Achieved, c.P50Ms, c.P99Ms, c.MaxMs, c.CPUMicrosPerReq, c.PeakRSSMiB, c.Non2xx, noise(c.serverStats))
	}
}

// The columns that say how noisy a cell was: the server's and the load
// generator's threads' wait for a CPU per request (schedstat), their GC
// cycles in the window, and the machine's load average at its start and
// end.
const (
	noiseHeader = " runq wait µs/req server / load | GCs server / load | load avg |"
	noiseRule   = "---:|---:|---|"
)

func noise(s serverStats) string {
	return fmt.Sprintf(" %.0f / %.0f | %d / %d | %.1f → %.1f |",
		s.RunqWaitMicrosPerReq, s.LoadGenRunqWaitMicrosPerReq, s.ServerGCs, s.LoadGenGCs, s.Load.Start, s.Load.End)
}
