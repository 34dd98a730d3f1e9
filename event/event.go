// Package event is the wire contract of Hookgate's event stream: the subject
// layout, the header names and the Event type that every reader of the stream
// shares — the gateway's own forwarder and any internal service that
// subscribes to NATS directly.
//
// # The stream
//
// Every accepted webhook is one message in the JetStream stream WEBHOOKS
// ([StreamName]), stored only after its signature was checked. Its subject is
//
//	webhooks.<version>.<source>.<type>
//
// where version and source are the path segments the provider posted to
// (/webhooks/v1/stripe → "v1", "stripe") and type is the provider's event
// type, one subject token per dot-separated part ("invoice.paid" →
// "invoice.paid", "pull_request" → "pull_request"). Characters outside
// [A-Za-z0-9_-] in a type become "_"; a missing type is "unknown". So an
// internal service subscribes to all Stripe invoice events of v1 with
// "webhooks.v1.stripe.invoice.>".
//
// The message body is the request body exactly as the provider sent it: the
// bytes its signature covers (for a source that accepts gzip, the
// decompressed bytes, which is what such providers sign). The headers are the provider's own request
// headers (canonical HTTP form, minus hop-by-hop headers, credentials and any
// "Nats-" or "Hookgate-" header the sender tried to inject) plus Hookgate's
// metadata under the "Hookgate-" prefix (see the Header constants).
//
// Events that exhausted their delivery attempts are copied to WEBHOOKS_DLQ
// ([DLQStreamName]) under "webhooks_dlq.<destination>.<version>.<source>.<type>".
//
// # Reading events
//
// Internal services create their own durable consumer on WEBHOOKS and call
// [DecodeJetStream] (or [Decode] for a core NATS subscription) on each
// message; see the package example. Delivery is at least once: use
// [Event.ID], which is stable across provider retries and replays, as the
// idempotency key.
package event

import (
	"errors"
	"fmt"
	"iter"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Stream and subject names.
const (
	// StreamName is the JetStream stream that holds every accepted event.
	StreamName = "WEBHOOKS"
	// DLQStreamName is the stream of events no destination would accept.
	DLQStreamName = "WEBHOOKS_DLQ"
	// SubjectRoot is the first token of every event subject.
	SubjectRoot = "webhooks"
	// DLQSubjectRoot is the first token of every dead-letter subject.
	DLQSubjectRoot = "webhooks_dlq"
	// UnknownType is the type token of an event whose provider named no type.
	UnknownType = "unknown"
)

// Header names Hookgate sets on every stored event. Anything a client sends
// under the "Hookgate-" or "Nats-" prefix is dropped before these are set.
const (
	HeaderPrefix = "Hookgate-"
	// HeaderID is the event id, "<source>:<provider delivery id>" or
	// "<source>:<generated id>"; it is also the JetStream Nats-Msg-Id.
	HeaderID = "Hookgate-Id"
	// HeaderSource is the source name from the path.
	HeaderSource = "Hookgate-Source"
	// HeaderVersion is the API version from the path.
	HeaderVersion = "Hookgate-Version"
	// HeaderType is the provider's event type, before subject sanitising.
	HeaderType = "Hookgate-Type"
	// HeaderDeliveryID is the provider's own delivery id, empty when the
	// provider sent none and Hookgate generated the event id.
	HeaderDeliveryID = "Hookgate-Delivery-Id"
	// HeaderReceivedAt is when the gateway received the request, RFC 3339
	// with nanoseconds, UTC.
	HeaderReceivedAt = "Hookgate-Received-At"
	// HeaderContentType is the request's Content-Type as received.
	HeaderContentType = "Hookgate-Content-Type"
	// HeaderVerified names the verification scheme that accepted the
	// request ("none" when the source opted out).
	HeaderVerified = "Hookgate-Verified"
	// HeaderTraceparent is the W3C trace context (a traceparent value,
	// "00-<trace id>-<span id>-<flags>") of the gateway span that stored
	// the event, set only when the request was traced: it carried a
	// traceparent, or Caddy's tracing handler had started a span. The
	// forwarder continues the trace from it: each delivery attempt is a
	// child span, and the destination receives its traceparent.
	HeaderTraceparent = "Hookgate-Traceparent"
	// HeaderMsgID is JetStream's deduplication header.
	HeaderMsgID = "Nats-Msg-Id"
)

// Errors returned by Decode.
var (
	// ErrNotEvent means the message lacks Hookgate's metadata headers: it
	// was not published by the gateway.
	ErrNotEvent = errors.New("event: message has no Hookgate-Id header")
)

// Event is one webhook as stored in the stream.
type Event struct {
	// ID is the event id, stable across provider retries and replays.
	ID string
	// Source and Version are the path segments the provider posted to.
	Source, Version string
	// Type is the provider's event type, "" when it named none.
	Type string
	// DeliveryID is the provider's delivery id, "" when it sent none.
	DeliveryID string
	// ReceivedAt is when the gateway received the request.
	ReceivedAt time.Time
	// ContentType is the Content-Type the provider sent.
	ContentType string
	// Verified is the verification scheme that accepted the request.
	Verified string
	// Subject is the NATS subject the event was stored under.
	Subject string
	// Header holds the provider's request headers that were kept.
	Header http.Header
	// Body is the raw request body, exactly as received.
	Body []byte
	// Sequence is the stream sequence, set by DecodeJetStream.
	Sequence uint64
}

// Subject returns the subject an event of the given version, source and type
// is stored under. version and source must already be valid tokens (the
// gateway's router guarantees it); typ is sanitised here.
func Subject(version, source, typ string) string {
	var b strings.Builder
	b.Grow(len(SubjectRoot) + len(version) + len(source) + len(typ) + 4)
	b.WriteString(SubjectRoot)
	b.WriteByte('.')
	b.WriteString(version)
	b.WriteByte('.')
	b.WriteString(source)
	b.WriteByte('.')
	writeTypeTokens(&b, typ)
	return b.String()
}

// DLQSubject returns the dead-letter subject for an event subject and the
// destination that gave up on it.
func DLQSubject(destination, subject string) string {
	return DLQSubjectRoot + "." + destination + strings.TrimPrefix(subject, SubjectRoot)
}

// maxTypeTokens bounds how many subject tokens a provider's type may become,
// so a hostile type cannot make subjects arbitrarily deep.
const maxTypeTokens = 8

// maxTypeLen bounds the type part of a subject.
const maxTypeLen = 128

func writeTypeTokens(b *strings.Builder, typ string) {
	if len(typ) > maxTypeLen {
		typ = typ[:maxTypeLen]
	}
	if typ == "" {
		b.WriteString(UnknownType)
		return
	}
	tokens := 0
	empty := true
	for i := 0; i < len(typ); i++ {
		c := typ[i]
		switch {
		case c == '.':
			if empty {
				b.WriteByte('_')
			}
			tokens++
			if tokens == maxTypeTokens {
				return
			}
			b.WriteByte('.')
			empty = true
			continue
		default:
			b.WriteByte(TokenByte(c))
		}
		empty = false
	}
	if empty {
		b.WriteByte('_')
	}
}

// TokenByte is c as a byte of a subject token built from provider data:
// letters, digits, '_' and '-' are kept and every other byte ('.', '*',
// '>', spaces, non-ASCII) becomes '_', so a token never splits, matches
// as a wildcard or breaks the subject.
func TokenByte(c byte) byte {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		return c
	}
	return '_'
}

// Decode reads an event from a message received on a core NATS subscription
// or through the legacy JetStream API.
func Decode(msg *nats.Msg) (*Event, error) {
	e, err := decode(msg.Subject, msg.Header, msg.Data)
	if err != nil {
		return nil, err
	}
	if md, mdErr := msg.Metadata(); mdErr == nil {
		e.Sequence = md.Sequence.Stream
	}
	return e, nil
}

// DecodeJetStream reads an event from a message of a jetstream consumer.
func DecodeJetStream(msg jetstream.Msg) (*Event, error) {
	e, err := decode(msg.Subject(), msg.Headers(), msg.Data())
	if err != nil {
		return nil, err
	}
	if md, mdErr := msg.Metadata(); mdErr == nil {
		e.Sequence = md.Sequence.Stream
	}
	return e, nil
}

// DecodeFields reads an event from a stored message's subject, headers
// and body as Decode does, but leaves Header nil and Sequence zero: for a
// reader that takes the provider's headers from h itself with
// [ProviderHeaders], as the forwarder does for every delivery, and so
// spares building a map per message. It returns the Event by value, so
// that the caller can keep it inside a struct of its own (one allocation
// for both). Its errors are Decode's.
func DecodeFields(subject string, h nats.Header, data []byte) (Event, error) {
	id := h.Get(HeaderID)
	if id == "" {
		return Event{}, ErrNotEvent
	}
	e := Event{
		ID:          id,
		Source:      h.Get(HeaderSource),
		Version:     h.Get(HeaderVersion),
		Type:        h.Get(HeaderType),
		DeliveryID:  h.Get(HeaderDeliveryID),
		ContentType: h.Get(HeaderContentType),
		Verified:    h.Get(HeaderVerified),
		Subject:     subject,
		Body:        data,
	}
	if ts := h.Get(HeaderReceivedAt); ts != "" {
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			return Event{}, fmt.Errorf("event %q: %s %q: %w", id, HeaderReceivedAt, ts, err)
		}
		e.ReceivedAt = t
	}
	return e, nil
}

func decode(subject string, h nats.Header, data []byte) (*Event, error) {
	e, err := DecodeFields(subject, h, data)
	if err != nil {
		return nil, err
	}
	e.Header = ProviderHeader(h)
	return &e, nil
}

// ProviderHeader returns the provider's headers of a stored message: every
// header but Hookgate's metadata and NATS's own, under canonical names so
// that http.Header's Get finds them.
//
// The forwarder calls it for every delivery to a destination with filters
// or a transformation (others read ProviderHeaders), so it makes the map
// alone:
// each value slice is h's own, clipped to its length, so that appending to
// it (http.Header.Add) copies it instead of writing into h. Callers must
// not assign to a value slice's elements. Two names of h that canonicalize
// to one (only from a publisher other than the gateway) are merged into a
// new slice.
func ProviderHeader(h nats.Header) http.Header {
	out := make(http.Header, len(h))
	for ck, v := range ProviderHeaders(h) {
		if prev, ok := out[ck]; ok {
			out[ck] = append(slices.Clip(prev), v...)
			continue
		}
		out[ck] = slices.Clip(v)
	}
	return out
}

// ProviderHeaders yields the provider's headers of a stored message, as
// [ProviderHeader] keeps them (every header but Hookgate's metadata and
// NATS's own), each name in canonical form with h's own values, in no
// order, without building a map. Two names of h that canonicalize to one
// (only from a publisher other than the gateway) are yielded once each.
// The values are h's: callers must not modify them.
func ProviderHeaders(h nats.Header) iter.Seq2[string, []string] {
	return func(yield func(string, []string) bool) {
		for k, v := range h {
			if IsReserved(k) {
				continue
			}
			if !yield(textproto.CanonicalMIMEHeaderKey(k), v) {
				return
			}
		}
	}
}

// IsReserved reports whether a header name belongs to Hookgate or NATS, so
// that a value a sender supplies under it must never be stored as is.
func IsReserved(name string) bool {
	return hasPrefixFold(name, HeaderPrefix) || hasPrefixFold(name, "Nats-")
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
