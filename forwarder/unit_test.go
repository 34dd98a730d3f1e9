package forwarder

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookgate/hookgate/verify"
)

func TestFullJitterBoundsAndSpread(t *testing.T) {
	base, cap := 10*time.Millisecond, 300*time.Millisecond
	for attempt := 1; attempt <= 8; attempt++ {
		ceil := min(cap, base<<(attempt-1))
		lo, hi := ceil, time.Duration(0)
		for range 2000 {
			d := fullJitter(base, cap, attempt)
			if d < 0 || d >= ceil {
				t.Fatalf("attempt %d: delay %v outside [0, %v)", attempt, d, ceil)
			}
			lo, hi = min(lo, d), max(hi, d)
		}
		if lo > ceil/10 || hi < ceil*9/10 {
			t.Errorf("attempt %d: delays span [%v, %v], want most of [0, %v)", attempt, lo, hi, ceil)
		}
	}
	if d := fullJitter(time.Second, time.Hour, 200); d >= time.Hour || d < 0 {
		t.Errorf("huge attempt: %v", d)
	}
}

func TestScheduleAndRetryAfterCap(t *testing.T) {
	c := Config{Name: "x", URL: "http://127.0.0.1/", Schedule: []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute}}.withDefaults()
	if c.MaxAttempts != 4 {
		t.Errorf("MaxAttempts = %d, want len(schedule)+1", c.MaxAttempts)
	}
	for attempt, want := range map[int]time.Duration{1: 5 * time.Second, 2: 5 * time.Minute, 3: 30 * time.Minute, 9: 30 * time.Minute} {
		if got := c.retryDelay(attempt, 0); got != want {
			t.Errorf("attempt %d: delay %v, want %v", attempt, got, want)
		}
	}
	if got := c.retryDelay(1, 2*time.Hour); got != 30*time.Minute {
		t.Errorf("Retry-After 2h: delay %v, want the 30m cap", got)
	}
	if got := c.retryDelay(1, 7*time.Second); got != 7*time.Second {
		t.Errorf("Retry-After 7s: delay %v", got)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		v    string
		want time.Duration
	}{
		{"", 0},
		{"3", 3 * time.Second},
		{" 120 ", 2 * time.Minute},
		{"0", 0},
		{"-5", 0},
		{"abc", 0},
		{"99999999999999", 365 * 24 * time.Hour},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	} {
		if got := parseRetryAfter(tc.v, now); got != tc.want {
			t.Errorf("Retry-After %q = %v, want %v", tc.v, got, tc.want)
		}
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		status int
		on4xx  On4xx
		want   outcome
	}{
		{200, DeadLetter, delivered}, {201, DeadLetter, delivered}, {204, DeadLetter, delivered}, {299, DeadLetter, delivered},
		{408, DeadLetter, retryable}, {425, DeadLetter, retryable}, {429, DeadLetter, retryable},
		{500, DeadLetter, retryable}, {502, DeadLetter, retryable}, {503, DeadLetter, retryable}, {504, DeadLetter, retryable},
		{301, DeadLetter, retryable}, {100, DeadLetter, retryable},
		{410, DeadLetter, gone}, {410, Retry, gone},
		{400, DeadLetter, rejected}, {401, DeadLetter, rejected}, {403, DeadLetter, rejected}, {404, DeadLetter, rejected}, {422, DeadLetter, rejected},
		{400, Retry, retryable}, {404, Retry, retryable},
	} {
		if got := classify(tc.status, tc.on4xx); got != tc.want {
			t.Errorf("classify(%d, %s) = %v, want %v", tc.status, tc.on4xx, got, tc.want)
		}
	}
}

// TestSignStandardVector checks the signature against the Standard
// Webhooks specification's published example.
func TestSignStandardVector(t *testing.T) {
	signer, err := newSigner("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	f := &Forwarder{signer: signer}
	ts, got := f.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", []byte(`{"test": 2432232314}`), time.Unix(1614265330, 0))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want || ts != "1614265330" {
		t.Errorf("signature = %s at %s, want %s at 1614265330", got, ts, want)
	}
}

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second:                       "now",
		8 * time.Second:                    "8 seconds",
		time.Second:                        "1 second",
		65 * time.Second:                   "1 minute 5 seconds",
		2*time.Hour + 30*time.Minute + 4e9: "2 hours 30 minutes",
		26 * time.Hour:                     "1 day 2 hours",
		time.Hour + 5*time.Second:          "1 hour",
	} {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestOrderingKeySpecs reads ordering keys through both spellings of a
// JSON path and a header name.
func TestOrderingKeySpecs(t *testing.T) {
	body := []byte(`{"data":{"object":{"customer":"cus_1","n":42,"ok":true,"items":[{"id":"a"},{"id":"b"}]}}}`)
	hdr := nats.Header{"X-Shop": {"shop-1"}}
	for spec, want := range map[string]string{
		"data.object.customer":     "cus_1",
		"$.data.object.customer":   "cus_1",
		"data.object.n":            "42",
		"$.data.object.ok":         "true",
		"data.object.items.1.id":   "b",
		"$.data.object.items.9.id": "",
		"data.object":              "",
		"$.missing":                "",
		"x-shop":                   "shop-1",
		"X-Shop":                   "shop-1",
	} {
		kf, err := newKeyFunc(spec)
		if err != nil {
			t.Fatalf("%s: %v", spec, err)
		}
		if got := kf(hdr, body); got != want {
			t.Errorf("key(%s) = %q, want %q", spec, got, want)
		}
	}
	for _, bad := range []string{"$..x", "a..b", "a.", "x shop"} {
		if _, err := newKeyFunc(bad); err == nil {
			t.Errorf("newKeyFunc(%q) accepted", bad)
		}
	}
}

func TestMatches(t *testing.T) {
	c := Config{Subjects: []string{"webhooks.v1.stripe.invoice.>", "webhooks.*.github.push"}}
	for subj, want := range map[string]bool{
		"webhooks.v1.stripe.invoice.paid":    true,
		"webhooks.v1.stripe.invoice":         false,
		"webhooks.v2.github.push":            true,
		"webhooks.v2.github.push.extra":      false,
		"webhooks.v1.stripe.customer.create": false,
	} {
		if got := c.Matches(subj); got != want {
			t.Errorf("Matches(%s) = %v, want %v", subj, got, want)
		}
	}
	if !(&Config{}).Matches("webhooks.v1.x.y") {
		t.Error("no subjects must match every event")
	}
}

func TestValidate(t *testing.T) {
	ok := Config{Name: "orders", URL: "http://127.0.0.1:9000/hooks"}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for _, tc := range []struct {
		mut  func(*Config)
		want string
	}{
		{func(c *Config) { c.Name = "" }, "name is empty"},
		{func(c *Config) { c.Name = "a.b" }, `name "a.b"`},
		{func(c *Config) { c.URL = "ftp://x" }, `url "ftp://x"`},
		{func(c *Config) { c.URL = "/relative" }, "absolute"},
		{func(c *Config) { c.Subjects = []string{"orders.>"} }, `subject "orders.>"`},
		{func(c *Config) { c.Subjects = []string{"webhooks.>.x"} }, "subject"},
		{func(c *Config) { c.Timeout = -1 }, "timeout"},
		{func(c *Config) { c.BackoffBase, c.BackoffCap = time.Minute, time.Second }, "backoff cap 1s is below its base 1m0s"},
		{func(c *Config) { c.MaxAttempts = -1 }, "max_attempts -1"},
		{func(c *Config) { c.On4xx = "drop" }, `on_4xx "drop"`},
		{func(c *Config) { c.Concurrency = 5000 }, "concurrency 5000"},
		{func(c *Config) { c.Rate = -1 }, "rate"},
		{func(c *Config) { c.OrderedBy = "$..x" }, "ordered_by"},
		{func(c *Config) { c.SignSecret = "plain" }, "whsec_"},
		{func(c *Config) { c.SignSecret = "whsec_!!!" }, "base64"},
		{func(c *Config) { c.Breaker.Ratio = 2 }, "breaker ratio"},
		{func(c *Config) { c.Schedule = []time.Duration{-time.Second} }, "schedule entry 1"},
	} {
		c := ok
		tc.mut(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate() = %v, want an error containing %q", err, tc.want)
		}
	}
}

// TestAppendDeliveryMatchesJSON proves the hand-written state encoding
// byte-compatible with encoding/json, the shape readers of the bucket see.
func TestAppendDeliveryMatchesJSON(t *testing.T) {
	now := time.Date(2026, 11, 28, 19, 30, 1, 123456789, time.UTC)
	whole := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	later := now.Add(8 * time.Second)
	odd := []string{"", "plain", `quote " and \ back`, "<html> & co", "tab\tnew\nline\r\x00\x1f\x7f",
		"café ünïcode µs", "bad utf8 \xff\xfe", "sep \u2028 \u2029", "emoji 🎉"}
	recs := []Delivery{
		{EventID: "stripe:evt_1", Destination: "billing", Subject: "webhooks.v1.stripe.invoice.paid", Sequence: 1,
			Status: StatusDelivered, Attempts: 1, LastStatusCode: 204, LastLatency: Duration(734 * time.Microsecond),
			DeliveredAt: &now, UpdatedAt: now},
		{EventID: "github:abc", Destination: "ci", Event: "push", Subject: "webhooks.v1.github.push", Sequence: 1 << 40,
			Status: StatusRetrying, Attempts: 3, RetryAttempts: 2, NextRetryAt: &later, NextRetryIn: "8 seconds",
			LastStatusCode: 503, LastError: "HTTP 503 Service Unavailable", LastLatency: Duration(2*time.Second + 5*time.Millisecond),
			UpdatedAt: whole},
		{EventID: "x", Destination: "d", Status: StatusFailed, Attempts: 5, RetryAttempts: 4,
			LastError: `Post "http://127.0.0.1:1/x?a=1&b=<2>": dial tcp: connection refused`, Reason: "max_attempts",
			Sent:        &Sent{Size: 42, SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},
			LastLatency: Duration(-3 * time.Nanosecond), UpdatedAt: now},
		{Status: StatusDelivering, UpdatedAt: time.Time{}.UTC()},
		{EventID: "local", Destination: "tz", Status: StatusDelivered, DeliveredAt: ptr(now.In(time.FixedZone("X", 3600))),
			NextRetryAt: ptr(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)), UpdatedAt: now.Local()},
	}
	for _, s := range odd {
		recs = append(recs, Delivery{EventID: s, Destination: s, Event: s, Subject: s, Status: Status(s),
			NextRetryIn: s, LastError: s, Reason: s, LastStatusCode: -1, UpdatedAt: now})
	}
	for i, rec := range recs {
		want, wantErr := json.Marshal(&rec)
		got, err := appendDelivery([]byte("junk"), &rec)
		if (err != nil) != (wantErr != nil) {
			t.Errorf("record %d: error %v, json.Marshal's %v", i, err, wantErr)
			continue
		}
		if wantErr == nil && string(got[4:]) != string(want) {
			t.Errorf("record %d:\n got %s\nwant %s", i, got[4:], want)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// TestSignSecretsAsVerifyReadsThem signs with each secret form verify's
// standard-webhooks scheme reads, and checks the signature with verify
// itself; a public key cannot sign and is refused by Validate.
func TestSignSecretsAsVerifyReadsThem(t *testing.T) {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(i)
	}
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	hmacKey := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	for _, tc := range []struct{ sign, check string }{
		{"whsec_" + hmacKey, "whsec_" + hmacKey},
		{hmacKey, "whsec_" + hmacKey}, // bare base64, as verify reads it
		{"whsk_" + base64.StdEncoding.EncodeToString(seed), "whpk_" + base64.StdEncoding.EncodeToString(pub)},
	} {
		c := Config{Name: "s", URL: "http://127.0.0.1:1/", SignSecret: tc.sign}
		if err := c.Validate(); err != nil {
			t.Fatalf("%s: %v", tc.sign, err)
		}
		signer, _ := newSigner(tc.sign)
		f := &Forwarder{signer: signer}
		body := []byte(`{"a":1}`)
		now := time.Now()
		ts, sig := f.sign("evt:1", body, now)
		v, err := verify.StandardWebhooks(tc.check)
		if err != nil {
			t.Fatal(err)
		}
		h := http.Header{"Webhook-Id": {"evt:1"}, "Webhook-Timestamp": {ts}, "Webhook-Signature": {sig}}
		if _, err := v.Verify(&verify.Request{Header: h, Body: body, Now: now}); err != nil {
			t.Errorf("%s: verify refuses the forwarder's signature %q: %v", tc.sign, sig, err)
		}
	}
	c := Config{Name: "s", URL: "http://127.0.0.1:1/", SignSecret: "whpk_" + base64.StdEncoding.EncodeToString(pub)}
	if err := c.Validate(); err == nil {
		t.Error("Validate accepted a public key as the signing secret")
	}
}

// TestExportedStateAndAttemptSubjects: what the event log reads with the
// exported names (StateStream, StateSubjectPrefix, DecodeDelivery,
// AttemptSubjects) is what the forwarder writes.
func TestExportedStateAndAttemptSubjects(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := EnsureAttemptStream(ctx, e.js, 0, 1); err != nil {
		t.Fatal(err)
	}
	s := newSink(t, func(_ http.Header, n int) (int, map[string]string) {
		if n == 1 {
			return 503, nil
		}
		return 204, nil
	})
	cfg := fast("subj", s.srv.URL)
	cfg.Schedule = []time.Duration{10 * time.Millisecond}
	e.start(cfg)
	seq := e.publish("x:subj/1", "x", "order.created", []byte(`{}`), nil)
	waitState(t, e, "x:subj/1", "subj", StatusDelivered)

	msgs, err := DirectBatch(ctx, e.nc, StateStream, DirectRequest{MultiLast: []string{StateSubjectPrefix("x:subj/1") + "*"}, Batch: 10})
	if err != nil || len(msgs) != 1 {
		t.Fatalf("states under %s*: %d, %v", StateSubjectPrefix("x:subj/1"), len(msgs), err)
	}
	d, err := DecodeDelivery(msgs[0].Data, time.Now())
	if err != nil || d.EventID != "x:subj/1" || d.Destination != "subj" || d.Sequence != seq || d.Status != StatusDelivered {
		t.Fatalf("DecodeDelivery = %+v, %v", d, err)
	}
	if _, err := DecodeDelivery([]byte("{"), time.Now()); err == nil {
		t.Fatal("DecodeDelivery accepted a broken record")
	}
	msgs, err = DirectBatch(ctx, e.nc, AttemptStream, DirectRequest{Seq: 1, NextBySubject: AttemptSubjects("subj"), Batch: 10})
	if err != nil || len(msgs) != 1 {
		t.Fatalf("attempts under %s: %d, %v (want the failed first attempt)", AttemptSubjects("subj"), len(msgs), err)
	}
	var a Attempt
	if err := json.Unmarshal(msgs[0].Data, &a); err != nil || a.Destination != "subj" || a.StatusCode != 503 {
		t.Fatalf("attempt = %+v, %v", a, err)
	}
}

// TestPersistModeSingleServer: on a single server (nats-server reports no
// cluster name in a stream's info) the delivery state and the attempt
// history use asynchronous persistence: an fsync per write would cap
// deliveries at the disk's rate. A cluster, even at one replica, keeps
// the default (caddymodule's TestClusterWaitsForQuorum checks that side).
func TestPersistModeSingleServer(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := EnsureStateBucket(ctx, e.js); err != nil {
		t.Fatal(err)
	}
	if err := EnsureAttemptStream(ctx, e.js, 0, 1); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{StateStream, AttemptStream} {
		s, err := e.js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if pm := s.CachedInfo().Config.PersistMode; pm != jetstream.AsyncPersistMode {
			t.Errorf("%s: persist mode %v on a single server, want async", name, pm)
		}
	}
}
