package caddymodule

// The event log: what the admin API (admin_events.go), the CLI
// (command_events.go) and the dashboard read and do. Every function here
// takes the running App and returns the JSON shapes of the admin API, so
// that each front end is a thin layer over the same code. Errors are
// caddy.APIError values whose HTTPStatus and message a front end can show
// as they are (404 unknown id or destination, 400 bad filter, 409 a replay
// that cannot be, 503 store not running).
//
//	(a *App) listEvents(ctx, EventFilter) (*EventPage, error)         GET  /webhooks/events
//	(a *App) getEvent(ctx, id, withBody) (*EventDetail, error)        GET  /webhooks/events/{id}
//	(a *App) replayEvent(ctx, id, destination) (*ReplayQueued, error) POST /webhooks/events/{id}/replay
//	(a *App) startReplay(ctx, EventFilter) (*ReplayJob, error)        POST /webhooks/replay
//	(a *App) replayJob(jobID) (*ReplayJob, error)                     GET  /webhooks/replay/{job}
//	(a *App) listDLQ(ctx, EventFilter) (*DLQPage, error)              GET  /webhooks/dlq
//	(a *App) getDLQ(ctx, id, withBody) (*DeadLetterDetail, error)     GET  /webhooks/dlq/{id}
//	(a *App) redrive(ctx, id) (*Redrive, error)                       POST /webhooks/dlq/{id}/redrive
//	(a *App) redriveAll(ctx, EventFilter) (*ReplayJob, error)         POST /webhooks/dlq/redrive
//	(a *App) deleteDLQ(ctx, id) error                                 DELETE /webhooks/dlq/{id}
//	(a *App) status(ctx) (*GatewayStatus, error)                      GET  /webhooks/status
//
// filterFromQuery(url.Values) and filterFromBody(*http.Request) turn the
// API's parameters (since/until as RFC 3339 or "1h") into an EventFilter;
// runningApp() finds the App of the running config.
//
// Storage (see eventlog_store.go): events are read from the WEBHOOKS
// stream itself, newest first, by walking sequences backwards with direct
// get batches; source/version/type filters are subject filters the store
// applies; since/until are sequence ranges from the store's time index.
// Delivery status comes from WEBHOOKS_DELIVERIES (one record per event and
// destination, read for a whole page in one request), status=failed from
// WEBHOOKS_DLQ (the dead letters are the index of failures), the attempt
// history from WEBHOOKS_ATTEMPTS. Replays and redrives go through the
// durable work queue WEBHOOKS_REPLAY (eventlog_replay.go).

import (
	"cmp"
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookgate/hookgate/event"
	"github.com/hookgate/hookgate/forwarder"
)

// Page sizes of the event log.
const (
	defaultPageLimit = 50
	maxPageLimit     = 1000
	// scanBudget bounds how many events one page of a status filter that
	// has no index (pending, delivering, retrying, delivered) reads; a page
	// may then hold fewer events than asked, with a next_cursor to go on.
	scanBudget = 20_000
	// qScan bounds how many of the newest events a q lookup reads when the
	// delivery state does not know the id (no destination tried it yet).
	qScan = 10_000
)

// EventFilter selects events. Zero fields match everything.
type EventFilter struct {
	// Source, Version and Type match the event's path segments and the
	// provider's event type ("invoice.paid").
	Source  string `json:"source,omitempty"`
	Version string `json:"version,omitempty"`
	Type    string `json:"type,omitempty"`
	// Destination keeps events the destination matches; with Status, the
	// status is the one at this destination.
	Destination string `json:"destination,omitempty"`
	// Status is a delivery status: pending, delivering, retrying,
	// delivered, failed (at Destination, or at any destination).
	Status string `json:"status,omitempty"`
	// Since and Until bound when the event was stored: [Since, Until).
	Since time.Time `json:"since,omitzero"`
	Until time.Time `json:"until,omitzero"`
	// Q is an event id or the provider's delivery id.
	Q string `json:"q,omitempty"`
	// Limit is the page size (default 50, at most 1000); Cursor is a
	// next_cursor from the previous page.
	Limit  int    `json:"limit,omitempty"`
	Cursor string `json:"cursor,omitempty"`
}

// EventSummary is one entry of the event list.
type EventSummary struct {
	ID         string    `json:"id"`
	Source     string    `json:"source"`
	Version    string    `json:"version"`
	Type       string    `json:"type"`
	Subject    string    `json:"subject"`
	StreamSeq  uint64    `json:"stream_seq"`
	ReceivedAt time.Time `json:"received_at"`
	// Size is the body's size in bytes.
	Size int `json:"size"`
	// Status is the one-word delivery status at each destination the
	// event matches: pending, delivering, retrying, delivered, failed.
	Status map[string]forwarder.Status `json:"status"`
}

// EventPage is a page of the event list, newest first. NextCursor is ""
// on the last page; new events never shift a page (the cursor is a stream
// sequence), so following it gives no gaps and no repeats.
type EventPage struct {
	Events     []EventSummary `json:"events"`
	NextCursor string         `json:"next_cursor"`
}

// DeliveryView is an event's delivery at one destination, in the shape
// the seed promised: {"destination": "orders", "event": "order.created",
// "status": "retrying", "retry_attempts": 3, "next_retry_in": "8 seconds",
// "last_status_code": 503, "last_error": "...", "delivered_at": null}.
type DeliveryView struct {
	Destination    string           `json:"destination"`
	Event          string           `json:"event"`
	Status         forwarder.Status `json:"status"`
	RetryAttempts  int              `json:"retry_attempts"`
	NextRetryIn    *string          `json:"next_retry_in"`
	LastStatusCode *int             `json:"last_status_code"`
	LastError      *string          `json:"last_error"`
	DeliveredAt    *time.Time       `json:"delivered_at"`
}

// EventDetail is one event: its summary, its headers as stored (credential
// values redacted), its delivery at each destination, every attempt, and
// with the body asked for, the body (UTF-8 as is, else base64 with
// body_encoding "base64").
type EventDetail struct {
	EventSummary
	DeliveryID   string              `json:"delivery_id,omitempty"`
	Headers      map[string][]string `json:"headers"`
	Deliveries   []DeliveryView      `json:"deliveries"`
	Attempts     []forwarder.Attempt `json:"attempts"`
	Body         *string             `json:"body,omitempty"`
	BodyEncoding string              `json:"body_encoding,omitempty"`
	// Transformed shows, for each destination with a transformation, what
	// was sent beside what the running config yields now (see
	// eventlog_transformed.go).
	Transformed []TransformedView `json:"transformed,omitempty"`
	raw         *nats.Msg         // the stored message
}

// errNotFound builds a 404 answer.
func errNotFound(format string, args ...any) error {
	return apiError(http.StatusNotFound, format, args...)
}

// eventLogJS returns the running engine or a 503 that says what to do.
func (a *App) eventLogEngine() (*engine, error) {
	e := a.runningEngine()
	if e == nil {
		return nil, apiError(http.StatusServiceUnavailable, "the event store is not running yet; retry in a moment")
	}
	return e, nil
}

// subjectFilter turns source, version and type into a WEBHOOKS subject
// filter: "webhooks.<version|*>.<source|*>.>", and with a type its parent,
// "webhooks.<version|*>.<source|*>.invoice.>" for invoice.paid. A
// source's subject_suffix adds tokens after the type
// (webhooks.v1.stripe.invoice.paid.live), so the type's own subject would
// miss every tagged event, and "<type>.>" every untagged one; the parent
// holds both, and matchesType keeps the type's events only.
func (f *EventFilter) subjectFilter() string {
	if f.Source == "" && f.Version == "" && f.Type == "" {
		return ""
	}
	prefix := event.SubjectRoot + "." + orDefault(f.Version, "*") + "." + orDefault(f.Source, "*") + "."
	tt := typeTokens(f.Type)
	if i := strings.LastIndexByte(tt, '.'); i >= 0 {
		return prefix + tt[:i] + ".>"
	}
	return prefix + ">"
}

// matchesType reports whether an event or dead letter of type typ (its
// Hookgate-Type) has f's type, compared as the subject tokens both become.
func (f *EventFilter) matchesType(typ string) bool {
	return f.Type == "" || typeTokens(typ) == typeTokens(f.Type)
}

// typeTokens is the part of an event's subject that typ becomes
// ("invoice.paid"; "unknown" for none).
func typeTokens(typ string) string {
	return strings.TrimPrefix(event.Subject("v", "s", typ), event.SubjectRoot+".v.s.")
}

// destinations returns the running destinations an event subject matches,
// narrowed to f.Destination when set, sorted by name.
func (a *App) destinationsFor(subject, only string) []string {
	var out []string
	for _, fw := range a.runningForwarders() {
		cfg := fw.Config()
		if (only == "" || only == fw.Name()) && cfg.Matches(subject) {
			out = append(out, fw.Name())
		}
	}
	slices.Sort(out)
	return out
}

// engineFor checks f (see checkFilter) and returns the running store's
// engine (see eventLogEngine): what an endpoint taking a filter does first.
func (a *App) engineFor(f *EventFilter) (*engine, error) {
	if err := a.checkFilter(f); err != nil {
		return nil, err
	}
	return a.eventLogEngine()
}

// checkFilter validates a filter against the running config.
func (a *App) checkFilter(f *EventFilter) error {
	if f.Limit <= 0 {
		f.Limit = defaultPageLimit
	}
	f.Limit = min(f.Limit, maxPageLimit)
	if f.Destination != "" && a.forwarder(f.Destination) == nil {
		return errNotFound("no destination %q in the running config; see GET /webhooks/destinations", f.Destination)
	}
	switch forwarder.Status(f.Status) {
	case "", forwarder.StatusPending, forwarder.StatusDelivering, forwarder.StatusRetrying,
		forwarder.StatusDelivered, forwarder.StatusFailed, forwarder.StatusFiltered:
	default:
		return apiError(http.StatusBadRequest, "status %q: use pending, delivering, retrying, delivered, failed or filtered", f.Status)
	}
	for _, tok := range []string{f.Source, f.Version} {
		if strings.ContainsAny(tok, ".*> \t") {
			return apiError(http.StatusBadRequest, "source and version are single names such as stripe or v1, not %q", tok)
		}
	}
	return nil
}

// listEvents returns a page of events matching f, newest first.
func (a *App) listEvents(ctx context.Context, f EventFilter) (*EventPage, error) {
	e, err := a.engineFor(&f)
	if err != nil {
		return nil, err
	}
	if f.Q != "" {
		return a.findEvents(ctx, e, f)
	}
	if f.Status == string(forwarder.StatusFailed) {
		return a.listFailed(ctx, e, f)
	}
	r, _, err := streamRange(ctx, e.js, event.StreamName, f.Since, f.Until)
	if err != nil {
		return nil, apiError(http.StatusServiceUnavailable, "read the event log: %v", err)
	}
	if f.Cursor != "" {
		c, err := strconv.ParseUint(f.Cursor, 10, 64)
		if err != nil {
			return nil, apiError(http.StatusBadRequest, "cursor %q: give the next_cursor of the previous page", f.Cursor)
		}
		r.hi = min(r.hi, c)
	}
	filter, exact := a.listFilter(f)
	// Without an index for what is asked, a page reads at most scanBudget
	// events, in larger windows.
	budgeted := f.Status != "" || !exact
	want := f.Limit
	if budgeted {
		want = max(want, 500)
	}
	page := &EventPage{Events: []EventSummary{}}
	scanned := 0
	var readErr error
	err = walkBack(ctx, e.nc, event.StreamName, filter, r, want, func(window []*nats.Msg) bool {
		sums := a.summaries(window, f.Destination)
		if readErr = a.fillStatus(ctx, e, sums); readErr != nil {
			return false
		}
		for _, s := range sums {
			scanned++
			if matchesStatus(s, f) {
				page.Events = append(page.Events, s)
				if len(page.Events) == f.Limit {
					page.NextCursor = strconv.FormatUint(s.StreamSeq, 10)
					return false
				}
			}
			if budgeted && scanned >= scanBudget {
				page.NextCursor = strconv.FormatUint(s.StreamSeq, 10)
				return false
			}
		}
		return true
	})
	if err == nil {
		err = readErr
	}
	if err != nil {
		return nil, apiError(http.StatusServiceUnavailable, "read the event log: %v", err)
	}
	if page.NextCursor != "" && !a.hasMore(ctx, e, filter, r.lo, page.NextCursor) {
		page.NextCursor = ""
	}
	return page, nil
}

// listFilter returns the subject filter the store applies for f, and
// whether it selects exactly the events f asks for: a destination with
// one subject filter and no source, version or type narrows the walk
// itself. A type is never exact: its filter is the type's parent
// subject (subjectFilter), so sibling types are read and dropped.
func (a *App) listFilter(f EventFilter) (filter string, exact bool) {
	filter = f.subjectFilter()
	if f.Destination == "" {
		return filter, f.Type == ""
	}
	subs := a.forwarder(f.Destination).Config().Subjects
	if filter == "" && len(subs) == 1 {
		return subs[0], true
	}
	return filter, len(subs) == 0 && f.Type == ""
}

// hasMore reports whether any event of the subject filter lies below the
// cursor, so the last page does not point at an empty one.
func (a *App) hasMore(ctx context.Context, e *engine, filter string, lo uint64, cursor string) bool {
	c, _ := strconv.ParseUint(cursor, 10, 64)
	if c <= lo {
		return false
	}
	msgs, err := readForward(ctx, e.nc, event.StreamName, filter, seqRange{lo, c}, 1, 1)
	return err != nil || len(msgs) > 0
}

// matchesStatus reports whether s has f's type and f's status (at f's
// destination, or at any destination).
func matchesStatus(s EventSummary, f EventFilter) bool {
	if !f.matchesType(s.Type) {
		return false
	}
	if f.Destination != "" {
		if _, ok := s.Status[f.Destination]; !ok {
			return false
		}
	}
	if f.Status == "" {
		return true
	}
	for dest, st := range s.Status {
		if (f.Destination == "" || dest == f.Destination) && string(st) == f.Status {
			return true
		}
	}
	return false
}

// summaries decodes stored events (newest first) into list entries for
// the destinations they match. Messages that are not events are skipped.
func (a *App) summaries(msgs []*nats.Msg, only string) []EventSummary {
	out := make([]EventSummary, 0, len(msgs))
	for _, m := range msgs {
		s, ok := a.summary(m, only)
		if ok {
			out = append(out, s)
		}
	}
	return out
}

func (a *App) summary(m *nats.Msg, only string) (EventSummary, bool) {
	h := m.Header
	id := h.Get(event.HeaderID)
	if id == "" {
		return EventSummary{}, false
	}
	subject := subjectOf(m)
	s := EventSummary{
		ID:        id,
		Source:    h.Get(event.HeaderSource),
		Version:   h.Get(event.HeaderVersion),
		Type:      h.Get(event.HeaderType),
		Subject:   subject,
		StreamSeq: seqOf(m),
		Size:      len(m.Data),
		Status:    map[string]forwarder.Status{},
	}
	if t, err := time.Parse(time.RFC3339Nano, h.Get(event.HeaderReceivedAt)); err == nil {
		s.ReceivedAt = t
	} else {
		s.ReceivedAt = storedAt(m)
	}
	for _, d := range a.destinationsFor(subject, only) {
		s.Status[d] = forwarder.StatusPending
	}
	return s, true
}

// fillStatus sets each summary's status per destination from the
// delivery state, reading the states of many events in one request.
func (a *App) fillStatus(ctx context.Context, e *engine, sums []EventSummary) error {
	var subjects []string
	index := map[string]int{}
	for i, s := range sums {
		for d := range s.Status {
			subj := forwarder.StateSubjectPrefix(s.ID) + d
			subjects = append(subjects, subj)
			index[subj] = i
		}
	}
	for len(subjects) > 0 {
		n := min(len(subjects), 1000)
		msgs, err := forwarder.DirectBatch(ctx, e.nc, forwarder.StateStream, forwarder.DirectRequest{MultiLast: subjects[:n], Batch: n})
		if err != nil {
			return err
		}
		for _, m := range msgs {
			i, ok := index[subjectOf(m)]
			if !ok || len(m.Data) == 0 {
				continue
			}
			d, err := forwarder.DecodeDelivery(m.Data, time.Now())
			if err != nil || d.Sequence != sums[i].StreamSeq {
				continue // a state of an older event with the same id
			}
			sums[i].Status[d.Destination] = d.Status
		}
		subjects = subjects[n:]
	}
	return nil
}

// getEvent returns one event by id. withBody adds the body.
func (a *App) getEvent(ctx context.Context, id string, withBody bool) (*EventDetail, error) {
	e, err := a.eventLogEngine()
	if err != nil {
		return nil, err
	}
	m, err := a.lookupEvent(ctx, e, id)
	if err != nil {
		return nil, err
	}
	s, _ := a.summary(m, "")
	d := &EventDetail{EventSummary: s, DeliveryID: m.Header.Get(event.HeaderDeliveryID), raw: m}
	d.Headers = storedHeaders(m.Header)
	states, err := forwarder.ReadDeliveries(ctx, e.js, id)
	if err != nil {
		return nil, apiError(http.StatusServiceUnavailable, "read delivery states: %v", err)
	}
	d.Deliveries = deliveryViews(s, states)
	for _, st := range states {
		if st.Sequence == s.StreamSeq {
			d.Status[st.Destination] = st.Status
		}
	}
	if d.Attempts, err = forwarder.ReadAttempts(ctx, e.js, id); err != nil {
		return nil, apiError(http.StatusServiceUnavailable, "%v", err)
	}
	d.Attempts = withDeliveredAttempts(d.Attempts, states, s.StreamSeq)
	d.Transformed = a.transformedViews(m, s, states, withBody)
	if withBody {
		body, enc := forwarder.EncodeBody(m.Data)
		d.Body, d.BodyEncoding = &body, enc
	}
	return d, nil
}

// withDeliveredAttempts adds the successful attempts the history leaves
// to the delivery state (forwarder.AttemptFromState), ordered by time.
func withDeliveredAttempts(as []forwarder.Attempt, states []forwarder.Delivery, seq uint64) []forwarder.Attempt {
	for _, st := range states {
		a, ok := forwarder.AttemptFromState(st)
		if !ok || st.Sequence != seq || slices.ContainsFunc(as, func(x forwarder.Attempt) bool {
			return x.Destination == a.Destination && x.Attempt == a.Attempt
		}) {
			continue
		}
		as = append(as, a)
	}
	slices.SortStableFunc(as, func(x, y forwarder.Attempt) int { return x.Time.Compare(y.Time) })
	return as
}

// storedHeaders returns a stored event's headers, credential values
// redacted, without the headers a direct get adds.
func storedHeaders(h nats.Header) map[string][]string {
	out := forwarder.RedactHeader(h)
	for _, k := range []string{jetstream.StreamHeader, jetstream.SequenceHeader, jetstream.SubjectHeader, "Nats-Time-Stamp", "Nats-Num-Pending", "Nats-Last-Sequence"} {
		delete(out, k)
	}
	return out
}

// deliveryViews renders the states of an event: one per destination it
// matches ("pending" where no attempt finished) plus states left by
// destinations no longer configured.
func deliveryViews(s EventSummary, states []forwarder.Delivery) []DeliveryView {
	byDest := map[string]forwarder.Delivery{}
	for _, st := range states {
		if st.Sequence == s.StreamSeq {
			byDest[st.Destination] = st
		}
	}
	for dest := range s.Status {
		if _, ok := byDest[dest]; !ok {
			byDest[dest] = forwarder.Delivery{Destination: dest, Event: s.Type, Status: forwarder.StatusPending}
		}
	}
	out := make([]DeliveryView, 0, len(byDest))
	for _, st := range byDest {
		v := DeliveryView{Destination: st.Destination, Event: orDefault(st.Event, s.Type), Status: st.Status,
			RetryAttempts: st.RetryAttempts, DeliveredAt: st.DeliveredAt}
		if st.NextRetryIn != "" {
			v.NextRetryIn = &st.NextRetryIn
		}
		if st.LastStatusCode != 0 {
			v.LastStatusCode = &st.LastStatusCode
		}
		if st.LastError != "" {
			v.LastError = &st.LastError
		}
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b DeliveryView) int { return strings.Compare(a.Destination, b.Destination) })
	return out
}

// lookupEvent finds a stored event by its id or its provider delivery id.
func (a *App) lookupEvent(ctx context.Context, e *engine, q string) (*nats.Msg, error) {
	ms, err := a.findByID(ctx, e, q, EventFilter{}, 1)
	if err != nil {
		return nil, err
	}
	if len(ms) == 0 {
		return nil, errNotFound("no event %q in the log: check the id (GET /webhooks/events?q=...), or it expired with the retention", q)
	}
	return ms[0], nil
}

// findEvents answers a q filter: the events whose id or provider delivery
// id is q.
func (a *App) findEvents(ctx context.Context, e *engine, f EventFilter) (*EventPage, error) {
	msgs, err := a.findByID(ctx, e, f.Q, f, f.Limit)
	if err != nil {
		return nil, err
	}
	sums := a.summaries(msgs, f.Destination)
	if err := a.fillStatus(ctx, e, sums); err != nil {
		return nil, apiError(http.StatusServiceUnavailable, "read delivery states: %v", err)
	}
	page := &EventPage{Events: []EventSummary{}}
	for _, s := range sums {
		if matchesStatus(s, f) && (f.Since.IsZero() || !s.ReceivedAt.Before(f.Since)) && (f.Until.IsZero() || s.ReceivedAt.Before(f.Until)) {
			page.Events = append(page.Events, s)
		}
	}
	return page, nil
}

// findByID returns the stored events (newest first) whose id or provider
// delivery id is q: first through the delivery state, which is keyed by
// event id (q, or "<source>:q" for a delivery id), then among the newest
// qScan events for events no destination has tried yet.
func (a *App) findByID(ctx context.Context, e *engine, q string, f EventFilter, limit int) ([]*nats.Msg, error) {
	ids := []string{q}
	if !strings.Contains(q, ":") {
		for _, src := range a.knownSources(ctx, e, f.Source) {
			ids = append(ids, src+":"+q)
		}
	}
	var subjects []string
	for _, id := range ids {
		subjects = append(subjects, forwarder.StateSubjectPrefix(id)+"*")
	}
	states, err := forwarder.DirectBatch(ctx, e.nc, forwarder.StateStream, forwarder.DirectRequest{MultiLast: subjects, Batch: 1000})
	if err != nil {
		return nil, apiError(http.StatusServiceUnavailable, "read delivery states: %v", err)
	}
	seen := map[uint64]bool{}
	var out []*nats.Msg
	for _, m := range states {
		d, err := forwarder.DecodeDelivery(m.Data, time.Now())
		if err != nil || seen[d.Sequence] {
			continue
		}
		seen[d.Sequence] = true
		ev, err := forwarder.DirectBatch(ctx, e.nc, event.StreamName, forwarder.DirectRequest{Seq: d.Sequence})
		if err == nil && len(ev) == 1 && seqOf(ev[0]) == d.Sequence && matchesID(ev[0], q) {
			out = append(out, ev[0])
		}
	}
	if len(out) > 0 {
		slices.SortFunc(out, func(x, y *nats.Msg) int { return cmp.Compare(seqOf(y), seqOf(x)) })
		return out[:min(len(out), limit)], nil
	}
	r, _, err := streamRange(ctx, e.js, event.StreamName, time.Time{}, time.Time{})
	if err != nil {
		return nil, apiError(http.StatusServiceUnavailable, "read the event log: %v", err)
	}
	if r.hi-r.lo > qScan {
		r.lo = r.hi - qScan
	}
	err = walkBack(ctx, e.nc, event.StreamName, f.subjectFilter(), r, 1000, func(window []*nats.Msg) bool {
		for _, m := range window {
			if matchesID(m, q) {
				out = append(out, m)
			}
		}
		return len(out) < limit
	})
	if err != nil {
		return nil, apiError(http.StatusServiceUnavailable, "read the event log: %v", err)
	}
	return out[:min(len(out), limit)], nil
}

// matchesID reports whether a stored event's id or delivery id is q.
func matchesID(m *nats.Msg, q string) bool {
	return m.Header.Get(event.HeaderID) == q || m.Header.Get(event.HeaderDeliveryID) == q
}

// knownSources returns the sources with events in the store (from the
// stream's per-subject counts), or just only when given.
func (a *App) knownSources(ctx context.Context, e *engine, only string) []string {
	if only != "" {
		return []string{only}
	}
	s, err := e.js.Stream(ctx, event.StreamName)
	if err != nil {
		return nil
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(event.SubjectRoot+".>"))
	if err != nil {
		return nil
	}
	set := map[string]bool{}
	for subj := range info.State.Subjects {
		if parts := strings.SplitN(subj, ".", 4); len(parts) == 4 {
			set[parts[2]] = true
		}
	}
	out := make([]string, 0, len(set))
	for src := range set {
		out = append(out, src)
	}
	slices.Sort(out)
	return out
}
