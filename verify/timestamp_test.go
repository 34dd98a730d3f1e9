package verify

import (
	"errors"
	"math"
	"math/big"
	"strconv"
	"strings"
	"testing"
	"time"
)

// tsNow is the clock of the timestamp tests (2025-06-15).
var tsNow = unix(1750000000)

// TestCheckTimestampLimits drives the one timestamp check every scheme
// uses with values near the limits of int64, in seconds and milliseconds.
// Issue 9 item 1: t=99999999999 used to be accepted because now.Sub
// saturated at math.MinInt64 and its negation overflowed.
func TestCheckTimestampLimits(t *testing.T) {
	s, ms := time.Second, time.Millisecond
	now := tsNow.Unix()
	nowMs := tsNow.UnixMilli()
	cases := []struct {
		value string
		unit  time.Duration
		kind  error // nil: accepted
		text  string
	}{
		{strconv.FormatInt(now, 10), s, nil, ""},
		{strconv.FormatInt(now-300, 10), s, nil, ""},
		{strconv.FormatInt(now+300, 10), s, nil, ""},
		{strconv.FormatInt(now-301, 10), s, ErrExpired, "5m1s in the past, outside the 5m0s tolerance"},
		{strconv.FormatInt(now+301, 10), s, ErrExpired, "5m1s in the future, outside the 5m0s tolerance"},
		{"99999999999", s, ErrExpired, "timestamp 99999999999 is 3113 years in the future, outside the 5m0s tolerance"},
		{"999999999999999", s, ErrExpired, "31688032 years in the future"},
		{strconv.FormatInt(nowMs, 10), s, ErrExpired, "milliseconds where seconds are expected"},
		{strconv.FormatInt(now, 10), ms, ErrExpired, "seconds where milliseconds are expected"},
		{"0", s, ErrExpired, "55 years in the past"},
		{"0", ms, ErrExpired, "55 years in the past"},
		{"1", s, ErrExpired, "in the past"},
		{strconv.FormatInt(nowMs, 10), ms, nil, ""},
		{strconv.FormatInt(nowMs-300000, 10), ms, nil, ""},
		{strconv.FormatInt(nowMs+300000, 10), ms, nil, ""},
		{strconv.FormatInt(nowMs-300001, 10), ms, ErrExpired, "5m0s in the past"},
		{strconv.FormatInt(nowMs+300001, 10), ms, ErrExpired, "5m0s in the future"},
		{"99999999999", ms, ErrExpired, "in the past"},
		{"999999999999999", ms, ErrExpired, "31632 years in the future"},
		{strconv.FormatInt(math.MaxInt64, 10), s, ErrMalformed, "not a Unix time"},
		{strconv.FormatInt(math.MaxInt64, 10), ms, ErrMalformed, "not a Unix time"},
		{strconv.FormatInt(math.MinInt64, 10), s, ErrMalformed, "not a Unix time"},
		{"-1", s, ErrMalformed, "not a Unix time"},
		{"-1", ms, ErrMalformed, "not a Unix time"},
		{"9999999999999999", s, ErrMalformed, "not a Unix time"},
		{"1e10", s, ErrMalformed, "not a Unix time"},
		{"", s, ErrMissing, "no T timestamp"},
	}
	for _, c := range cases {
		err := checkTimestamp("x", "T", c.value, c.unit, tsNow, DefaultTolerance)
		switch {
		case c.kind == nil && err != nil:
			t.Errorf("%s (%s): rejected: %v", c.value, c.unit, err)
		case c.kind != nil && !errors.Is(err, c.kind):
			t.Errorf("%s (%s): error %v, want %v", c.value, c.unit, err, c.kind)
		case c.kind != nil && !strings.Contains(err.Error(), c.text):
			t.Errorf("%s (%s): error %q does not say %q", c.value, c.unit, err, c.text)
		}
	}
}

// TestCheckTimestampExtremeClocks checks that no clock, however absurd,
// lets a far timestamp through: the distance saturates instead of
// wrapping.
func TestCheckTimestampExtremeClocks(t *testing.T) {
	clocks := []time.Time{
		time.Unix(math.MaxInt64/2, 0), time.Unix(math.MinInt64/2, 0), time.Unix(0, 0),
		time.Unix(-1, 0), {}, time.UnixMilli(math.MaxInt64), time.UnixMilli(math.MinInt64),
	}
	for _, now := range clocks {
		for _, v := range []string{"0", "1", "99999999999", "999999999999999", "1750000000", "1750000000000"} {
			for _, unit := range []time.Duration{time.Second, time.Millisecond} {
				err := checkTimestamp("x", "T", v, unit, now, time.Hour)
				if want := tsOracle(v, unit, now, time.Hour); (err == nil) != want {
					t.Errorf("now %d, %s (%s): err %v, want accepted=%v", now.Unix(), v, unit, err, want)
				}
			}
		}
	}
}

// TestSubSat checks the saturating subtraction at the limits.
func TestSubSat(t *testing.T) {
	cases := []struct{ a, b, want int64 }{
		{math.MaxInt64, -1, math.MaxInt64},
		{math.MinInt64, 1, math.MinInt64},
		{0, math.MinInt64, math.MaxInt64},
		{-1, math.MinInt64, math.MaxInt64},
		{math.MaxInt64, math.MaxInt64, 0},
		{math.MinInt64, math.MinInt64, 0},
		{5, 7, -2},
		{-5, math.MaxInt64, math.MinInt64},
		{-1, math.MaxInt64, math.MinInt64},
		{-2, math.MaxInt64, math.MinInt64},
	}
	for _, c := range cases {
		if got := subSat(c.a, c.b); got != c.want {
			t.Errorf("subSat(%d, %d) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
	if got := describeAge(math.MinInt64, time.Millisecond); !strings.Contains(got, "years in the future") {
		t.Errorf("describeAge(MinInt64) = %q", got)
	}
}

// tsOracle decides, in exact arbitrary-precision arithmetic, whether a
// canonical timestamp is within tol of now.
func tsOracle(value string, unit time.Duration, now time.Time, tol time.Duration) bool {
	n, ok := parseUnix(value)
	if !ok {
		return false
	}
	nowNs := new(big.Int).Mul(big.NewInt(now.Unix()), big.NewInt(int64(time.Second)))
	nowNs.Add(nowNs, big.NewInt(int64(now.Nanosecond())))
	ts := new(big.Int).Mul(big.NewInt(n), big.NewInt(int64(unit)))
	diff := nowNs.Sub(nowNs, ts)
	return diff.CmpAbs(big.NewInt(int64(tol))) <= 0
}

// timedCase is one way a timestamped scheme is exercised below.
type timedCase struct {
	schemeCase
	unit time.Duration
}

// timedCases lists every scheme case with a signed timestamp, plus the
// generic scheme in milliseconds, with the unit each reads.
func timedCases() []timedCase {
	var out []timedCase
	for _, c := range schemeCases {
		if !c.timed {
			continue
		}
		unit := time.Second
		if c.scheme == "hubspot" || c.scheme == "linear" || c.options["timestamp_unit"] == "ms" {
			unit = time.Millisecond
		}
		out = append(out, timedCase{c, unit})
	}
	ms := schemeCase{scheme: "hmac", newS: "new", options: map[string]string{"header": "X-Signature", "timestamp_header": "X-Timestamp", "timestamp_unit": "ms"}, body: "anything", timed: true}
	field := schemeCase{scheme: "hmac", newS: "new", options: map[string]string{"header": "X-Signature", "timestamp_field": "sent_at"}, body: `{"a":1}`, timed: true}
	return append(out, timedCase{ms, time.Millisecond}, timedCase{field, time.Second})
}

// TestTimestampedSchemesFarTimes signs a delivery correctly at an absurd
// time with every scheme that signs a timestamp and checks it is refused
// as expired, with the reason, while one within the tolerance passes.
func TestTimestampedSchemesFarTimes(t *testing.T) {
	cases := timedCases()
	if len(cases) < 9 {
		t.Fatalf("only %d timestamped scheme cases", len(cases))
	}
	schemes := map[string]bool{}
	for _, c := range cases {
		schemes[c.scheme] = true
		tol := SchemeTolerance(c.scheme)
		signAt := []struct {
			name string
			at   time.Time
			ok   bool
			text string
		}{
			{"now", tsNow, true, ""},
			{"tol-1m-past", tsNow.Add(-tol + time.Minute), true, ""},
			{"tol-1m-future", tsNow.Add(tol - time.Minute), true, ""},
			{"tol+1m-past", tsNow.Add(-tol - time.Minute), false, "in the past"},
			{"tol+1m-future", tsNow.Add(tol + time.Minute), false, "in the future"},
			{"10y-past", tsNow.AddDate(-10, 0, 0), false, "10 years in the past"},
			{"epoch", time.Unix(0, 0), false, "55 years in the past"},
			{"stripe-99999999999", time.Unix(99999999999, 0), false, "years in the future"},
			{"ms-as-s", time.Unix(tsNow.UnixMilli(), 0), false, "years in the future"},
			{"s-as-ms", time.UnixMilli(tsNow.Unix()), false, "years in the past"},
			{"max-digits", time.Unix(999999999999999/int64(time.Second/c.unit), 0), false, "years in the future"},
		}
		for _, at := range signAt {
			if at.name == "ms-as-s" && c.unit == time.Millisecond {
				continue // would be microseconds; s-as-ms is this unit's mistake
			}
			t.Run(c.name()+"/"+at.name, func(t *testing.T) {
				r := c.signed(t, c.newS, at.at)
				r.Now = tsNow
				v := mustNew(t, c.config(c.newS))
				res, err := v.Verify(r)
				if at.ok {
					if err != nil {
						t.Fatalf("rejected: %v", err)
					}
					return
				}
				if !errors.Is(err, ErrExpired) {
					t.Fatalf("want ErrExpired, got %v (result %+v)", err, res)
				}
				if !strings.Contains(err.Error(), at.text) || !strings.Contains(err.Error(), "outside the "+tol.String()+" tolerance") {
					t.Fatalf("error %q does not say %q and the tolerance", err, at.text)
				}
				if Reason(err) != "stale_timestamp" {
					t.Fatalf("Reason = %q", Reason(err))
				}
			})
		}
	}
	for _, want := range []string{"stripe", "slack", "standard-webhooks", "svix", "paddle", "hubspot", "mailgun", "discord", "hmac",
		"zoom", "mux", "calendly", "sendgrid", "plaid", "linear", "clerk", "resend", "brex", "openai", "replicate"} {
		if !schemes[want] {
			t.Errorf("timestamped scheme %s not covered", want)
		}
	}
}

// FuzzTimestampTolerance checks the shared timestamp check against an
// exact oracle for any timestamp text, clock and tolerance: it accepts
// exactly the timestamps within the tolerance, and never panics.
func FuzzTimestampTolerance(f *testing.F) {
	for _, v := range append(timestampSeeds, "99999999999", "9223372036854775807", "-9223372036854775808") {
		f.Add(v, tsNow.Unix(), int64(0), int64(DefaultTolerance), false)
		f.Add(v, int64(math.MaxInt64), int64(math.MaxInt64), int64(math.MaxInt64), true)
		f.Add(v, int64(math.MinInt64), int64(-1), int64(0), false)
	}
	f.Fuzz(func(t *testing.T, value string, sec, nsec, tol int64, ms bool) {
		unit := time.Second
		if ms {
			unit = time.Millisecond
		}
		if tol < 0 {
			tol = -(tol + 1)
		}
		now := time.Unix(sec, nsec)
		err := checkTimestamp("fuzz", "T", value, unit, now, time.Duration(tol))
		if want := tsOracle(value, unit, now, time.Duration(tol)); (err == nil) != want {
			t.Fatalf("%q (%s) at %d.%09d, tol %d: err %v, oracle accepts=%v", value, unit, now.Unix(), now.Nanosecond(), tol, err, want)
		}
	})
}
