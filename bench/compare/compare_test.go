package main

import (
	"bytes"
	"os"
	"os/exec"
	"runtime/pprof"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/hookgate/hookgate/caddymodule"
)

// TestConfigsAdapt: every configuration's Caddyfile adapts to a Caddy
// config, with the backend port filled in and the store where asked.
func TestConfigsAdapt(t *testing.T) {
	dir := t.TempDir()
	extra := []config{
		memoryConfig(memoryOptions{dedup: "1h"}, "127.0.0.1:2019", nil),
		mixedConfig("http://127.0.0.1:9/hook", 32, nil),
	}
	for _, c := range append(slices.Clone(configs), extra...) {
		text := c.caddyfile("127.0.0.1:18080", dir, "18081")
		if strings.Contains(text, "{backend}") || strings.Contains(text, "%!") {
			t.Fatalf("%s: unfilled template:\n%s", c.Name, text)
		}
		out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(text), map[string]any{"filename": c.Name})
		if err != nil {
			t.Fatalf("%s does not adapt: %v\n%s", c.Name, err, text)
		}
		if hasStore := strings.Contains(string(out), `"webhooks"`); hasStore != (c.Webhooks != "") {
			t.Fatalf("%s: webhooks app present %v, want %v", c.Name, hasStore, c.Webhooks != "")
		}
	}
}

// TestProcFigures reads this process's own /proc figures the way the
// program reads the server's.
func TestProcFigures(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	s := &server{cmd: &exec.Cmd{Process: &os.Process{Pid: os.Getpid()}}}
	x := 0
	for i := range 20_000_000 { // burn a little CPU so the count moves
		x += i
	}
	_ = x
	ticks, err := s.cpuTicks()
	if err != nil || ticks <= 0 {
		t.Fatalf("cpu ticks %d, %v", ticks, err)
	}
	rss, err := s.peakRSS()
	if err != nil || rss < 1<<20 || rss > 64<<30 {
		t.Fatalf("peak RSS %d bytes, %v", rss, err)
	}
}

// TestSetRatios: each row's ratio is to respond at the same connections.
func TestSetRatios(t *testing.T) {
	rows := []closedRow{
		{Config: "respond", Conns: 16, RPS: 1000},
		{Config: "respond", Conns: 64, RPS: 2000},
		{Config: "hookgate-always", Conns: 16, RPS: 250},
		{Config: "hookgate-always", Conns: 64, RPS: 1000},
	}
	setRatios(rows)
	if rows[2].Ratio != 0.25 || rows[3].Ratio != 0.5 || rows[0].Ratio != 1 {
		t.Fatalf("ratios %v %v %v", rows[0].Ratio, rows[2].Ratio, rows[3].Ratio)
	}
}

// TestExtraConfigs: the memory run's config has the admin listener and the
// dedup window it was given; the mixed run's has the destination.
func TestExtraConfigs(t *testing.T) {
	mem := memoryConfig(memoryOptions{dedup: "1h"}, "127.0.0.1:2019", []string{"GOGC=50"}).caddyfile("127.0.0.1:18080", t.TempDir(), "1")
	for _, want := range []string{"admin 127.0.0.1:2019", "dedup_window 1h", "sync always"} {
		if !strings.Contains(mem, want) {
			t.Fatalf("memory config lacks %q:\n%s", want, mem)
		}
	}
	mix := mixedConfig("http://127.0.0.1:9/hook", 32, nil).caddyfile("127.0.0.1:18080", t.TempDir(), "1")
	for _, want := range []string{"admin off", "url http://127.0.0.1:9/hook", "concurrency 32"} {
		if !strings.Contains(mix, want) {
			t.Fatalf("mixed config lacks %q:\n%s", want, mix)
		}
	}
}

// TestParseMemStats reads the runtime.MemStats lines of this process's own
// debug=1 heap profile, the page the memory run reads from the gateway.
func TestParseMemStats(t *testing.T) {
	var b bytes.Buffer
	if err := pprof.Lookup("heap").WriteTo(&b, 1); err != nil {
		t.Fatal(err)
	}
	h, err := parseMemStats(&b)
	if err != nil {
		t.Fatal(err)
	}
	if h.HeapInuseMiB <= 0 || h.SysMiB < h.HeapInuseMiB || h.NextGCMiB <= 0 {
		t.Fatalf("implausible heap figures %+v", h)
	}
	if _, err := parseMemStats(strings.NewReader("heap profile: 0: 0 [0: 0] @ heap/1048576\n")); err == nil {
		t.Fatal("a profile without MemStats parsed")
	}
}

// TestSchedStatAndLoad reads this process's scheduler counters and the
// load average as the program reads the server's.
func TestSchedStatAndLoad(t *testing.T) {
	if _, err := os.Stat("/proc/self/task"); err != nil {
		t.Skip("no /proc")
	}
	before, err := readSchedStat(os.Getpid())
	if err != nil {
		t.Skip(err) // a kernel without schedstats
	}
	x := 0
	for i := range 20_000_000 {
		x += i
	}
	_ = x
	after, err := readSchedStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if d := after.sub(before); d.OnCPU <= 0 || d.RunqWait < 0 {
		t.Fatalf("schedstat did not move: %+v", d)
	}
	if l := readLoadAvg(); l < 0 {
		t.Fatalf("load average %v", l)
	}
}

// TestSetLazy renames the lazy configuration with its interval.
func TestSetLazy(t *testing.T) {
	saved := slices.Clone(configs)
	defer func() { configs = saved }()
	setLazy("1m")
	var found bool
	for _, c := range configs {
		if c.Name == "hookgate-1m" {
			found = c.Webhooks == "sync 1m"
		}
	}
	if !found {
		t.Fatalf("no hookgate-1m with sync 1m in %v", configs)
	}
}

// TestClosedLoopUntilCountsEveryRequest: a count-bounded closed loop
// against a loopback server sends at least n requests, every delivery id
// it takes is one request the server saw (none is spent on setup), and
// the sink of the mixed run counts them as delivered.
func TestClosedLoopUntilCountsEveryRequest(t *testing.T) {
	sk, err := startSink()
	if err != nil {
		t.Fatal(err)
	}
	defer sk.srv.Shutdown()
	addr := strings.TrimPrefix(strings.TrimSuffix(sk.url(), "/hook"), "http://")
	w := newWorkload(addr, config{Path: "/hook"}, 512)
	r := closedLoopUntil(w, 4, 200)
	if r.Failed != 0 || r.Requests < 200 || r.Requests > 200+4 {
		t.Fatalf("closed loop: %+v", r)
	}
	if sent, stored, got := w.seq.Load(), w.stored.Load(), sk.got.Load(); sent != r.Requests || stored != sent || got != sent {
		t.Fatalf("sent %d, stored %d, sink got %d, requests %d", sent, stored, got, r.Requests)
	}
	if d := waitDrained(sk, w, time.Second); d < 0 {
		t.Fatal("not drained although the sink has every request")
	}
	w.stored.Add(1) // one the sink never gets
	if d := waitDrained(sk, w, 100*time.Millisecond); d >= 0 {
		t.Fatalf("drained after %v with one event missing", d)
	}
}

// TestUnknownWaitStaysUnknown: a run-queue wait the kernel did not give
// (-1) prints as -1, not as a figure near zero.
func TestUnknownWaitStaysUnknown(t *testing.T) {
	if v := perReq(-1, 1000); v != -1 {
		t.Fatalf("perReq(unknown) = %v", v)
	}
	if v := percentOf(-1, time.Second); v != -1 {
		t.Fatalf("percentOf(unknown) = %v", v)
	}
	if v := perReq(2*time.Millisecond, 1000); v != 2 {
		t.Fatalf("perReq(2ms, 1000) = %v µs", v)
	}
	if v := percentOf(1500*time.Millisecond, time.Second); v != 150 {
		t.Fatalf("percentOf(1.5s, 1s) = %v %%", v)
	}
}
