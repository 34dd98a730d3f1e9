package forwarder

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/hookgate/hookgate/event"
)

// StateBucket is the JetStream KV bucket holding one Delivery per (event,
// destination). Its key is "<base64url(event id)>.<destination>".
const StateBucket = "WEBHOOKS_DELIVERIES"

// Status is where one event stands with one destination.
type Status string

// The statuses of a Delivery.
const (
	// StatusPending: the event matches the destination and no attempt has
	// finished yet. No record is stored for it; ReadDeliveries callers
	// show it for destinations whose Config.Matches the event's subject.
	StatusPending Status = "pending"
	// StatusDelivering: an attempt has been running for a while.
	StatusDelivering Status = "delivering"
	// StatusRetrying: an attempt failed and another is due at NextRetryAt.
	StatusRetrying Status = "retrying"
	// StatusDelivered: the destination answered 2xx.
	StatusDelivered Status = "delivered"
	// StatusFailed: the event was dead-lettered.
	StatusFailed Status = "failed"
	// StatusFiltered: the destination's filter rejected the event, which
	// was acked for it without a delivery. LastError says why when a
	// filter could not be evaluated.
	StatusFiltered Status = "filtered"
)

// ErrNoDelivery means no delivery state is stored for the event and
// destination: the event is pending, does not match the destination, or its
// state expired with the stream's retention.
var ErrNoDelivery = errors.New("forwarder: no delivery state")

// Delivery is the delivery state of one event at one destination, as
// stored in StateBucket and shown by the event log.
type Delivery struct {
	// EventID is the event's id (Hookgate-Id).
	EventID string `json:"event_id"`
	// Destination is the destination's name.
	Destination string `json:"destination"`
	// Event is the provider's event type, when it named one.
	Event string `json:"event,omitempty"`
	// Subject and Sequence locate the event in WEBHOOKS.
	Subject  string `json:"subject"`
	Sequence uint64 `json:"stream_seq"`
	// Status is where the event stands.
	Status Status `json:"status"`
	// Attempts is how many attempts were made, the first included.
	Attempts int `json:"attempts"`
	// RetryAttempts is how many of those were retries (Attempts - 1).
	RetryAttempts int `json:"retry_attempts"`
	// NextRetryAt is when the next attempt is due, while retrying.
	NextRetryAt *time.Time `json:"next_retry_at,omitempty"`
	// NextRetryIn renders NextRetryAt relative to the time of reading
	// ("8 seconds"); it is not stored.
	NextRetryIn string `json:"next_retry_in,omitempty"`
	// LastStatusCode is the HTTP status of the last attempt, 0 when it got
	// no response.
	LastStatusCode int `json:"last_status_code,omitempty"`
	// LastError describes the last failure.
	LastError string `json:"last_error,omitempty"`
	// LastLatency is how long the last attempt took.
	LastLatency Duration `json:"last_latency,omitempty"`
	// DeliveredAt is when the destination accepted the event.
	DeliveredAt *time.Time `json:"delivered_at,omitempty"`
	// Reason says why a failed event was dead-lettered (see
	// event.HeaderDLQReason).
	Reason string `json:"reason,omitempty"`
	// Sent identifies the body of the last attempt when the destination
	// transforms (transform or transform_headers); nil when it does not.
	Sent *Sent `json:"sent,omitempty"`
	// UpdatedAt is when this state was written.
	UpdatedAt time.Time `json:"updated_at"`
}

// Duration is a time.Duration that reads and writes JSON as a Go duration
// string ("12.5ms").
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(strconv.Quote(time.Duration(d).String())), nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	s, err := strconv.Unquote(string(b))
	if err != nil {
		return fmt.Errorf("duration %s: %w", b, err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// stateKey is the KV key of one (event, destination). Event ids may hold
// characters KV keys may not (':'), hence the base64url.
func stateKey(eventID, destination string) string {
	return string(appendStateKey(nil, eventID, destination))
}

// appendStateKey appends stateKey(eventID, destination) to b: the one
// encoding of a state's key, used for the key (stateKey) and for its
// subject in StateStream (appendStateSubject).
func appendStateKey(b []byte, eventID, destination string) []byte {
	b = base64.RawURLEncoding.AppendEncode(b, []byte(eventID))
	b = append(b, '.')
	return append(b, destination...)
}

// StateStream is the stream behind StateBucket, for reads of many states
// in one request (DirectBatch on StateSubjectPrefix's subjects).
const StateStream = "KV_" + StateBucket

// StateSubjectPrefix is the start of the StateStream subject of each of an
// event's states, "$KV.<StateBucket>.<base64url(event id)>."; the
// destination's name completes it (stateKey).
func StateSubjectPrefix(eventID string) string {
	return string(appendStateSubject(nil, eventID, ""))
}

// EnsureStateBucket opens StateBucket, creating it when missing. Its
// records expire with the WEBHOOKS stream's MaxAge, and it has the same
// replicas. On one replica of a single server (persistMode) it uses
// asynchronous persistence: delivery
// state is observability, and an fsync per write would cap deliveries at
// the disk's fsync rate; the events themselves stay fsynced in WEBHOOKS.
// A crash may lose the last moments of state, never an event.
func EnsureStateBucket(ctx context.Context, js jetstream.JetStream) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, StateBucket)
	if err == nil {
		return kv, nil
	}
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("open delivery state bucket %s: %w", StateBucket, err)
	}
	var maxAge time.Duration
	replicas := 1
	if s, err := js.Stream(ctx, event.StreamName); err == nil {
		maxAge = s.CachedInfo().Config.MaxAge
		replicas = max(1, s.CachedInfo().Config.Replicas)
	}
	cfg := jetstream.StreamConfig{
		Name:              StateStream,
		Description:       "Hookgate delivery state per event and destination",
		Subjects:          []string{"$KV." + StateBucket + ".>"},
		MaxMsgsPerSubject: 1,
		MaxBytes:          -1,
		MaxMsgs:           -1,
		MaxMsgSize:        -1,
		MaxConsumers:      -1,
		MaxAge:            maxAge,
		Storage:           jetstream.FileStorage,
		Replicas:          replicas,
		AllowRollup:       true,
		DenyDelete:        true,
		AllowDirect:       true,
		Duplicates:        2 * time.Minute,
		Discard:           jetstream.DiscardNew,
	}
	if maxAge > 0 && maxAge < cfg.Duplicates {
		cfg.Duplicates = maxAge
	}
	cfg.PersistMode = persistMode(ctx, js, replicas)
	if _, err := js.CreateStream(ctx, cfg); err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return nil, fmt.Errorf("create delivery state bucket %s: %w", StateBucket, err)
	}
	kv, err = js.KeyValue(ctx, StateBucket)
	if err != nil {
		return nil, fmt.Errorf("open delivery state bucket %s: %w", StateBucket, err)
	}
	return kv, nil
}

// persistMode is the persist mode of an observability stream (delivery
// state, attempt history) with replicas copies: asynchronous on a single
// server, where an fsync per write would cap deliveries; the default on a
// JetStream cluster even at one replica, because JetStream refuses async
// persistence on a replicated stream and never changes a stream's persist
// mode, so a later reload to more replicas could not scale it.
func persistMode(ctx context.Context, js jetstream.JetStream, replicas int) jetstream.PersistModeType {
	if replicas > 1 {
		return jetstream.DefaultPersistMode
	}
	s, err := js.Stream(ctx, event.StreamName)
	if err == nil && s.CachedInfo().Cluster != nil && s.CachedInfo().Cluster.Name != "" {
		return jetstream.DefaultPersistMode
	}
	return jetstream.AsyncPersistMode
}

// writeState records d's state. The write is fire-and-forget: it costs the
// delivery no round trip, and a lost write only makes the event log lag.
func (f *Forwarder) writeState(d *delivery, status Status, res result, next time.Time) {
	now := time.Now().UTC()
	rec := Delivery{
		EventID:        d.ev.ID,
		Destination:    f.cfg.Name,
		Event:          d.ev.Type,
		Subject:        d.ev.Subject,
		Sequence:       d.md.Sequence.Stream,
		Status:         status,
		Attempts:       d.attempt,
		RetryAttempts:  max(0, d.attempt-1),
		LastStatusCode: res.status,
		LastError:      res.err,
		LastLatency:    Duration(res.latency),
		Reason:         res.reason,
		Sent:           d.sent,
		UpdatedAt:      now,
	}
	switch status {
	case StatusDelivering:
		// The attempt is under way: nothing about it is known yet.
		rec.Attempts--
		rec.RetryAttempts = max(0, rec.Attempts-1)
	case StatusRetrying:
		if !next.IsZero() {
			n := next.UTC()
			rec.NextRetryAt = &n
		}
	case StatusDelivered:
		rec.DeliveredAt = &now
	}
	f.putState(&rec, d.ev.ID)
}

// stateBufs recycles the buffers delivery states are encoded in: Publish
// copies the data before it returns.
var stateBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// putState writes rec; id is rec.EventID (see below).
func (f *Forwarder) putState(rec *Delivery, id string) {
	bp := stateBufs.Get().(*[]byte)
	defer stateBufs.Put(bp)
	// The subject first, then the record: one buffer, and one allocation,
	// the subject's string.
	b := appendStateSubject((*bp)[:0], rec.EventID, rec.Destination)
	n := len(b)
	b, err := appendDelivery(b, rec)
	*bp = b[:0]
	// The log takes id, not rec.EventID: with rec's string in a log field
	// escape analysis would move rec's record (and the times it points to)
	// to the heap for every write.
	if err != nil {
		f.log.Error("encode delivery state", zap.String("event_id", id), zap.Error(err))
		return
	}
	if err := f.js.Conn().Publish(string(b[:n]), b[n:]); err != nil {
		f.log.Warn("write delivery state", zap.String("event_id", id), zap.Error(err))
	}
}

// appendStateSubject appends the subject of the KV record of (eventID,
// destination), "$KV.<StateBucket>.<stateKey>", to b (with destination
// "", StateSubjectPrefix).
func appendStateSubject(b []byte, eventID, destination string) []byte {
	b = append(b, "$KV."+StateBucket+"."...)
	return appendStateKey(b, eventID, destination)
}

// appendDelivery appends rec's JSON encoding to b, byte for byte what
// json.Marshal makes of it (TestAppendDeliveryMatchesJSON), without the
// reflection: the state is written once or more per delivery.
func appendDelivery(b []byte, rec *Delivery) ([]byte, error) {
	var err error
	b = append(b, `{"event_id":`...)
	b = appendJSONString(b, rec.EventID)
	b = append(b, `,"destination":`...)
	b = appendJSONString(b, rec.Destination)
	if rec.Event != "" {
		b = append(b, `,"event":`...)
		b = appendJSONString(b, rec.Event)
	}
	b = append(b, `,"subject":`...)
	b = appendJSONString(b, rec.Subject)
	b = append(b, `,"stream_seq":`...)
	b = strconv.AppendUint(b, rec.Sequence, 10)
	b = append(b, `,"status":`...)
	b = appendJSONString(b, string(rec.Status))
	b = append(b, `,"attempts":`...)
	b = strconv.AppendInt(b, int64(rec.Attempts), 10)
	b = append(b, `,"retry_attempts":`...)
	b = strconv.AppendInt(b, int64(rec.RetryAttempts), 10)
	if rec.NextRetryAt != nil {
		b = append(b, `,"next_retry_at":`...)
		if b, err = appendJSONTime(b, *rec.NextRetryAt); err != nil {
			return b, err
		}
	}
	if rec.NextRetryIn != "" {
		b = append(b, `,"next_retry_in":`...)
		b = appendJSONString(b, rec.NextRetryIn)
	}
	if rec.LastStatusCode != 0 {
		b = append(b, `,"last_status_code":`...)
		b = strconv.AppendInt(b, int64(rec.LastStatusCode), 10)
	}
	if rec.LastError != "" {
		b = append(b, `,"last_error":`...)
		b = appendJSONString(b, rec.LastError)
	}
	if rec.LastLatency != 0 {
		b = append(b, `,"last_latency":`...)
		// Duration.MarshalJSON's quoting: a duration's digits, '.', '-',
		// unit letters and 'µ' need no escaping.
		b = append(b, '"')
		b = append(b, time.Duration(rec.LastLatency).String()...)
		b = append(b, '"')
	}
	if rec.DeliveredAt != nil {
		b = append(b, `,"delivered_at":`...)
		if b, err = appendJSONTime(b, *rec.DeliveredAt); err != nil {
			return b, err
		}
	}
	if rec.Reason != "" {
		b = append(b, `,"reason":`...)
		b = appendJSONString(b, rec.Reason)
	}
	if rec.Sent != nil {
		b = append(b, `,"sent":{"size":`...)
		b = strconv.AppendInt(b, int64(rec.Sent.Size), 10)
		b = append(b, `,"sha256":`...)
		b = appendJSONString(b, rec.Sent.SHA256)
		b = append(b, '}')
	}
	b = append(b, `,"updated_at":`...)
	if b, err = appendJSONTime(b, rec.UpdatedAt); err != nil {
		return b, err
	}
	return append(b, '}'), nil
}

// appendJSONTime appends t as time.Time.MarshalJSON does. The state's
// times are UTC and of this era; any other goes through MarshalJSON,
// errors included (called directly: through json.Marshal, t would escape,
// and with it the record it belongs to, see putState).
func appendJSONTime(b []byte, t time.Time) ([]byte, error) {
	if y := t.Year(); t.Location() != time.UTC || y < 0 || y > 9999 {
		q, err := t.MarshalJSON()
		return append(b, q...), err
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), nil
}

// readState reads this destination's state of an event.
func (r *run) readState(ctx context.Context, eventID string) (*Delivery, error) {
	return getDelivery(ctx, r.kv, eventID, r.cfg.Name)
}

// ReadDelivery returns the delivery state of an event at one destination,
// or ErrNoDelivery.
func ReadDelivery(ctx context.Context, js jetstream.JetStream, eventID, destination string) (*Delivery, error) {
	kv, err := js.KeyValue(ctx, StateBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, ErrNoDelivery
	}
	if err != nil {
		return nil, fmt.Errorf("open delivery state bucket %s: %w", StateBucket, err)
	}
	return getDelivery(ctx, kv, eventID, destination)
}

func getDelivery(ctx context.Context, kv jetstream.KeyValue, eventID, destination string) (*Delivery, error) {
	e, err := kv.Get(ctx, stateKey(eventID, destination))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, ErrNoDelivery
	}
	if err != nil {
		return nil, fmt.Errorf("read delivery state of event %q at %q: %w", eventID, destination, err)
	}
	return DecodeDelivery(e.Value(), time.Now())
}

// ReadDeliveries returns the delivery states of an event at every
// destination that stored one, sorted by destination.
func ReadDeliveries(ctx context.Context, js jetstream.JetStream, eventID string) ([]Delivery, error) {
	kv, err := js.KeyValue(ctx, StateBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open delivery state bucket %s: %w", StateBucket, err)
	}
	prefix := base64.RawURLEncoding.EncodeToString([]byte(eventID))
	w, err := kv.Watch(ctx, prefix+".*", jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("read delivery states of event %q: %w", eventID, err)
	}
	defer w.Stop()
	var out []Delivery
	now := time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("read delivery states of event %q: %w", eventID, ctx.Err())
		case e, ok := <-w.Updates():
			if !ok || e == nil {
				sortDeliveries(out)
				return out, nil
			}
			d, err := DecodeDelivery(e.Value(), now)
			if err != nil {
				return nil, err
			}
			out = append(out, *d)
		}
	}
}

func sortDeliveries(ds []Delivery) {
	slices.SortFunc(ds, func(a, b Delivery) int { return strings.Compare(a.Destination, b.Destination) })
}

// DecodeDelivery decodes a delivery state as stored in StateBucket (a KV
// entry's value, or the data of a StateStream message), with NextRetryIn
// rendered as seen at now.
func DecodeDelivery(b []byte, now time.Time) (*Delivery, error) {
	var d Delivery
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("decode delivery state: %w", err)
	}
	if d.Status == StatusRetrying && d.NextRetryAt != nil {
		d.NextRetryIn = humanDuration(d.NextRetryAt.Sub(now))
	}
	return &d, nil
}

// humanDuration renders a wait the way people say it: "8 seconds",
// "5 minutes 3 seconds", "2 hours 30 minutes"; "now" when it is due.
func humanDuration(d time.Duration) string {
	d = d.Round(time.Second)
	if d <= 0 {
		return "now"
	}
	units := []struct {
		name string
		size time.Duration
	}{{"day", 24 * time.Hour}, {"hour", time.Hour}, {"minute", time.Minute}, {"second", time.Second}}
	var parts []string
	for _, u := range units {
		if n := d / u.size; n > 0 && len(parts) < 2 {
			name := u.name
			if n != 1 {
				name += "s"
			}
			parts = append(parts, strconv.FormatInt(int64(n), 10)+" "+name)
			d -= n * u.size
		} else if len(parts) > 0 {
			break
		}
	}
	return strings.Join(parts, " ")
}
