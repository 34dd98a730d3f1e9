// Package waitfor is the tests' poller: it waits until a condition holds,
// for what happens asynchronously (a delivery reaching a sink, a consumer
// catching up), and fails the test with what it waited for when the time
// is up. Tests never assert speed with it; the bound only keeps a broken
// test from hanging.
package waitfor

import (
	"testing"
	"time"
)

// Interval is how often Until checks its condition.
const Interval = 10 * time.Millisecond

// Until polls cond every Interval until it holds, or fails t with
// "timed out after <within> waiting for <what>".
func Until(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
			return
		}
		time.Sleep(Interval)
	}
}
