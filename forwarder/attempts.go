package forwarder

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap"
)

// AttemptStream is the JetStream stream holding the attempt history: one
// message per delivery attempt (the first, every retry, every replay), on
// subject "hookgate_attempts.<base64url(event id)>.<destination>", so that
// one event's history is one subject-filtered read.
const AttemptStream = "WEBHOOKS_ATTEMPTS"

// attemptSubjectRoot is the first token of attempt subjects.
const attemptSubjectRoot = "hookgate_attempts"

// ResponseBodyLimit is how much of a destination's answer the history
// keeps: the first 4 KiB, which is where a service says why it refused.
const ResponseBodyLimit = 4 << 10

// HeaderWebhookReplay marks a delivery made by a replay or a redrive, not
// by the event's own retries: "true".
const HeaderWebhookReplay = "Webhook-Replay"

// Attempt is one delivery attempt to one destination, as the event log
// shows it.
type Attempt struct {
	// Destination is the destination's name.
	Destination string `json:"destination"`
	// Attempt is the 1-based attempt number sent as Webhook-Attempt.
	Attempt int `json:"attempt"`
	// Time is when the attempt started, UTC.
	Time time.Time `json:"time"`
	// StatusCode is the HTTP status of the answer, 0 when none came.
	StatusCode int `json:"status_code"`
	// Latency is how long the attempt took.
	Latency Duration `json:"latency"`
	// Outcome is delivered, retryable, rejected or gone.
	Outcome string `json:"outcome"`
	// Error describes a failure ("HTTP 503 Service Unavailable", "timeout
	// after 10s").
	Error string `json:"error,omitempty"`
	// Replay is true for attempts made by a replay or a redrive.
	Replay bool `json:"replay,omitempty"`
	// Response is what the destination answered, when it answered.
	Response *Response `json:"response,omitempty"`
	// Sent identifies the body sent when the destination transforms
	// (transform or transform_headers); nil when it does not.
	Sent *Sent `json:"sent,omitempty"`
}

// Response is a destination's answer to one attempt: its headers
// (credentials redacted) and the first ResponseBodyLimit bytes of its body.
type Response struct {
	Header map[string][]string `json:"headers,omitempty"`
	// Body is the body as text when it is UTF-8, else base64 with
	// BodyEncoding "base64".
	Body         string `json:"body,omitempty"`
	BodyEncoding string `json:"body_encoding,omitempty"`
	// Truncated is true when the body was longer than ResponseBodyLimit.
	Truncated bool `json:"truncated,omitempty"`
}

// answer is the raw material of a Response, captured by post and postLarge.
type answer struct {
	header    map[string][]string
	body      []byte
	truncated bool
}

// fastAnswer captures a fasthttp response's headers and body start, for
// an answer that is not a 2xx (see recordAttempt).
func fastAnswer(resp *fasthttp.Response) *answer {
	if c := resp.StatusCode(); c >= 200 && c < 300 {
		return nil
	}
	a := &answer{header: map[string][]string{}}
	for k, v := range resp.Header.All() {
		name := textproto.CanonicalMIMEHeaderKey(string(k))
		a.header[name] = append(a.header[name], string(v))
	}
	body := resp.Body()
	a.body = bytes.Clone(body[:min(len(body), ResponseBodyLimit)])
	a.truncated = len(body) > ResponseBodyLimit
	return a
}

// httpAnswer captures a net/http response's headers and reads the start of
// its body, for an answer that is not a 2xx; the caller drains the rest.
func httpAnswer(resp *http.Response) *answer {
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	a := &answer{header: map[string][]string(resp.Header.Clone())}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, ResponseBodyLimit+1))
	a.truncated = len(b) > ResponseBodyLimit
	a.body = b[:min(len(b), ResponseBodyLimit)]
	return a
}

// response renders a for the history.
func (a *answer) response() *Response {
	if a == nil {
		return nil
	}
	r := &Response{Header: RedactHeader(a.header), Truncated: a.truncated}
	r.Body, r.BodyEncoding = EncodeBody(a.body)
	return r
}

// EncodeBody returns b as text when it is valid UTF-8, else as base64 with
// the encoding "base64".
func EncodeBody(b []byte) (text, encoding string) {
	if utf8.Valid(b) {
		return string(b), ""
	}
	return base64.StdEncoding.EncodeToString(b), "base64"
}

// RedactHeader returns a copy of h in which the values of credential
// headers are Redacted: Authorization, Cookie, Set-Cookie, and any name
// holding "signature", "token", "secret", "hmac" or "api-key" (the
// providers' signature headers: X-Hub-Signature-256, Stripe-Signature,
// X-Shopify-Hmac-Sha256, X-Gitlab-Token, ...).
func RedactHeader(h map[string][]string) map[string][]string {
	out := make(map[string][]string, len(h))
	for k, vs := range h {
		if IsCredentialHeader(k) {
			red := make([]string, len(vs))
			for i := range red {
				red[i] = Redacted
			}
			out[k] = red
			continue
		}
		out[k] = slices.Clone(vs)
	}
	return out
}

// IsCredentialHeader reports whether a header's value is a credential the
// event log must not show.
func IsCredentialHeader(name string) bool {
	n := strings.ToLower(name)
	switch n {
	case "authorization", "proxy-authorization", "cookie", "set-cookie":
		return true
	}
	for _, s := range credentialWords {
		if strings.Contains(n, s) {
			return true
		}
	}
	// X-Access-Key, X-Api_Key, X-Auth-Key; the event id's Idempotency-Key
	// is no credential.
	return strings.HasSuffix(n, "key") && n != "idempotency-key"
}

// credentialWords are the parts of a header name that mark its value as a
// credential. Over-redacting costs the reader a value; under-redacting
// puts a secret in the event log.
var credentialWords = []string{"signature", "token", "secret", "hmac", "api-key", "apikey",
	"auth", "passw", "credential", "session"}

// AttemptSubjects is the AttemptStream subject filter of every attempt
// made at a destination, whatever the event: "hookgate_attempts.*.<destination>".
func AttemptSubjects(destination string) string {
	return attemptSubjectRoot + ".*." + destination
}

// attemptSubject is the subject of an event's attempts at a destination.
func attemptSubject(eventID, destination string) string {
	return attemptSubjectRoot + "." + base64.RawURLEncoding.EncodeToString([]byte(eventID)) + "." + destination
}

// EnsureAttemptStream creates AttemptStream when missing. Its records
// expire after maxAge (the WEBHOOKS retention). Like the delivery state it
// is written without an fsync per message: it is observability, and a
// crash may lose its last moments, never an event.
func EnsureAttemptStream(ctx context.Context, js jetstream.JetStream, maxAge time.Duration, replicas int) error {
	cfg := jetstream.StreamConfig{
		Name:        AttemptStream,
		Description: "Hookgate delivery attempts: status, latency and the destination's answer",
		Subjects:    []string{attemptSubjectRoot + ".>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      maxAge,
		MaxBytes:    -1,
		Replicas:    max(1, replicas),
		AllowDirect: true,
	}
	cfg.PersistMode = persistMode(ctx, js, cfg.Replicas) // state.go
	_, err := js.CreateStream(ctx, cfg)
	if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return fmt.Errorf("create attempt history stream %s: %w", AttemptStream, err)
	}
	return nil
}

// recordAttempt appends one attempt to the history, fire-and-forget like
// the delivery state: a lost write leaves a gap in the history, nothing
// else.
//
// A successful attempt that is not a replay is not written: it is the
// last attempt, and the delivery state holds what there is to know of it
// (time, status, latency), which AttemptFromState turns back into an
// Attempt. So the history costs the common path, one successful attempt,
// nothing (a written attempt costs a delivery about a fifth more CPU).
func (f *Forwarder) recordAttempt(d *delivery, res result) {
	if res.outcome == delivered && !d.replay {
		return
	}
	a := Attempt{
		Destination: f.cfg.Name,
		Attempt:     d.attempt,
		Time:        time.Now().Add(-res.latency).UTC(),
		StatusCode:  res.status,
		Latency:     Duration(res.latency),
		Outcome:     res.outcome.String(),
		Error:       res.err,
		Replay:      d.replay,
		Response:    res.answer.response(),
		Sent:        d.sent,
	}
	data, err := json.Marshal(&a)
	if err != nil {
		f.log.Error("encode attempt", zap.String("event_id", d.ev.ID), zap.Error(err))
		return
	}
	if err := f.js.Conn().Publish(attemptSubject(d.ev.ID, f.cfg.Name), data); err != nil {
		f.log.Warn("record attempt", zap.String("event_id", d.ev.ID), zap.Error(err))
	}
}

// AttemptFromState returns the attempt a delivered state records, when
// the history does not hold it (see recordAttempt).
func AttemptFromState(st Delivery) (Attempt, bool) {
	if st.Status != StatusDelivered || st.DeliveredAt == nil || st.Attempts < 1 {
		return Attempt{}, false
	}
	return Attempt{
		Destination: st.Destination,
		Attempt:     st.Attempts,
		Time:        st.DeliveredAt.Add(-time.Duration(st.LastLatency)),
		StatusCode:  st.LastStatusCode,
		Latency:     st.LastLatency,
		Outcome:     delivered.String(),
		Sent:        st.Sent,
	}, true
}

// ReadAttempts returns every recorded attempt of an event at every
// destination, oldest first. An event with none gives an empty slice.
func ReadAttempts(ctx context.Context, js jetstream.JetStream, eventID string) ([]Attempt, error) {
	filter := attemptSubjectRoot + "." + base64.RawURLEncoding.EncodeToString([]byte(eventID)) + ".*"
	msgs, err := DirectBatch(ctx, js.Conn(), AttemptStream, DirectRequest{Seq: 1, NextBySubject: filter, Batch: 1000})
	if err != nil {
		return nil, fmt.Errorf("read attempts of event %q: %w", eventID, err)
	}
	out := make([]Attempt, 0, len(msgs))
	for _, m := range msgs {
		var a Attempt
		if err := json.Unmarshal(m.Data, &a); err != nil {
			return nil, fmt.Errorf("read attempts of event %q: decode: %w", eventID, err)
		}
		out = append(out, a)
	}
	return out, nil
}

// DirectRequest is the body of a JetStream direct get batch request
// (nats-server's JSApiMsgGetRequest): Batch messages from Seq on, only
// those matching NextBySubject when set, or the newest message of each
// subject matching MultiLast.
type DirectRequest struct {
	Seq           uint64     `json:"seq,omitempty"`
	NextBySubject string     `json:"next_by_subj,omitempty"`
	Batch         int        `json:"batch,omitempty"`
	MaxBytes      int        `json:"max_bytes,omitempty"`
	StartTime     *time.Time `json:"start_time,omitempty"`
	MultiLast     []string   `json:"multi_last,omitempty"`
	UpToSeq       uint64     `json:"up_to_seq,omitempty"`
	NoHeaders     bool       `json:"no_hdr,omitempty"`
}

// DirectBatch makes one direct get request on a stream with AllowDirect
// and returns the messages it answers, in stream order. Each carries the
// Nats-Sequence, Nats-Subject and Nats-Time-Stamp headers. No match is an
// empty slice, not an error.
func DirectBatch(ctx context.Context, nc *nats.Conn, stream string, req DirectRequest) ([]*nats.Msg, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, fmt.Errorf("direct get on %s: %w", stream, err)
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest("$JS.API.DIRECT.GET."+stream, inbox, body); err != nil {
		return nil, fmt.Errorf("direct get on %s: %w", stream, err)
	}
	var out []*nats.Msg
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return nil, fmt.Errorf("direct get on %s: %w", stream, err)
		}
		if m.Header.Get("Nats-Sequence") == "" { // a status message
			switch m.Header.Get("Status") {
			case "204", "404":
				return out, nil
			case "503":
				return nil, fmt.Errorf("direct get on %s: no responders: the stream is missing or has no direct get", stream)
			default:
				return nil, fmt.Errorf("direct get on %s: %s %s", stream, m.Header.Get("Status"), m.Header.Get("Description"))
			}
		}
		out = append(out, m)
		if req.Batch == 0 && len(req.MultiLast) == 0 {
			return out, nil
		}
	}
}
