package caddymodule

import (
	"errors"
	"fmt"
	"hash/maphash"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"golang.org/x/time/rate"
)

// Defaults of rate limits.
const (
	defaultRateWindow = time.Second
	// defaultMaxClients caps the client IPs one per-IP limit remembers. A
	// remembered client costs about 210 bytes (BenchmarkIPTableMemory), so
	// the cap bounds a table at about 21 MB however many addresses a
	// flood sprays.
	defaultMaxClients = 100_000
	// ipShards splits a per-IP table so concurrent requests from different
	// clients rarely wait on one lock.
	ipShards = 32
	// maxExpirePerInsert bounds the idle buckets one new client sweeps
	// out, so no request pays for a long sweep.
	maxExpirePerInsert = 4
	// ipv6Prefix is how much of an IPv6 address identifies a client: one
	// host usually holds a whole /64, so per-address buckets would let it
	// spray 2^64 fresh ones.
	ipv6Prefix = 64
)

// RateLimit is a token bucket: Events requests per Window on average, and
// up to Burst at once after a quiet spell. It is the one shape of a rate,
// for sources (a request that finds the bucket empty gets 429 with a
// Retry-After saying when a token will be there, before the body is read)
// and for destinations (an attempt waits for its token). In a Caddyfile it
// is "<events>/<window> [burst <n>]", read by parseRateArgs.
type RateLimit struct {
	// Events is how many requests the bucket admits per Window, at least 1.
	Events int `json:"events"`

	// Window is the period Events are counted over. Default: 1s.
	Window caddy.Duration `json:"window,omitempty"`

	// Burst is the bucket's size: how many requests may come at once.
	// Default: Events, one window's worth, for sources and destinations
	// alike; burst 1 paces requests evenly.
	Burst int `json:"burst,omitempty"`

	// MaxClients, for per-IP limits only, caps how many clients (IPv4
	// addresses, IPv6 /64 prefixes) are remembered. When the table is
	// full the client seen least recently is forgotten: it starts again
	// with a full bucket, which is what it would have after being idle.
	// The table is split in shards that each hold their share, so it may
	// start forgetting a little before it holds MaxClients. Default:
	// 100000 (about 21 MB).
	MaxClients int `json:"max_clients,omitempty"`
}

// limit returns the bucket's refill rate and size, checking the config.
func (rl *RateLimit) limit() (rate.Limit, int, error) {
	window := time.Duration(orDefault(rl.Window, caddy.Duration(defaultRateWindow)))
	if rl.Events < 1 || window <= 0 {
		return 0, 0, fmt.Errorf("rate %d/%s: want at least 1 event per positive window, e.g. 100/s", rl.Events, window)
	}
	burst := rl.burst()
	if burst < 1 {
		return 0, 0, fmt.Errorf("burst %d: must be at least 1", rl.Burst)
	}
	if rl.MaxClients < 0 {
		return 0, 0, fmt.Errorf("max_clients %d: must be positive", rl.MaxClients)
	}
	return rate.Limit(float64(rl.Events) / window.Seconds()), burst, nil
}

// String is the limit as the Caddyfile writes it, and the identity of its
// buckets across reloads.
func (rl *RateLimit) String() string {
	window := time.Duration(orDefault(rl.Window, caddy.Duration(defaultRateWindow)))
	s := fmt.Sprintf("%d/%s burst %d", rl.Events, window, rl.burst())
	if rl.MaxClients != 0 {
		s += " max_clients " + strconv.Itoa(rl.MaxClients)
	}
	return s
}

// burst is the bucket's size: Burst, by default Events. This is the one
// place the default is said.
func (rl *RateLimit) burst() int {
	return orDefault(rl.Burst, rl.Events)
}

// parseRateArgs reads the arguments of a rate line named name:
// "<events>/<window> [burst <n>] [max_clients <n>]", max_clients only
// where perIP. The errors say what to write; the Caddyfile parser adds the
// line.
func parseRateArgs(name string, args []string, perIP bool) (*RateLimit, error) {
	if len(args) == 0 || len(args)%2 != 1 {
		return nil, fmt.Errorf("%s: want <events>/<window> [burst <n>], e.g. %s 100/s burst 200", name, name)
	}
	events, window, err := parseRate(args[0])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	rl := &RateLimit{Events: events, Window: caddy.Duration(window)}
	for i := 1; i < len(args); i += 2 {
		n, err := strconv.Atoi(args[i+1])
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%s: %s %q: want a whole number above 0", name, args[i], args[i+1])
		}
		switch {
		case args[i] == "burst":
			rl.Burst = n
		case args[i] == "max_clients" && perIP:
			rl.MaxClients = n
		default:
			return nil, fmt.Errorf("%s: unknown setting %q", name, args[i])
		}
	}
	return rl, nil
}

// parseRate reads "<events>/<window>": 100/s, 6000/m, 5/h, 1/2s, 10/1m30s.
func parseRate(s string) (events int, window time.Duration, err error) {
	n, w, ok := strings.Cut(s, "/")
	if !ok {
		return 0, 0, fmt.Errorf("rate %q: want <events>/<window>, e.g. 100/s or 10/m", s)
	}
	events, err = strconv.Atoi(n)
	if err != nil || events < 1 {
		return 0, 0, fmt.Errorf("rate %q: events %q must be a whole number above 0", s, n)
	}
	switch w {
	case "s", "m", "h", "d":
		w = "1" + w
	}
	window, err = caddy.ParseDuration(w)
	if err != nil || window <= 0 {
		return 0, 0, fmt.Errorf("rate %q: window %q must be a positive duration such as s, m, 10s", s, w)
	}
	return events, window, nil
}

// limiters holds the buckets of this process, keyed by what they limit and
// how. Caddy provisions a new config before it cleans up the old one, so a
// reload that keeps a limit keeps its buckets: a client cannot reset its
// budget by waiting for a config change. A changed limit starts afresh.
var limiters = caddy.NewUsagePool()

// retryAfter renders the wait before a token is free as a Retry-After
// value: whole seconds, rounded up so a client that waits that long finds
// the token (unless someone else took it), and at least 1.
func retryAfter(d time.Duration) string {
	secs := int64((d + time.Second - 1) / time.Second)
	return strconv.FormatInt(max(secs, 1), 10)
}

// bucket is one token bucket: a source's budget, or one client's.
//
// Its clock never goes backwards. Requests pass their arrival time, and
// under load a request that arrived earlier can reach the bucket after one
// that arrived later. x/time/rate (v0.16.0, Limiter.advance and reserveN)
// then moves the limiter's last update back to the earlier time, so the
// next call is credited the same interval twice: a client flooding from
// many connections got a few tokens more than its rate
// (TestBucketClockNeverGoesBack).
type bucket struct {
	mu   sync.Mutex
	lim  *rate.Limiter
	last time.Time
}

func newBucket(limit rate.Limit, burst int) *bucket {
	return &bucket{lim: rate.NewLimiter(limit, burst)}
}

// Destruct implements caddy.Destructor; a bucket holds nothing to release.
func (*bucket) Destruct() error { return nil }

// take takes one token at now, or at the latest time the bucket has seen
// when now is earlier. When there is none it takes nothing and returns how
// long until there will be one.
func (b *bucket) take(now time.Time) (wait time.Duration, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if now.Before(b.last) {
		now = b.last
	}
	b.last = now
	if b.lim.AllowN(now, 1) {
		return 0, true
	}
	r := b.lim.ReserveN(now, 1)
	wait = r.DelayFrom(now)
	r.CancelAt(now)
	return wait, false
}

// ipTable is a per-client-IP limit: one bucket per client, in a table
// whose size is capped and whose idle entries expire.
type ipTable struct {
	limit rate.Limit
	burst int
	// idle is how long an empty bucket takes to fill: a bucket idle that
	// long is full, the same as a new one, so forgetting it changes
	// nothing.
	idle   time.Duration
	seed   maphash.Seed
	shards []ipShard
}

// ipShard is a part of an ipTable: a map for lookups and a list from the
// most to the least recently seen client, for eviction and expiry.
type ipShard struct {
	mu         sync.Mutex
	max        int
	m          map[netip.Addr]*ipBucket
	head, tail *ipBucket
}

type ipBucket struct {
	addr       netip.Addr
	lim        *bucket
	seen       time.Time
	prev, next *ipBucket
}

func newIPTable(rl *RateLimit) (*ipTable, error) {
	limit, burst, err := rl.limit()
	if err != nil {
		return nil, err
	}
	maxClients := orDefault(rl.MaxClients, defaultMaxClients)
	t := &ipTable{
		limit: limit,
		burst: burst,
		idle:  time.Duration(float64(burst) / float64(limit) * float64(time.Second)),
		seed:  maphash.MakeSeed(),
	}
	// Each shard holds an equal share, rounded down, so the table never
	// holds more than maxClients.
	t.shards = make([]ipShard, min(ipShards, maxClients))
	for i := range t.shards {
		t.shards[i] = ipShard{max: maxClients / len(t.shards), m: make(map[netip.Addr]*ipBucket)}
	}
	return t, nil
}

// Destruct implements caddy.Destructor; the table is garbage once no
// config uses it.
func (*ipTable) Destruct() error { return nil }

// clientKey is the part of a client's address its bucket is keyed by.
func clientKey(addr netip.Addr) netip.Addr {
	addr = addr.Unmap().WithZone("")
	if addr.Is6() {
		if p, err := addr.Prefix(ipv6Prefix); err == nil {
			return p.Addr()
		}
	}
	return addr
}

// take takes a token from addr's bucket, as the package-level take.
func (t *ipTable) take(addr netip.Addr, now time.Time) (time.Duration, bool) {
	key := clientKey(addr)
	s := &t.shards[maphash.Comparable(t.seed, key)%uint64(len(t.shards))]
	s.mu.Lock()
	b := s.m[key]
	if b == nil {
		s.expire(now, t.idle)
		if len(s.m) >= s.max {
			s.remove(s.tail)
		}
		b = &ipBucket{addr: key, lim: newBucket(t.limit, t.burst)}
		s.m[key] = b
	} else {
		s.unlink(b)
	}
	if now.After(b.seen) {
		b.seen = now
	}
	s.pushFront(b)
	s.mu.Unlock()
	// The bucket has its own lock: the shard is not held while it works.
	return b.lim.take(now)
}

// len reports how many clients the table remembers.
func (t *ipTable) len() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// expire forgets a few of the least recently seen clients whose buckets
// have been idle long enough to be full again.
func (s *ipShard) expire(now time.Time, idle time.Duration) {
	for i := 0; i < maxExpirePerInsert && s.tail != nil && now.Sub(s.tail.seen) >= idle; i++ {
		s.remove(s.tail)
	}
}

func (s *ipShard) remove(b *ipBucket) {
	s.unlink(b)
	delete(s.m, b.addr)
}

func (s *ipShard) unlink(b *ipBucket) {
	if b.prev != nil {
		b.prev.next = b.next
	} else {
		s.head = b.next
	}
	if b.next != nil {
		b.next.prev = b.prev
	} else {
		s.tail = b.prev
	}
	b.prev, b.next = nil, nil
}

func (s *ipShard) pushFront(b *ipBucket) {
	b.next = s.head
	if s.head != nil {
		s.head.prev = b
	}
	s.head = b
	if s.tail == nil {
		s.tail = b
	}
}

// limiterSet is what one handler took from the limiters pool, so that
// Cleanup gives back exactly that.
type limiterSet struct{ keys []string }

// ipTableFor returns the shared per-IP table for scope and rl.
func (ls *limiterSet) ipTableFor(scope string, rl *RateLimit) (*ipTable, error) {
	if _, _, err := rl.limit(); err != nil {
		return nil, err
	}
	key := "ip|" + scope + "|" + rl.String()
	v, _, err := limiters.LoadOrNew(key, func() (caddy.Destructor, error) { return newIPTable(rl) })
	if err != nil {
		return nil, err
	}
	ls.keys = append(ls.keys, key)
	return v.(*ipTable), nil
}

// bucketFor returns the shared bucket for scope and rl.
func (ls *limiterSet) bucketFor(scope string, rl *RateLimit) (*bucket, error) {
	limit, burst, err := rl.limit()
	if err != nil {
		return nil, err
	}
	if rl.MaxClients != 0 {
		return nil, errors.New("max_clients applies to rate_per_ip only")
	}
	key := "source|" + scope + "|" + rl.String()
	v, _, err := limiters.LoadOrNew(key, func() (caddy.Destructor, error) {
		return newBucket(limit, burst), nil
	})
	if err != nil {
		return nil, err
	}
	ls.keys = append(ls.keys, key)
	return v.(*bucket), nil
}

// release gives back every limiter taken.
func (ls *limiterSet) release() error {
	var errs []error
	for _, k := range ls.keys {
		if _, err := limiters.Delete(k); err != nil {
			errs = append(errs, fmt.Errorf("rate limiter %s: %w", k, err))
		}
	}
	ls.keys = nil
	return errors.Join(errs...)
}

// Interface guards.
var (
	_ caddy.Destructor = (*ipTable)(nil)
	_ caddy.Destructor = (*bucket)(nil)
)
