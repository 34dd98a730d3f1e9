package waitfor

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fatalRecorder is a testing.TB that records Fatalf instead of stopping.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = format
	for range args {
		f.msg += "|"
	}
}

func TestUntil(t *testing.T) {
	var n atomic.Int32
	Until(t, time.Second, "three polls", func() bool { return n.Add(1) >= 3 })
	if n.Load() != 3 {
		t.Fatalf("condition checked %d times, want 3", n.Load())
	}
	rec := &fatalRecorder{TB: t}
	Until(rec, 30*time.Millisecond, "never", func() bool { return false })
	if !strings.HasPrefix(rec.msg, "timed out after") {
		t.Fatalf("a condition that never holds: %q", rec.msg)
	}
}
