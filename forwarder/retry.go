package forwarder

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// retryDelay returns how long to wait after the attempt-th failed attempt
// (1-based) before the next one. retryAfter is the destination's
// Retry-After, 0 when it sent none; it replaces the computed delay, capped
// at RetryAfterCap, because the destination knows best when it can take
// traffic again.
func (c *Config) retryDelay(attempt int, retryAfter time.Duration) time.Duration {
	if retryAfter > 0 {
		return min(retryAfter, c.RetryAfterCap)
	}
	if len(c.Schedule) > 0 {
		return c.Schedule[min(attempt, len(c.Schedule))-1]
	}
	return fullJitter(c.BackoffBase, c.BackoffCap, attempt)
}

// fullJitter is the "full jitter" backoff: uniform in [0, min(cap,
// base·2^(attempt-1))). Spreading retries over the whole interval keeps a
// destination that comes back from being hit by every retry at once.
func fullJitter(base, cap time.Duration, attempt int) time.Duration {
	ceil := cap
	if shift := attempt - 1; shift < 62 {
		if d := base << shift; d > 0 && d>>shift == base && d < cap {
			ceil = d
		}
	}
	if ceil <= 0 {
		return 0
	}
	return rand.N(ceil)
}

// parseRetryAfter reads a Retry-After header's value, either
// delta-seconds or an HTTP date (RFC 9110 section 10.2.3). It returns 0
// when the value is empty, malformed or in the past.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		// Clamp before multiplying so a huge value cannot overflow.
		return time.Duration(min(secs, int64(365*24*3600))) * time.Second
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	if d := t.Sub(now); d > 0 {
		return d
	}
	return 0
}
