package forwarder

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// secretBody holds secret-like values where an expression can trip on
// them: as a string it converts, as a map key it looks up, as a regexp it
// compiles, as a header name it sets.
const secretBody = `{"tok":"sk_live_51Hsecret","k":"sk_live_key","n":7,"m":{"a":1}}`

// TestEvalErrorsHideEventValues: an evaluation error names the
// expression and the kind of failure, never a value of the event; a
// detail the expression's own text holds (the field it reads) stays.
func TestEvalErrorsHideEventValues(t *testing.T) {
	ev := sample(t, "shop", "order.created", "", nil)
	ev.Body = []byte(secretBody)
	for expr, want := range map[string]string{
		`timestamp(body.tok) > received_at`:         "invalid RFC 3339 timestamp (on a value of the event, not shown)",
		`body.m[body.k] == 1`:                       "no such key (on a value of the event, not shown)",
		`body.tok.matches(body.tok + "(")`:          "error parsing regexp (on a value of the event, not shown)",
		`body.missing == 1`:                         "no such key: missing",
		`int(body.tok) > 1`:                         "type conversion error from 'string' to 'int'",
		`[1, 2][int(body.n)] == 1`:                  "index out of bounds (on a value of the event, not shown)",
		`int(body.n) / (int(body.n) - 7) == 1`:      "division by zero",
		`body.tok.substring(int(body.n) * 9) == ""`: "index out of range (on a value of the event, not shown)",
	} {
		p, err := compile("filter 1", expr)
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		_, err = filters{p}.match(vars(ev))
		if err == nil {
			t.Fatalf("%s: no error", expr)
		}
		if got := err.Error(); got != "filter 1: "+want || strings.Contains(got, "sk_live") {
			t.Errorf("%s: %q, want %q", expr, got, "filter 1: "+want)
		}
	}
}

// TestFailedExpressionsLogNoSecret: a destination whose filter and
// transformations fail on secret-like values of the body logs the
// failures, and dead-letters the event, without those values anywhere
// in the log (messages and fields) or in the dead letter's headers.
func TestFailedExpressionsLogNoSecret(t *testing.T) {
	for name, set := range map[string]func(*Config){
		"filter":            func(c *Config) { c.Filters = []string{`body.m[body.k] == 1`} },
		"transform":         func(c *Config) { c.Transform = `{"at": timestamp(body.tok)}` },
		"transform_headers": func(c *Config) { c.TransformHeaders = `{body.tok + " x": "1"}` },
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			core, logs := observer.New(zapcore.DebugLevel)
			e.log = zap.New(core)
			s := newSink(t, nil)
			cfg := fast("sec", s.srv.URL)
			set(&cfg)
			e.start(cfg)
			e.publish("x:1", "x", "t", []byte(secretBody), nil)
			var dead string
			if name == "filter" {
				waitFor(t, 5*time.Second, "the filter's log line", func() bool { return logs.FilterMessage("filtered").Len() > 0 })
			} else {
				dl := e.dlq(1, 5*time.Second)
				if len(dl) != 1 {
					t.Fatalf("%d dead letters, want 1", len(dl))
				}
				dead = fmt.Sprint(dl[0].Header)
			}
			var all strings.Builder
			for _, en := range logs.All() {
				fmt.Fprintf(&all, "%s %v\n", en.Message, en.ContextMap())
			}
			if !strings.Contains(all.String(), name) {
				t.Errorf("the log does not name the failing %s:\n%s", name, all.String())
			}
			if strings.Contains(all.String(), "sk_live") || strings.Contains(dead, "sk_live") {
				t.Errorf("a body value reached the log or the dead letter:\n%s\n%s", all.String(), dead)
			}
		})
	}
}
