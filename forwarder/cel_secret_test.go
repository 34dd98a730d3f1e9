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
const secretBody = `{"tok":"sk_live_51Hsecret","k":"sk_live_key","n":7,"m":{"a":1},` +
	`"ts":"2024-01-01T00:00:00Z","tz":"sk_live_51Hzone","l":[1,2],"amt":12.34,"big":41111111111111e999,` +
	`"kb":"body","ki":"id"}`

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
		// Messages with no ": " and no quote, the value at the end.
		`timestamp(body.ts).getHours(body.tz) == 1`: "unknown time zone (on a value of the event, not shown)",
		`body.l[body.amt] == 1`:                     "unsupported index value (on a value of the event, not shown)",
		`body.big > 1.0`:                            "JSON number out of range",
		`body.l[int(body.n)] == 1`:                  "index out of bounds (on a value of the event, not shown)",
		// A key from the body that spells a name of the expression
		// ("body") or a key elsewhere in the body ("id").
		`body.m[body.kb] == 1`:       "no such key (on a value of the event, not shown)",
		`body.m[body.ki] == 1`:       "no such key (on a value of the event, not shown)",
		`body.m["missing2"] == 1`:    "no such key: missing2",
		`body.m[body.kb + "x"] == 1`: "no such key (on a value of the event, not shown)",
	} {
		p, err := compile("filter 1", expr)
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		_, err = filters{p}.match(vars(ev))
		if err == nil {
			t.Fatalf("%s: no error", expr)
		}
		if got := err.Error(); got != "filter 1: "+want || strings.Contains(got, "sk_live") || strings.Contains(got, "12.34") || strings.Contains(got, "4111111") {
			t.Errorf("%s: %q, want %q", expr, got, "filter 1: "+want)
		}
	}
}

// TestEvalErrorsHideEventValuesVaried runs expressions that trip on a
// value in many ways over bodies that put a secret-like value of each
// JSON kind there: no error quotes it.
func TestEvalErrorsHideEventValuesVaried(t *testing.T) {
	secrets := []string{
		`"sk_live_S1("`, `"2024-13-45Tsk_live"`, `"sk_live_S1=="`, `"-sk_live"`, `""`,
		`12.34567`, `-41111111111111.5`, `41111111111111e999`, `4111111111111111`,
		`{"sk_live_K":"sk_live_V"}`, `["sk_live_L", 12.34567]`, `true`, `null`,
	}
	exprs := []string{
		`timestamp(body.x) > received_at`, `duration(body.x) > duration("1s")`,
		`int(body.x) > 1`, `uint(body.x) > 1u`, `double(body.x) > 1.0`, `string(body.x) == ""`,
		`bytes(body.x).size() > 0`, `base64.decode(body.x).size() > 0`,
		`body.m[body.x] == 1`, `body.l[body.x] == 1`, `[1, 2][body.x] == 1`, `{"a": 1}[body.x] == 1`,
		`body.x.matches(body.x)`, `"a".matches(body.x)`, `body.x > 1.0`, `body.x + 1 > 2`, `body.x / 0.0 > 1.0`,
		`int(body.x) / 0 == 1`, `int(body.x) * 9223372036854775807 > 1`,
		`timestamp("2024-01-01T00:00:00Z").getHours(body.x) == 1`, `received_at.getDayOfWeek(body.x) == 1`,
		`body.x.charAt(100) == ""`, `body.x.substring(100) == ""`, `body.x.indexOf("a", 100) == 1`,
		`body.x.replace(body.x, "a", 100) == ""`, `body.x.split(body.x, 100).size() > 9`,
		`math.sqrt(body.x) > 1.0`, `math.greatest(body.x) > 1`, `body.x.sort() == []`,
		`body.x.all(k, body.x[k] > 1)`, `body.x.exists(k, int(k) > 1)`, `body.x.y.z == 1`, `has(body.x.y)`,
		`body.?x.orValue(1) > 1`, `body.x.format([body.x]) == ""`, `"%d".format([body.x]) == ""`,
		`ip(body.x).family() == 4`,
	}
	failed := 0
	for _, sec := range secrets {
		ev := sample(t, "shop", "order.created", "", nil)
		ev.Body = []byte(`{"x":` + sec + `,"m":{"a":1},"l":[1,2]}`)
		for _, expr := range exprs {
			p, err := compile("filter 1", expr)
			if err != nil {
				continue // not in the environment (ip) or not well typed
			}
			_, err = filters{p}.match(vars(ev))
			if err == nil {
				continue
			}
			failed++
			for _, bad := range []string{"sk_live", "12.34", "4111111", "2024-13"} {
				if strings.Contains(err.Error(), bad) {
					t.Errorf("%s over %s: %q quotes the body", expr, sec, err)
				}
			}
		}
	}
	if failed < len(secrets)*len(exprs)/3 {
		t.Fatalf("only %d of %d evaluations failed: the loop tests little", failed, len(secrets)*len(exprs))
	}
	t.Logf("%d of %d evaluations failed, none quoting the body", failed, len(secrets)*len(exprs))
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
