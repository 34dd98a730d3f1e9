package caddymodule

import (
	"fmt"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestParseRate(t *testing.T) {
	for _, tt := range []struct {
		in     string
		events int
		window time.Duration
		bad    bool
	}{
		{in: "100/s", events: 100, window: time.Second},
		{in: "6000/m", events: 6000, window: time.Minute},
		{in: "5/h", events: 5, window: time.Hour},
		{in: "1/2s", events: 1, window: 2 * time.Second},
		{in: "10/1m30s", events: 10, window: 90 * time.Second},
		{in: "2/d", events: 2, window: 24 * time.Hour},
		{in: "100", bad: true},
		{in: "0/s", bad: true},
		{in: "-1/s", bad: true},
		{in: "x/s", bad: true},
		{in: "1/", bad: true},
		{in: "1/0s", bad: true},
		{in: "1/-1s", bad: true},
		{in: "1/fortnight", bad: true},
	} {
		events, window, err := parseRate(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("parseRate(%q) accepted: %d/%s", tt.in, events, window)
			}
			continue
		}
		if err != nil || events != tt.events || window != tt.window {
			t.Errorf("parseRate(%q) = %d, %s, %v; want %d, %s", tt.in, events, window, err, tt.events, tt.window)
		}
	}
}

func TestRetryAfterRoundsUp(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                       "1",
		time.Millisecond:        "1",
		time.Second:             "1",
		time.Second + 1:         "2",
		1999 * time.Millisecond: "2",
		90 * time.Second:        "90",
	} {
		if got := retryAfter(d); got != want {
			t.Errorf("retryAfter(%s) = %s, want %s", d, got, want)
		}
	}
}

// TestIPTableTake: each client has its own bucket, the wait is the time to
// the next token, and an IPv6 client is its /64.
func TestIPTableTake(t *testing.T) {
	tab, err := newIPTable(&RateLimit{Events: 2, Window: caddy.Duration(time.Second), Burst: 2})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	for i := range 2 {
		if _, ok := tab.take(a, now); !ok {
			t.Fatalf("take %d of a burst of 2 refused", i+1)
		}
	}
	wait, ok := tab.take(a, now)
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("third take: ok=%v wait=%s, want refused with 500ms to the next token", ok, wait)
	}
	if _, ok := tab.take(b, now); !ok {
		t.Fatal("another client shares the first one's bucket")
	}
	if _, ok := tab.take(a, now.Add(wait)); !ok {
		t.Fatal("refused after waiting the announced time")
	}
	if _, ok := tab.take(netip.MustParseAddr("::ffff:192.0.2.2"), now); !ok {
		t.Fatal("an IPv4-mapped address is not its IPv4 client")
	}
	if _, ok := tab.take(netip.MustParseAddr("::ffff:192.0.2.2"), now); ok {
		t.Fatal("the IPv4-mapped form got a bucket of its own")
	}

	v6 := []string{"2001:db8:1:2::1", "2001:db8:1:2:ffff::9", "2001:db8:1:2::1%eth0"}
	for i, s := range v6[:2] {
		if _, ok := tab.take(netip.MustParseAddr(s), now); !ok {
			t.Fatalf("v6 take %d refused", i+1)
		}
	}
	if _, ok := tab.take(netip.MustParseAddr(v6[2]), now); ok {
		t.Fatal("three addresses of one /64 got more than its burst of 2")
	}
	if _, ok := tab.take(netip.MustParseAddr("2001:db8:1:3::1"), now); !ok {
		t.Fatal("the next /64 shares the bucket")
	}
}

// TestIPTableBounded: the table never holds more clients than its cap,
// forgets the least recently seen first, and drops idle buckets (which
// are full again, so forgetting them changes nothing).
func TestIPTableBounded(t *testing.T) {
	const maxClients = 64 * ipShards
	tab, err := newIPTable(&RateLimit{Events: 1, Window: caddy.Duration(time.Second), Burst: 1, MaxClients: maxClients})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i := range 20 * maxClients {
		tab.take(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), now)
		if i%1000 == 0 && tab.len() > maxClients {
			t.Fatalf("after %d clients the table holds %d, cap %d", i+1, tab.len(), maxClients)
		}
	}
	if n := tab.len(); n > maxClients || n < maxClients*9/10 {
		t.Fatalf("table holds %d clients, want about the cap %d", n, maxClients)
	}

	// The most recent client is the last to go.
	last := netip.AddrFrom4([4]byte{10, 255, 255, 255})
	tab.take(last, now)
	if _, ok := tab.take(last, now); ok {
		t.Fatal("the most recent client lost its (empty) bucket")
	}
}

// TestIPTableExpires: once buckets have been idle a full refill time they
// are full again, and new clients sweep them out as they arrive.
func TestIPTableExpires(t *testing.T) {
	tab, err := newIPTable(&RateLimit{Events: 1, Window: caddy.Duration(time.Second), Burst: 2})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	const n = 1000
	for i := range n {
		tab.take(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), now)
	}
	later := now.Add(2 * time.Second) // burst 2 at 1/s: full again
	for i := range n {
		tab.take(netip.AddrFrom4([4]byte{172, 16, byte(i >> 8), byte(i)}), later)
	}
	if got := tab.len(); got > n+n/10 {
		t.Fatalf("table holds %d clients; the %d idle ones were not swept out", got, n)
	}
}

// BenchmarkIPTableMemory reports what one remembered client costs, the
// figure behind defaultMaxClients.
func BenchmarkIPTableMemory(b *testing.B) {
	const clients = 100_000
	for range b.N {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		tab, err := newIPTable(&RateLimit{Events: 20, Burst: 40, MaxClients: 2 * clients})
		if err != nil {
			b.Fatal(err)
		}
		now := time.Now()
		for i := range clients {
			tab.take(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), now)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if tab.len() != clients {
			b.Fatalf("table holds %d", tab.len())
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/clients, "bytes/client")
		runtime.KeepAlive(tab)
	}
}

// BenchmarkIPTableTake is the per-request cost of a per-IP limit, spread
// over many clients.
func BenchmarkIPTableTake(b *testing.B) {
	tab, err := newIPTable(&RateLimit{Events: 1000, Burst: 1000})
	if err != nil {
		b.Fatal(err)
	}
	addrs := make([]netip.Addr, 4096)
	for i := range addrs {
		addrs[i] = netip.MustParseAddr(fmt.Sprintf("10.0.%d.%d", i>>8, i&255))
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			tab.take(addrs[i%len(addrs)], time.Now())
			i++
		}
	})
}

// TestRateLimitJSONErrors: limits written as JSON, which the Caddyfile
// parser never produces, are checked at provision time too.
func TestRateLimitJSONErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    Handler
		want string
	}{
		{"no events", Handler{RatePerIP: &RateLimit{}}, "want at least 1 event per positive window"},
		{"negative window", Handler{RatePerIP: &RateLimit{Events: 1, Window: -1}}, "want at least 1 event per positive window"},
		{"negative burst", Handler{RatePerIP: &RateLimit{Events: 1, Burst: -1}}, "burst -1"},
		{"negative max_clients", Handler{RatePerIP: &RateLimit{Events: 1, MaxClients: -1}}, "max_clients -1"},
		{"max_clients on a source rate", Handler{Sources: []*Source{{Name: "a", Verify: &VerifyConfig{Scheme: "none"}, Rate: &RateLimit{Events: 1, MaxClients: 5}}}}, "max_clients applies to rate_per_ip only"},
		{"bad allow_ips", Handler{Sources: []*Source{{Name: "a", Verify: &VerifyConfig{Scheme: "none"}, AllowIPs: []string{"10.0.0.0/99"}}}}, `allow_ips "10.0.0.0/99"`},
		{"bad sunset", Handler{Deprecated: []*Deprecation{{Version: "v1", Sunset: "June"}}}, `sunset: "June"`},
		{"deflate", Handler{Sources: []*Source{{Name: "a", Verify: &VerifyConfig{Scheme: "none"}, AcceptEncoding: []string{"deflate"}}}}, `accept_encoding "deflate"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.h
			if h.Sources == nil {
				h.Sources = []*Source{{Name: "a", Verify: &VerifyConfig{Scheme: "none"}}}
			}
			err := h.provision()
			_ = h.Cleanup()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestRateOneDefault: sources and destinations read a rate the same way,
// and a rate without a burst has one window's worth for both.
func TestRateOneDefault(t *testing.T) {
	src, err := parseRateArgs("rate", []string{"50/s"}, false)
	if err != nil {
		t.Fatal(err)
	}
	_, srcBurst, err := src.limit()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		line  string
		rate  float64
		burst int
	}{
		{"rate 50/s", 50, 50},
		{"rate 600/m burst 20", 10, 20},
		{"rate 1/h", 1.0 / 3600, 1},
	} {
		d := caddyfile.NewTestDispenser(tc.line)
		d.Next()
		dc := &DestinationConfig{Name: "d", URL: "http://127.0.0.1:1"}
		if err := dc.parseRate(d); err != nil {
			t.Fatalf("%s: %v", tc.line, err)
		}
		fc, err := dc.forwarderConfig(caddy.NewReplacer())
		if err != nil {
			t.Fatalf("%s: %v", tc.line, err)
		}
		if fc.Burst != tc.burst || fc.Rate < tc.rate*0.999 || fc.Rate > tc.rate*1.001 {
			t.Errorf("%s: rate %g burst %d, want %g and %d", tc.line, fc.Rate, fc.Burst, tc.rate, tc.burst)
		}
	}
	if srcBurst != 50 {
		t.Errorf("source rate 50/s: burst %d, want 50 like a destination's", srcBurst)
	}
}

// TestBucketClockNeverGoesBack: requests reach a bucket out of arrival
// order under load. A late call with an earlier time must not make the
// bucket credit an interval twice: x/time/rate alone moves its clock back
// and grants a token at the next call.
func TestBucketClockNeverGoesBack(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		take func(now time.Time) bool
	}{
		{"source", func() func(time.Time) bool {
			b := newBucket(1, 1)
			return func(now time.Time) bool { _, ok := b.take(now); return ok }
		}()},
		{"per-IP", func() func(time.Time) bool {
			tab, err := newIPTable(&RateLimit{Events: 1, Window: caddy.Duration(time.Second), Burst: 1})
			if err != nil {
				t.Fatal(err)
			}
			addr := netip.MustParseAddr("192.0.2.7")
			return func(now time.Time) bool { _, ok := tab.take(addr, now); return ok }
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.take(t0) {
				t.Fatal("first request refused by a full bucket")
			}
			if !tc.take(t0.Add(10 * time.Second)) {
				t.Fatal("a request 10 s later refused at 1/s")
			}
			// A request that arrived at +5 s reaches the bucket now: the
			// token of +10 s is spent, so it is refused...
			if tc.take(t0.Add(5 * time.Second)) {
				t.Fatal("a late request with an earlier arrival time was granted a spent token")
			}
			// ...and it must not hand the +5 s → +10 s interval out again.
			if tc.take(t0.Add(10 * time.Second)) {
				t.Fatal("the bucket's clock went back: the same interval was credited twice")
			}
			if !tc.take(t0.Add(11 * time.Second)) {
				t.Fatal("a request a second later refused: the bucket lost time")
			}
		})
	}
}
