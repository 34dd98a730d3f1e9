package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/hookgate/hookgate/caddymodule"
)

// TestConfigsAdapt: every configuration's Caddyfile adapts to a Caddy
// config, with the backend port filled in and the store where asked.
func TestConfigsAdapt(t *testing.T) {
	dir := t.TempDir()
	for _, c := range configs {
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
