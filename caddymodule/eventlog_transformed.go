package caddymodule

import (
	"github.com/nats-io/nats.go"

	"github.com/hookgate/hookgate/event"
	"github.com/hookgate/hookgate/forwarder"
)

// The event log shows a transformed event twice: the stored body (the
// event's own "body") and, per destination with a transformation, what
// was sent. Bodies sent are not stored (a transformed copy per event and
// destination would double the store); each attempt records the sent
// body's size and SHA-256 instead (forwarder.Sent, in the delivery state
// and the attempt history). The view recomputes the body with the
// running config's transformation and compares digests: same_as_sent
// true proves the body shown is byte for byte the one sent; false means
// the config changed since (the recorded digest is then all that is known
// of what was sent) or nothing was sent yet.

// TransformedView is an event as one destination's transformation makes
// it, beside what was sent there.
type TransformedView struct {
	Destination string `json:"destination"`
	// Sent identifies the body of the last attempt there (size, SHA-256);
	// null when none was made.
	Sent *forwarder.Sent `json:"sent"`
	// Current identifies the body the running config yields now; null
	// when the transformation fails (see Error).
	Current *forwarder.Sent `json:"current"`
	// SameAsSent is true when Current is the body that was sent.
	SameAsSent bool `json:"same_as_sent"`
	// ContentType is the Content-Type sent with the current body.
	ContentType string `json:"content_type,omitempty"`
	// Headers are transform_headers' changes: a value sets, "" removes;
	// credential values are redacted.
	Headers map[string]string `json:"headers,omitempty"`
	// Body is the current body when the body is asked for: text when it
	// is UTF-8, else base64 with BodyEncoding "base64".
	Body         *string `json:"body,omitempty"`
	BodyEncoding string  `json:"body_encoding,omitempty"`
	// Error is the transformation's error now: a delivery would
	// dead-letter the event with it.
	Error string `json:"error,omitempty"`
}

// transformedViews renders the event m at each running destination that
// transforms and takes it (its filters pass), with the states read for
// it; withBody adds the bodies.
func (a *App) transformedViews(m *nats.Msg, s EventSummary, states []forwarder.Delivery, withBody bool) []TransformedView {
	var ev *event.Event
	var out []TransformedView
	for _, fw := range a.runningForwarders() {
		if cfg := fw.Config(); !fw.Transforms() || !cfg.Matches(s.Subject) {
			continue
		}
		if ev == nil {
			var err error
			if ev, err = event.Decode(&nats.Msg{Subject: s.Subject, Header: m.Header, Data: m.Data}); err != nil {
				return nil // not an event; the detail says what it can without
			}
		}
		if !fw.Accepts(ev) {
			continue
		}
		out = append(out, transformedView(fw, ev, s.StreamSeq, states, withBody))
	}
	return out
}

// transformedView is one destination's TransformedView.
func transformedView(fw *forwarder.Forwarder, ev *event.Event, seq uint64, states []forwarder.Delivery, withBody bool) TransformedView {
	v := TransformedView{Destination: fw.Name()}
	for _, st := range states {
		if st.Destination == v.Destination && st.Sequence == seq {
			v.Sent = st.Sent
		}
	}
	p, err := fw.Preview(ev)
	if err != nil {
		v.Error = err.Error()
		return v
	}
	v.Current, v.ContentType, v.Headers = &p.Sent, p.ContentType, p.Headers
	v.SameAsSent = v.Sent != nil && *v.Sent == p.Sent
	if withBody {
		body, enc := forwarder.EncodeBody(p.Body)
		v.Body, v.BodyEncoding = &body, enc
	}
	return v
}
