package caddymodule

import (
	"net/netip"
	"testing"
)

func TestParseAllowIPs(t *testing.T) {
	p, err := parseAllowIPs([]string{"192.30.252.0/22", "2606:50c0::/32", "203.0.113.7", "::ffff:198.51.100.1", "private_ranges"})
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]bool{
		"192.30.253.4":       true,
		"192.30.0.1":         false,
		"2606:50c0:1::5":     true,
		"2606:50c1::5":       false,
		"203.0.113.7":        true,
		"203.0.113.8":        false,
		"198.51.100.1":       true,
		"::ffff:203.0.113.7": true,
		"10.1.2.3":           true,
		"127.0.0.1":          true,
		"fd12::1%eth0":       true,
		"8.8.8.8":            false,
	} {
		if got := allowed(p, netip.MustParseAddr(addr)); got != want {
			t.Errorf("allowed(%s) = %v, want %v", addr, got, want)
		}
	}
	if allowed(p, netip.Addr{}) {
		t.Error("an unknown client address is allowed")
	}
	for _, bad := range []string{"192.30.252.0/33", "github", "1.2.3", ""} {
		if _, err := parseAllowIPs([]string{bad}); err == nil {
			t.Errorf("allow_ips %q accepted", bad)
		}
	}
}
