package main

import (
	"os"
	"strconv"
	"strings"
)

// loadAvg is the machine's one-minute load average (/proc/loadavg) at the
// start and the end of a measured window: a window that ran while other
// jobs kept the cores busy shows here, so a noisy figure can be told apart.
type loadAvg struct {
	Start float64 `json:"start"`
	End   float64 `json:"end"`
}

// readLoadAvg returns the one-minute load average, or -1 where
// /proc/loadavg cannot be read.
func readLoadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}
