package main

import (
	"strings"
	"testing"
)

// TestPrintMixedCPUPerDelivery: the table shows the server's CPU per
// delivery for a phase without ingest, and a dash where ingest shares the
// CPU.
func TestPrintMixedCPUPerDelivery(t *testing.T) {
	var b strings.Builder
	printMixed(&b, mixedReport{Phases: []mixedPhase{
		{Phase: "deliveries only (backlog)", DeliveriesPS: 20000, ServerCPUPct: 88, ServerCPUPerDeliveryUs: 44},
		{Phase: "deliveries while ingest runs", DeliveriesPS: 15000, IngestRPS: 1000, ServerCPUPct: 97},
	}})
	lines := strings.Split(b.String(), "\n")
	var backlog, mixed string
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "| deliveries only"):
			backlog = l
		case strings.HasPrefix(l, "| deliveries while"):
			mixed = l
		}
	}
	if !strings.Contains(backlog, "| 88 | 44.0 |") || !strings.Contains(mixed, "| 97 | – |") {
		t.Fatalf("table:\n%s", b.String())
	}
}

// TestCPUPerDelivery: a core 88 % busy delivering 20,000 a second spends
// 44 µs a delivery (8,800 µs of CPU a second / 20,000).
func TestCPUPerDelivery(t *testing.T) {
	if got := cpuPerDeliveryUs(88, 20000); got != 44 {
		t.Fatalf("cpuPerDeliveryUs(88, 20000) = %v, want 44", got)
	}
}
