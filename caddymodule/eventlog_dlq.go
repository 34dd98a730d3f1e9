package caddymodule

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/hookgate/hookgate/event"
	"github.com/hookgate/hookgate/forwarder"
)

// DeadLetter is one record of WEBHOOKS_DLQ: an event a destination gave
// up on. ID is the record's sequence in WEBHOOKS_DLQ (the {id} of
// /webhooks/dlq/{id}); StreamSeq is the event's in WEBHOOKS.
type DeadLetter struct {
	ID             string    `json:"id"`
	EventID        string    `json:"event_id"`
	Destination    string    `json:"destination"`
	Source         string    `json:"source"`
	Version        string    `json:"version"`
	Type           string    `json:"type"`
	Subject        string    `json:"subject"`
	StreamSeq      uint64    `json:"stream_seq"`
	Reason         string    `json:"reason"`
	Attempts       int       `json:"attempts"`
	LastStatusCode int       `json:"last_status_code"`
	LastError      string    `json:"last_error,omitempty"`
	FailedAt       time.Time `json:"failed_at"`
	ReceivedAt     time.Time `json:"received_at"`
	Size           int       `json:"size"`
}

// DeadLetterDetail is a dead letter with its stored headers (credential
// values redacted) and, when asked for, its body.
type DeadLetterDetail struct {
	DeadLetter
	Headers      map[string][]string `json:"headers"`
	Body         *string             `json:"body,omitempty"`
	BodyEncoding string              `json:"body_encoding,omitempty"`
}

// DLQPage is a page of dead letters, newest first.
type DLQPage struct {
	DeadLetters []DeadLetter `json:"dead_letters"`
	NextCursor  string       `json:"next_cursor"`
}

// dlqSubjectFilter is f's filter on WEBHOOKS_DLQ subjects,
// "webhooks_dlq.<destination|*>.<version|*>.<source|*>.<type|>>".
func (f *EventFilter) dlqSubjectFilter() string {
	sub := f.subjectFilter()
	if f.Destination == "" && sub == "" {
		return ""
	}
	rest := ">"
	if sub != "" {
		rest = strings.TrimPrefix(sub, event.SubjectRoot+".")
	}
	return event.DLQSubjectRoot + "." + orDefault(f.Destination, "*") + "." + rest
}

// deadLetter decodes a WEBHOOKS_DLQ record read by direct get.
func deadLetter(m *nats.Msg) DeadLetter {
	h := m.Header
	d := DeadLetter{
		ID:          strconv.FormatUint(seqOf(m), 10),
		EventID:     h.Get(event.HeaderID),
		Destination: h.Get(event.HeaderDLQDestination),
		Source:      h.Get(event.HeaderSource),
		Version:     h.Get(event.HeaderVersion),
		Type:        h.Get(event.HeaderType),
		Reason:      h.Get(event.HeaderDLQReason),
		LastError:   h.Get(event.HeaderDLQLastError),
		Size:        len(m.Data),
	}
	d.Subject = event.SubjectRoot + strings.TrimPrefix(subjectOf(m), event.DLQSubjectRoot+"."+d.Destination)
	d.StreamSeq, _ = strconv.ParseUint(h.Get(event.HeaderDLQStreamSeq), 10, 64)
	d.Attempts, _ = strconv.Atoi(h.Get(event.HeaderDLQAttempts))
	d.LastStatusCode, _ = strconv.Atoi(h.Get(event.HeaderDLQLastStatus))
	d.FailedAt, _ = time.Parse(time.RFC3339Nano, h.Get(event.HeaderDLQFailedAt))
	d.ReceivedAt, _ = time.Parse(time.RFC3339Nano, h.Get(event.HeaderReceivedAt))
	return d
}

// dlqCursor parses a DLQ cursor ("" or a WEBHOOKS_DLQ sequence, optionally
// with the "dlq:" prefix status=failed pages use).
func dlqCursor(c string) (uint64, error) {
	if c == "" {
		return ^uint64(0), nil
	}
	n, err := strconv.ParseUint(strings.TrimPrefix(c, "dlq:"), 10, 64)
	if err != nil {
		return 0, apiError(http.StatusBadRequest, "cursor %q: give the next_cursor of the previous page", c)
	}
	return n, nil
}

// walkDLQ visits the dead letters matching f, newest first, while visit
// returns true; it returns the cursor to continue from ("" when done).
func (a *App) walkDLQ(ctx context.Context, e *engine, f EventFilter, visit func(m *nats.Msg) bool) (string, error) {
	hi, err := dlqCursor(f.Cursor)
	if err != nil {
		return "", err
	}
	r, _, err := streamRange(ctx, e.js, event.DLQStreamName, f.Since, time.Time{})
	if err != nil {
		return "", apiError(http.StatusServiceUnavailable, "read the dead letters: %v", err)
	}
	r.hi = min(r.hi, hi)
	var next string
	err = walkBack(ctx, e.nc, event.DLQStreamName, f.dlqSubjectFilter(), r, f.Limit, func(window []*nats.Msg) bool {
		for _, m := range window {
			if !f.matchesType(m.Header.Get(event.HeaderType)) {
				continue // the filter's parent subject holds sibling types
			}
			if f.Q != "" && !matchesID(m, f.Q) {
				continue // q: an event id or the provider's delivery id
			}
			if !f.Until.IsZero() && !deadLetter(m).ReceivedAt.Before(f.Until) {
				continue // until: the event's received time, as for events
			}
			if !visit(m) {
				next = strconv.FormatUint(seqOf(m), 10)
				return false
			}
		}
		return true
	})
	if err != nil {
		return "", apiError(http.StatusServiceUnavailable, "read the dead letters: %v", err)
	}
	return next, nil
}

// listDLQ returns a page of dead letters (destination, since, limit and
// cursor of f apply; source, version, type, until and q too), newest first.
func (a *App) listDLQ(ctx context.Context, f EventFilter) (*DLQPage, error) {
	e, err := a.engineFor(&f)
	if err != nil {
		return nil, err
	}
	page := &DLQPage{DeadLetters: []DeadLetter{}}
	page.NextCursor, err = a.walkDLQ(ctx, e, f, func(m *nats.Msg) bool {
		page.DeadLetters = append(page.DeadLetters, deadLetter(m))
		return len(page.DeadLetters) < f.Limit+1
	})
	if len(page.DeadLetters) > f.Limit {
		page.DeadLetters = page.DeadLetters[:f.Limit]
		page.NextCursor = page.DeadLetters[f.Limit-1].ID
	} else {
		page.NextCursor = ""
	}
	return page, err
}

// listFailed answers status=failed from the dead letters: every failed
// delivery left one, so failures are found without scanning the events.
// Pages follow the order of failure, newest first; within a page events
// are sorted newest first.
// Each event is listed once per page, at its newest dead letter, while its
// delivery state still says failed (a replay may have delivered it since).
func (a *App) listFailed(ctx context.Context, e *engine, f EventFilter) (*EventPage, error) {
	page := &EventPage{Events: []EventSummary{}}
	seen := map[uint64]bool{}
	var pending []EventSummary
	flush := func() bool {
		if err := a.fillStatus(ctx, e, pending); err != nil {
			return false
		}
		for _, s := range pending {
			if matchesStatus(s, f) && len(page.Events) < f.Limit { // until: walkDLQ
				page.Events = append(page.Events, s)
			}
		}
		pending = pending[:0]
		return len(page.Events) < f.Limit
	}
	next, err := a.walkDLQ(ctx, e, f, func(m *nats.Msg) bool {
		dl := deadLetter(m)
		if seen[dl.StreamSeq] {
			return true
		}
		seen[dl.StreamSeq] = true
		s := EventSummary{ID: dl.EventID, Source: dl.Source, Version: dl.Version, Type: dl.Type, Subject: dl.Subject,
			StreamSeq: dl.StreamSeq, ReceivedAt: dl.ReceivedAt, Size: dl.Size, Status: map[string]forwarder.Status{}}
		for _, d := range a.destinationsFor(s.Subject, f.Destination) {
			s.Status[d] = forwarder.StatusPending
		}
		pending = append(pending, s)
		if len(pending) < f.Limit-len(page.Events) {
			return true
		}
		return flush()
	})
	if err != nil {
		return nil, err
	}
	if len(pending) > 0 {
		flush()
	}
	if next != "" && len(page.Events) >= f.Limit {
		page.NextCursor = "dlq:" + next
	}
	// Within a page, newest event first, like the other lists.
	slices.SortFunc(page.Events, func(x, y EventSummary) int { return cmp.Compare(y.StreamSeq, x.StreamSeq) })
	return page, nil
}

// dlqRecord reads one dead letter by its id.
func (a *App) dlqRecord(ctx context.Context, e *engine, id string) (*nats.Msg, error) {
	seq, err := strconv.ParseUint(id, 10, 64)
	if err != nil || seq == 0 {
		return nil, apiError(http.StatusBadRequest, "dead letter id %q: use the id from GET /webhooks/dlq", id)
	}
	msgs, err := forwarder.DirectBatch(ctx, e.nc, event.DLQStreamName, forwarder.DirectRequest{Seq: seq})
	if err != nil {
		return nil, apiError(http.StatusServiceUnavailable, "read dead letter %s: %v", id, err)
	}
	if len(msgs) == 0 || seqOf(msgs[0]) != seq {
		return nil, errNotFound("no dead letter %s: it was redriven, deleted or expired; see GET /webhooks/dlq", id)
	}
	return msgs[0], nil
}

// openDLQ reads one dead letter of the running store by its id.
func (a *App) openDLQ(ctx context.Context, id string) (*engine, *nats.Msg, error) {
	e, err := a.eventLogEngine()
	if err != nil {
		return nil, nil, err
	}
	m, err := a.dlqRecord(ctx, e, id)
	return e, m, err
}

// deleteDLQMsg deletes the WEBHOOKS_DLQ record at seq.
func deleteDLQMsg(ctx context.Context, e *engine, seq uint64) error {
	s, err := e.js.Stream(ctx, event.DLQStreamName)
	if err != nil {
		return err
	}
	return s.DeleteMsg(ctx, seq)
}

// getDLQ returns one dead letter; withBody adds its body.
func (a *App) getDLQ(ctx context.Context, id string, withBody bool) (*DeadLetterDetail, error) {
	_, m, err := a.openDLQ(ctx, id)
	if err != nil {
		return nil, err
	}
	d := &DeadLetterDetail{DeadLetter: deadLetter(m), Headers: storedHeaders(m.Header)}
	if withBody {
		body, enc := forwarder.EncodeBody(m.Data)
		d.Body, d.BodyEncoding = &body, enc
	}
	return d, nil
}

// deleteDLQ removes one dead letter without delivering it.
func (a *App) deleteDLQ(ctx context.Context, id string) error {
	e, m, err := a.openDLQ(ctx, id)
	if err != nil {
		return err
	}
	err = deleteDLQMsg(ctx, e, seqOf(m))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return errNotFound("no dead letter %s: it was redriven or deleted meanwhile", id)
	}
	if err != nil {
		return apiError(http.StatusServiceUnavailable, "delete dead letter %s: %v", id, err)
	}
	return nil
}

// Redrive is the answer to a redrive of one dead letter.
type Redrive struct {
	ID          string `json:"id"`
	EventID     string `json:"event_id"`
	Destination string `json:"destination"`
	StreamSeq   uint64 `json:"stream_seq"`
	// Status is "queued": the redrive is in WEBHOOKS_REPLAY and the dead
	// letter is gone.
	Status string `json:"status"`
}

// redrive queues one dead letter for delivery to its destination again
// (same idempotency key) and only then removes the record.
func (a *App) redrive(ctx context.Context, id string) (*Redrive, error) {
	e, m, err := a.openDLQ(ctx, id)
	if err != nil {
		return nil, err
	}
	return a.redriveRecord(ctx, e, m, "")
}

// redriveRecord queues the dead letter m (for job, "" for none), then
// deletes it.
func (a *App) redriveRecord(ctx context.Context, e *engine, m *nats.Msg, job string) (*Redrive, error) {
	dl := deadLetter(m)
	if a.forwarder(dl.Destination) == nil {
		return nil, apiError(http.StatusConflict, "dead letter %s: destination %q is not in the running config; add it back or delete the dead letter", dl.ID, dl.Destination)
	}
	t := replayTask{Seq: dl.StreamSeq, EventID: dl.EventID, Job: job}
	if err := enqueueReplay(ctx, e, dl.Destination, t, "redrive:"+dl.ID); err != nil {
		return nil, apiError(http.StatusServiceUnavailable, "redrive %s: %v; the dead letter is kept, try again", dl.ID, err)
	}
	if err := deleteDLQMsg(ctx, e, seqOf(m)); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		// Queued but kept: a second redrive is deduplicated for a while.
		a.logger.Warn("redriven dead letter could not be removed", zap.String("id", dl.ID), zap.Error(err))
	}
	return &Redrive{ID: dl.ID, EventID: dl.EventID, Destination: dl.Destination, StreamSeq: dl.StreamSeq, Status: "queued"}, nil
}
