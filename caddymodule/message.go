package caddymodule

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/textproto"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/hookgate/hookgate/event"
	"github.com/hookgate/hookgate/verify"
)

// maxDeliveryID bounds a provider delivery id used as is in an event id;
// longer ones are hashed.
const maxDeliveryID = 128

// message builds the stored event in m (m.msg) with the source's
// subject_suffix and subject_header applied, and returns its id.
// A decompressed gzip body is stored without its Content-Encoding.
func (h *Handler) message(m *eventMsg, r *http.Request, version string, src *source, res verify.Result, body []byte, receivedAt time.Time, gz bool) string {
	id := m.fill(r, version, src, res, body, receivedAt, gz)
	if src.suffix != nil {
		h.suffixSubject(src, &m.msg, id, version, receivedAt)
	}
	return id
}

// eventMsg is a stored event's message and the storage it is built in,
// reused across requests (see scratch): the header map, the backing of
// Hookgate's one-value headers, and the bytes of the id and the received
// time, which become one string.
type eventMsg struct {
	msg  nats.Msg
	vals [ownHeaders]string
	text []byte
}

// ownHeaders is how many headers fill adds at most.
const ownHeaders = 9

// fill builds the stored event in m and returns its id.
// A decompressed gzip body is stored without its Content-Encoding.
func (m *eventMsg) fill(r *http.Request, version string, src *source, res verify.Result, body []byte, receivedAt time.Time, gz bool) string {
	deliveryID := res.ID
	if deliveryID == "" && src.idHeader != "" {
		deliveryID = r.Header.Get(src.idHeader)
	}
	text := m.text[:0]
	switch {
	case deliveryID != "":
		text = appendEventID(text, src.name, deliveryID)
	case src.dedupBody:
		sum := sha256.Sum256(body)
		text = hex.AppendEncode(append(append(text, src.name...), ":body:"...), sum[:16])
	default:
		text = append(append(append(text, src.name...), ':'), nuid.Next()...)
	}
	idLen := len(text)
	text = receivedAt.UTC().AppendFormat(text, time.RFC3339Nano)
	m.text = text
	// One string for both: one allocation.
	both := string(text)
	id, received := both[:idLen], both[idLen:]
	typ := res.Type
	if typ == "" && src.typeHeader != "" {
		typ = r.Header.Get(src.typeHeader)
	}
	hdr := m.msg.Header
	if hdr == nil {
		hdr = make(nats.Header, len(r.Header)+ownHeaders)
		m.msg.Header = hdr
	}
	for k, v := range r.Header {
		if keepHeader(k) && !(gz && k == "Content-Encoding") {
			hdr[k] = v
		}
	}
	dropConnectionFields(hdr, r.Header["Connection"])
	n := 0
	set := func(name, value string) {
		m.vals[n] = value
		hdr[name] = m.vals[n : n+1 : n+1]
		n++
	}
	set(event.HeaderMsgID, id)
	set(event.HeaderID, id)
	set(event.HeaderSource, src.name)
	set(event.HeaderVersion, version)
	if typ != "" {
		set(event.HeaderType, typ)
	}
	if deliveryID != "" {
		set(event.HeaderDeliveryID, deliveryID)
	}
	set(event.HeaderReceivedAt, received)
	if ct := r.Header.Get("Content-Type"); ct != "" {
		set(event.HeaderContentType, ct)
	}
	set(event.HeaderVerified, src.scheme)
	m.msg.Subject = event.Subject(version, src.name, typ)
	m.msg.Data = body
	return id
}

// reset clears m for the next request, dropping a header map that grew
// past maxHeaders.
func (m *eventMsg) reset(maxHeaders int) {
	hdr := m.msg.Header
	if len(hdr) > maxHeaders {
		hdr = nil
	}
	clear(hdr)
	m.msg = nats.Msg{Header: hdr}
	m.vals = [ownHeaders]string{}
	m.text = m.text[:0]
}

// appendEventID appends "<source>:<delivery id>" to dst, hashing ids that
// are too long or not printable ASCII so the id stays a safe header value
// and dedup key.
func appendEventID(dst []byte, source, deliveryID string) []byte {
	dst = append(append(dst, source...), ':')
	ok := len(deliveryID) <= maxDeliveryID
	for i := 0; ok && i < len(deliveryID); i++ {
		ok = deliveryID[i] > ' ' && deliveryID[i] < 0x7f
	}
	if ok {
		return append(dst, deliveryID...)
	}
	sum := sha256.Sum256([]byte(deliveryID))
	return hex.AppendEncode(append(dst, "sha256:"...), sum[:16])
}

// dropConnectionFields deletes from hdr the fields the request's
// Connection header names: RFC 9110 section 7.6.1 makes them hop-by-hop,
// options of the provider's connection ("Connection: keep-alive, X-Hop")
// that neither the store nor a destination may receive. Run before
// Hookgate's own headers are set, so a listed Hookgate-* name is still set.
func dropConnectionFields(hdr nats.Header, conn []string) {
	for _, v := range conn {
		for v != "" {
			var name string
			name, v, _ = strings.Cut(v, ",")
			name = strings.TrimSpace(name)
			// The common options, never stored: no canonical key to make.
			if name != "" && !strings.EqualFold(name, "keep-alive") && !strings.EqualFold(name, "close") {
				delete(hdr, textproto.CanonicalMIMEHeaderKey(name))
			}
		}
	}
}

// keepHeader reports whether a request header (canonical name) is stored:
// not a credential, not hop-by-hop or framing that no longer applies to the
// stored body, not a name Hookgate or NATS reserve.
func keepHeader(name string) bool {
	switch name {
	case "Authorization", "Proxy-Authorization", "Cookie":
		return false
	}
	return !event.IsHopByHop(name) && !event.IsReserved(name)
}
