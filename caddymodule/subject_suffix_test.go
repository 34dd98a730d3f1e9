package caddymodule

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/hookgate/hookgate/event"
)

// TestSubjectSuffixTokens: what an expression yields becomes subject
// tokens, sanitised to NATS's rules; null adds none; a failure leaves the
// subject as it was and says why.
func TestSubjectSuffixTokens(t *testing.T) {
	const base = "webhooks.v1.stripe.invoice.paid"
	ev := &event.Event{ID: "stripe:evt_1", Source: "stripe", Version: "v1", Type: "invoice.paid",
		Header: http.Header{"X-Region": {"eu west"}, event.HeaderID: {"stripe:evt_1"}},
		Body:   []byte(`{"livemode": true, "data": {"object": {"currency": "eur", "customer": "cus.A*>b"}}, "name": "` + strings.Repeat("n", 80) + `"}`)}
	for _, tc := range []struct {
		expr, want, errHas string
	}{
		{`body.livemode ? "live" : "test"`, base + ".live", ""},
		{`[body.data.object.currency, body.livemode ? "live" : "test"]`, base + ".eur.live", ""},
		{`body.data.object.customer`, base + ".cus_A__b", "" /* '.', '*', '>' never split or wildcard */},
		{`headers["X-Region"]`, base + ".eu_west", ""},
		{`"Hookgate-Id" in headers ? "reserved" : "provider"`, base + ".provider", ""},
		{`["", "é"]`, base + "._.__", ""},
		{`body.name`, base + "." + strings.Repeat("n", maxSuffixToken), ""},
		{`body.?region.orValue(null)`, base, ""},
		{`[]`, base, ""},
		{`body.data.object.discount`, base, "no such key"},
		{`["a", "b", "c", "d", "e"]`, base, "at most 4"},
		{`body.data.object`, base, "want a string, a list of strings or null"},
	} {
		s, err := newSubjectSuffix(tc.expr, nil)
		if err != nil {
			t.Errorf("%s: compile: %v", tc.expr, err)
			continue
		}
		got, err := s.subject(base, ev)
		if got != tc.want || (tc.errHas == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.errHas) {
			t.Errorf("%s: %q, %v; want %q with error %q", tc.expr, got, err, tc.want, tc.errHas)
		}
	}
	for _, bad := range []string{`body.livemode &&`, `1 + 1`, `nope == "x"`} {
		if _, err := newSubjectSuffix(bad, nil); err == nil || !strings.Contains(err.Error(), "subject_suffix") {
			t.Errorf("%s: compiled (%v), want an error naming subject_suffix", bad, err)
		}
	}
}

// TestSubjectHeader: subject_header lines set headers from the event,
// leave out what fails (and say why), and refuse the gateway's own names.
func TestSubjectHeader(t *testing.T) {
	s, err := newSubjectSuffix("", map[string]string{
		"x-mode":     `body.livemode ? "live" : "test"`,
		"X-Tags":     `body.tags`,
		"X-Missing":  `body.nope`,
		"X-Nothing":  `null`,
		"X-Newlines": `"a\r\nInjected: 1"`,
	})
	if err != nil {
		t.Fatal(err)
	}
	msg := &nats.Msg{Subject: "webhooks.v1.demo.push", Header: nats.Header{}}
	err = s.apply(msg, &event.Event{Body: []byte(`{"livemode": false, "tags": ["a", "b"]}`)})
	if err == nil || !strings.Contains(err.Error(), "subject_header X-Missing") || !strings.Contains(err.Error(), "no such key") {
		t.Errorf("error %v, want X-Missing's", err)
	}
	want := nats.Header{"X-Mode": {"test"}, "X-Tags": {"a", "b"}, "X-Newlines": {"a  Injected: 1"}}
	if msg.Subject != "webhooks.v1.demo.push" || !reflect.DeepEqual(msg.Header, want) {
		t.Errorf("subject %q, headers %v; want %v", msg.Subject, msg.Header, want)
	}
	for name, want := range map[string]string{"Hookgate-Id": "Hookgate-", "nats-msg-id": "Nats-", "X Bad": "header name", "X-Ok": "subject_header X-Ok:1:"} {
		if _, err := newSubjectSuffix("", map[string]string{name: `body.`}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("subject_header %q: %v, want an error holding %q", name, err, want)
		}
	}
}

// TestSubjectSuffixEndToEnd: on a real gateway loaded from a Caddyfile, a
// source's subject_suffix tags events: a nats.go subscriber on the suffixed
// subject gets exactly the tagged events, a destination subscribed to
// "webhooks.v1.tagged.invoice.>" still gets every one, and an event the
// expression fails on is stored under its usual subject, marked, with a
// 200 for the provider.
func TestSubjectSuffixEndToEnd(t *testing.T) {
	dest := newSink(t, always(http.StatusOK))
	g := startGateway(t, gatewayConfig{
		Sources: demoSources + `
		source tagged {
			verify none
			id_header X-Id
			type_header X-Type
			subject_suffix ` + bt(`body.livemode ? "live" : "test"`) + `
			subject_header X-Mode ` + bt(`body.?livemode.orValue(false) ? "live" : "test"`) + `
		}`,
		Destinations: "\n\t\tdestination invoices {\n\t\t\turl " + dest.srv.URL + "\n\t\t\tsubjects webhooks.v1.tagged.invoice.>\n\t\t\tbackoff 20ms 100ms\n\t\t}",
	})
	live, err := g.engine().nc.SubscribeSync("webhooks.v1.tagged.*.*.live")
	if err != nil {
		t.Fatal(err)
	}
	if err := g.engine().nc.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, e := range []struct{ id, body string }{
		{"e1", `{"livemode": true}`}, {"e2", `{"livemode": false}`}, {"e3", `{"no": "livemode"}`},
	} {
		if st, _, b := g.post("/webhooks/v1/tagged", []byte(e.body), map[string]string{"X-Id": e.id, "X-Type": "invoice.paid"}); st != http.StatusOK {
			t.Fatalf("post %s: %d %s", e.id, st, b)
		}
	}
	m, err := live.NextMsg(5 * time.Second)
	if err != nil || m.Header.Get(event.HeaderID) != "tagged:e1" {
		t.Fatalf("subscriber on the live subject: %v, %v; want tagged:e1", m, err)
	}
	if m, err := live.NextMsg(200 * time.Millisecond); err != nats.ErrTimeout {
		t.Errorf("subscriber got %v (%v) too; only e1 is live", m, err)
	}
	subjects := map[string]string{}
	for _, m := range g.stored(event.StreamName) {
		subjects[m.Header.Get(event.HeaderID)] = m.Subject + " " + m.Header.Get(HeaderSubjectSuffixError)
		if id, mode := m.Header.Get(event.HeaderID), m.Header.Get("X-Mode"); id == "tagged:e1" && mode != "live" || id != "tagged:e1" && id != "" && mode != "test" {
			t.Errorf("%s stored with X-Mode %q", id, mode)
		}
	}
	want := map[string]string{
		"tagged:e1": "webhooks.v1.tagged.invoice.paid.live ",
		"tagged:e2": "webhooks.v1.tagged.invoice.paid.test ",
	}
	for id, w := range want {
		if subjects[id] != w {
			t.Errorf("%s stored as %q, want %q", id, subjects[id], w)
		}
	}
	if got := subjects["tagged:e3"]; !strings.HasPrefix(got, "webhooks.v1.tagged.invoice.paid subject_suffix: ") || !strings.Contains(got, "no such key") {
		t.Errorf("e3 (the expression fails) stored as %q, want the usual subject and the error", got)
	}
	waitFor(t, 10*time.Second, "three deliveries", func() bool { _, h := dest.received(); return len(h) == 3 })
	_, hdrs := dest.received()
	var ids []string
	for _, h := range hdrs {
		ids = append(ids, h.Get("Webhook-Id"))
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"tagged:e1", "tagged:e2", "tagged:e3"}) {
		t.Errorf("destination on webhooks.v1.tagged.invoice.> got %v, want all three", ids)
	}
}

// TestValidateRefusesMalformedSubjectSuffix: caddy validate refuses a
// malformed subject_suffix and says where it is.
func TestValidateRefusesMalformedSubjectSuffix(t *testing.T) {
	cfg := gatewayConfig{Store: t.TempDir(), Addr: "127.0.0.1:0", Sources: `
		source demo {
			verify none
			subject_suffix ` + bt(`body.livemode ? "live"`) + `
		}`}
	file := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(file, []byte(cfg.caddyfile()), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCaddy(t, "validate", "--config", file, "--adapter", "caddyfile")
	if code == 0 || !strings.Contains(errOut, "subject_suffix:1:23: Syntax error") || !strings.Contains(errOut, `source \"demo\"`) {
		t.Errorf("validate: exit %d\n%s\n%s", code, out, errOut)
	}
}

// BenchmarkSubjectSuffixHotPath is BenchmarkHandlerHotPath's accepted
// path (verify none, a 2 KiB JSON body, memPublisher: no store) without a
// subject_suffix and with a typical one, which parses the body once and
// reads two fields: the difference is what the feature adds per request.
//
//	go test -run '^$' -bench SubjectSuffixHotPath -benchmem ./caddymodule/
func BenchmarkSubjectSuffixHotPath(b *testing.B) {
	body := benchBody(2048)
	for _, c := range []struct{ name, suffix, subject string }{
		{"none", "", "webhooks.v1.demo.push"},
		{"typical", `[body.action, body.number > 10 ? "large" : "small"]`, "webhooks.v1.demo.push.opened.large"},
	} {
		b.Run(c.name, func(b *testing.B) {
			src := &Source{Name: "demo", Verify: &VerifyConfig{Scheme: "none"}, SubjectSuffix: c.suffix,
				IDHeader: "X-GitHub-Delivery", TypeHeader: "X-GitHub-Event"}
			h := newTestHandler(b, &Handler{Sources: []*Source{src}}, nil)
			pub := &memPublisher{}
			h.events = pub
			r, w, setID := hotPathRequest(b, "none", body)
			ids := make([]string, b.N)
			for i := range ids {
				ids[i] = fmt.Sprintf("d%012d", i)
			}
			b.ReportAllocs()
			cpu0, cpuOK := processCPU()
			b.ResetTimer()
			for i := range b.N {
				setID(ids[i])
				w.reset()
				if err := h.ServeHTTP(w, r, nil); err != nil || w.status != http.StatusOK {
					b.Fatalf("status %d: %v", w.status, err)
				}
			}
			b.StopTimer()
			if cpu1, ok := processCPU(); ok && cpuOK {
				b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/op")
			}
			if pub.n != b.N || pub.lastSubject != c.subject {
				b.Fatalf("%d events, the last on %q; want %d on %q", pub.n, pub.lastSubject, b.N, c.subject)
			}
		})
	}
}

// TestSubjectHeadersReadProviderHeaders: every subject_header line sees
// the provider's headers, whatever the order of the lines; one line never
// reads the value another computed (the message's and the event's headers
// are one map, as on the request path).
func TestSubjectHeadersReadProviderHeaders(t *testing.T) {
	s, err := newSubjectSuffix("", map[string]string{
		"X-A": `"computed"`,
		"X-B": `headers["X-A"]`,
	})
	if err != nil {
		t.Fatal(err)
	}
	msg := &nats.Msg{Subject: "webhooks.v1.demo.push", Header: nats.Header{"X-A": {"provider"}}}
	if err := s.apply(msg, &event.Event{Header: http.Header(msg.Header), Body: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if got := msg.Header["X-B"]; len(got) != 1 || got[0] != "provider" {
		t.Errorf("X-B = %v, want the provider's X-A (provider), not another line's result", got)
	}
	if got := msg.Header["X-A"]; len(got) != 1 || got[0] != "computed" {
		t.Errorf("X-A = %v, want computed", got)
	}
}

// TestSubjectSuffixFailureLog: a subject_suffix that fails on a body's
// secret-like value marks the event and warns once per suffixLogEvery,
// counting the failures since its last line, and neither the warning nor
// the mark quotes the value.
func TestSubjectSuffixFailureLog(t *testing.T) {
	s, err := newSubjectSuffix(`string(timestamp(body.tok))`, map[string]string{"X-Key": `body.m[body.k]`})
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.WarnLevel)
	h := &Handler{logger: zap.New(core)}
	src := &source{name: "demo", suffix: s}
	var marks []string
	for i := range 3 {
		msg := &nats.Msg{Subject: "webhooks.v1.demo.push", Header: nats.Header{},
			Data: []byte(`{"tok":"sk_live_51Hsecret","k":"sk_live_key","m":{}}`)}
		h.suffixSubject(src, msg, fmt.Sprintf("demo:%d", i), "v1", time.Now())
		marks = append(marks, msg.Header.Get(HeaderSubjectSuffixError))
	}
	all := logs.All()
	if len(all) != 1 || all[0].ContextMap()["failures"] != int64(1) || all[0].ContextMap()["event_id"] != "demo:0" {
		t.Fatalf("logged %v; want one warning, for the first failure", all)
	}
	if n := s.failed.Load(); n != 2 {
		t.Errorf("%d failures wait for the next line, want 2", n)
	}
	text := fmt.Sprint(all[0].Message, all[0].ContextMap(), marks)
	if strings.Contains(text, "sk_live") {
		t.Errorf("a body value reached the log or the event's mark: %s", text)
	}
	if !strings.Contains(text, "subject_suffix: invalid RFC 3339 timestamp") {
		t.Errorf("the warning does not say what failed: %s", text)
	}
}

// blockingWriter is a log sink whose first write waits for release:
// a slow or stuck log writer.
type blockingWriter struct {
	entered, release chan struct{}
	once             sync.Once
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	w.once.Do(func() {
		close(w.entered)
		<-w.release
	})
	return len(p), nil
}

// TestSubjectSuffixWarnOutsideLock: while the warning of one failure is
// being written (the writer stuck), another failing request of the
// source goes on: the turn to warn is taken under rate.Sometimes' lock,
// the line written outside it.
func TestSubjectSuffixWarnOutsideLock(t *testing.T) {
	s, err := newSubjectSuffix(`string(timestamp(body.tok))`, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := &blockingWriter{entered: make(chan struct{}), release: make(chan struct{})}
	h := &Handler{logger: zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(w), zapcore.WarnLevel))}
	src := &source{name: "demo", suffix: s}
	fail := func(id string) chan struct{} {
		done := make(chan struct{})
		go func() {
			defer close(done)
			msg := &nats.Msg{Subject: "webhooks.v1.demo.push", Header: nats.Header{}, Data: []byte(`{"tok":"x"}`)}
			h.suffixSubject(src, msg, id, "v1", time.Now())
		}()
		return done
	}
	first := fail("demo:1")
	defer func() { close(w.release); <-first }()
	select {
	case <-w.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the first failure wrote no warning")
	}
	select {
	case <-fail("demo:2"):
	case <-time.After(10 * time.Second):
		t.Fatal("a second failing request waited for the first one's warning to be written")
	}
	if n := s.failed.Load(); n != 1 {
		t.Errorf("%d failures wait for the next warning, want 1", n)
	}
}
