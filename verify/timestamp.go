package verify

import (
	"math"
	"strconv"
	"time"
)

// maxTimestampDigits admits millisecond Unix times (13 digits) with room,
// and keeps the value far from int64 overflow.
const maxTimestampDigits = 15

// parseUnix reads a decimal Unix timestamp: digits only, no sign, space or
// leading zero, so the text signed is the text parsed.
func parseUnix(s string) (int64, bool) {
	if s == "" || len(s) > maxTimestampDigits || (s[0] == '0' && len(s) > 1) {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// checkTimestamp parses a timestamp header in unit (time.Second or
// time.Millisecond) and checks it is within tol of now, in either
// direction. It is the one timestamp check of every scheme.
//
// The comparison never overflows: the distance is computed in whole units
// with saturating int64 arithmetic, and only a distance already known to
// be within a unit of tol is turned into a time.Duration. (Before, a
// far-future timestamp such as Stripe's t=99999999999 made now.Sub
// saturate at math.MinInt64, whose negation is itself, so neither "too old"
// nor "too new" fired and replay protection was off.)
func checkTimestamp(scheme, name, value string, unit time.Duration, now time.Time, tol time.Duration) error {
	if value == "" {
		return fail(scheme, ErrMissing, "no %s timestamp", name)
	}
	n, ok := parseUnix(value)
	if !ok {
		return fail(scheme, ErrMalformed, "%s timestamp %s is not a Unix time", name, quote(value))
	}
	if unit != time.Millisecond {
		unit = time.Second
	}
	age := subSat(unixIn(now, unit), n) // > 0: in the past
	if limit := int64(tol/unit) + 1; age > limit || age < -limit {
		return fail(scheme, ErrExpired, "timestamp %s is %s, outside the %s tolerance%s", value, describeAge(age, unit), tol, unitHint(n, unit, now))
	}
	// |age| <= tol+1 unit here, so the exact Duration cannot overflow.
	d := now.Sub(unixTime(n, unit))
	switch {
	case d == math.MaxInt64 || d == math.MinInt64:
		// Sub saturated: only a tolerance of centuries gets here.
		return fail(scheme, ErrExpired, "timestamp %s is %s, outside the %s tolerance", value, describeAge(age, unit), tol)
	case d > tol:
		return fail(scheme, ErrExpired, "timestamp %s is %s in the past, outside the %s tolerance", value, d.Round(time.Second), tol)
	case d < -tol:
		return fail(scheme, ErrExpired, "timestamp %s is %s in the future, outside the %s tolerance", value, (-d).Round(time.Second), tol)
	}
	return nil
}

// unixIn is now as a Unix time in unit (whole seconds or milliseconds).
func unixIn(now time.Time, unit time.Duration) int64 {
	if unit == time.Millisecond {
		return now.UnixMilli()
	}
	return now.Unix()
}

// unixTime is the time n units after the Unix epoch.
func unixTime(n int64, unit time.Duration) time.Time {
	if unit == time.Millisecond {
		return time.UnixMilli(n)
	}
	return time.Unix(n, 0)
}

// subSat is a-b, clamped to [math.MinInt64, math.MaxInt64] instead of
// wrapping.
func subSat(a, b int64) int64 {
	d := a - b
	// Overflow happened iff a and b have different signs and d's sign
	// differs from a's.
	if (a >= 0) != (b >= 0) && (d >= 0) != (a >= 0) {
		if a >= 0 {
			return math.MaxInt64
		}
		return math.MinInt64
	}
	return d
}

// describeAge says how far a timestamp is from now in words an operator
// reads at a glance: "3100 years in the future", "2h0m0s in the past".
// age is in unit, positive for the past.
func describeAge(age int64, unit time.Duration) string {
	dir := "in the past"
	if age < 0 {
		dir = "in the future"
	}
	mag := uint64(age)
	if age < 0 {
		mag = uint64(-(age + 1)) + 1 // |MinInt64| without overflow
	}
	perSecond := uint64(time.Second / unit)
	secs := mag / perSecond
	const year = 31557600 // Julian year in seconds
	if secs >= year {
		return strconv.FormatUint(secs/year, 10) + " years " + dir
	}
	return (time.Duration(secs) * time.Second).String() + " " + dir
}

// unitHint suggests the likely mistake when a timestamp is off by the
// factor between seconds and milliseconds.
func unitHint(n int64, unit time.Duration, now time.Time) string {
	const slack = 2 * 24 * 3600 // two days, in seconds
	switch s := now.Unix(); {
	case unit == time.Second && abs64(subSat(n/1000, s)) < slack:
		return " (it looks like milliseconds where seconds are expected)"
	case unit == time.Millisecond && abs64(subSat(n, s)) < slack:
		return " (it looks like seconds where milliseconds are expected)"
	}
	return ""
}

// abs64 is |x|, with math.MinInt64 clamped to math.MaxInt64.
func abs64(x int64) int64 {
	switch {
	case x == math.MinInt64:
		return math.MaxInt64
	case x < 0:
		return -x
	}
	return x
}
