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
	fmt.Fprintln(w, "| configuration | conns | req/s | ratio to respond | p50 ms | p99 ms | CPU µs/req | peak RSS MiB | non-2xx |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, c := range r.Closed {
		fmt.Fprintf(w, "| %s | %d | %.0f | %.2f | %.2f | %.2f | %.0f | %.0f | %d |\n",
			c.Config, c.Conns, c.RPS, c.Ratio, c.P50Ms, c.P99Ms, c.CPUMicrosPerReq, c.PeakRSSMiB, c.Non2xx)
	}
	if len(r.Rate) == 0 {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| configuration | offered req/s | achieved req/s | p50 ms | p99 ms | max ms | CPU µs/req | peak RSS MiB | non-2xx |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, c := range r.Rate {
		fmt.Fprintf(w, "| %s | %.0f | %.0f | %.2f | %.2f | %.2f | %.0f | %.0f | %d |\n",
			c.Config, c.Offered, c.Achieved, c.P50Ms, c.P99Ms, c.MaxMs, c.CPUMicrosPerReq, c.PeakRSSMiB, c.Non2xx)
	}
}
