package caddymodule

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/hookgate/hookgate/event"
	"github.com/hookgate/hookgate/verify"
)

// maxDeliveryID bounds a provider delivery id used as is in an event id;
// longer ones are hashed.
const maxDeliveryID = 128

// message builds the stored event and returns it with its id.
// A decompressed gzip body is stored without its Content-Encoding.
func (h *Handler) message(r *http.Request, version string, src *source, res verify.Result, body []byte, receivedAt time.Time, gz bool) (*nats.Msg, string) {
	deliveryID := res.ID
	if deliveryID == "" && src.idHeader != "" {
		deliveryID = r.Header.Get(src.idHeader)
	}
	var id string
	switch {
	case deliveryID != "":
		id = eventID(src.name, deliveryID)
	case src.dedupBody:
		sum := sha256.Sum256(body)
		id = src.name + ":body:" + hex.EncodeToString(sum[:16])
	default:
		id = src.name + ":" + nuid.Next()
	}
	typ := res.Type
	if typ == "" && src.typeHeader != "" {
		typ = r.Header.Get(src.typeHeader)
	}
	hdr := make(nats.Header, len(r.Header)+8)
	for k, v := range r.Header {
		if keepHeader(k) && !(gz && k == "Content-Encoding") {
			hdr[k] = v
		}
	}
	hdr[event.HeaderMsgID] = []string{id}
	hdr[event.HeaderID] = []string{id}
	hdr[event.HeaderSource] = []string{src.name}
	hdr[event.HeaderVersion] = []string{version}
	if typ != "" {
		hdr[event.HeaderType] = []string{typ}
	}
	if deliveryID != "" {
		hdr[event.HeaderDeliveryID] = []string{deliveryID}
	}
	hdr[event.HeaderReceivedAt] = []string{receivedAt.UTC().Format(time.RFC3339Nano)}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		hdr[event.HeaderContentType] = []string{ct}
	}
	hdr[event.HeaderVerified] = []string{src.scheme}
	msg := &nats.Msg{Subject: event.Subject(version, src.name, typ), Header: hdr, Data: body}
	if src.suffix != nil {
		h.suffixSubject(src, msg, id, version, typ, receivedAt)
	}
	return msg, id
}

// eventID makes "<source>:<delivery id>", hashing ids that are too long or
// not printable ASCII so the id stays a safe header value and dedup key.
func eventID(source, deliveryID string) string {
	ok := len(deliveryID) <= maxDeliveryID
	for i := 0; ok && i < len(deliveryID); i++ {
		ok = deliveryID[i] > ' ' && deliveryID[i] < 0x7f
	}
	if ok {
		return source + ":" + deliveryID
	}
	sum := sha256.Sum256([]byte(deliveryID))
	return source + ":sha256:" + hex.EncodeToString(sum[:16])
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
