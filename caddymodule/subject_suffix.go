package caddymodule

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/hookgate/hookgate/event"
	"github.com/hookgate/hookgate/forwarder"
)

// A source's subject_suffix tags each event at ingest with subject tokens
// computed from it, after its usual subject:
//
//	webhooks.<version>.<source>.<type tokens>.<suffix tokens>
//
// so that an internal NATS subscriber selects events by content without
// parsing bodies ("webhooks.v1.stripe.*.*.live" or
// "webhooks.v1.stripe.invoice.>"). The expression is CEL over the
// variables filters see (forwarder.CompileEventExpr); it yields a string
// (one token), a list of strings (one token each, at most
// maxSuffixTokens), or null (no suffix). Each token is sanitised as type
// tokens are: a byte outside [A-Za-z0-9_-] ('.', '*', '>', spaces,
// non-ASCII) becomes '_', an empty token is "_" (so positions hold), and a
// token is cut at maxSuffixToken bytes.
//
// An evaluation that fails (a missing field, the cost limit, too many
// tokens) never costs the event: it is stored under its usual subject
// with HeaderSubjectSuffixError saying why, the provider gets its usual
// 2xx, and the operator a warning at most once a minute per source.

// HeaderSubjectSuffixError is set on an event whose source's
// subject_suffix failed for it: the event is stored under its subject
// without the suffix, and the header holds the error (at most
// maxSuffixErrorLen bytes of printable ASCII).
const HeaderSubjectSuffixError = "Hookgate-Subject-Suffix-Error"

const (
	// maxSuffixTokens bounds the tokens a subject_suffix adds.
	maxSuffixTokens = 4
	// maxSuffixToken bounds one suffix token, in bytes.
	maxSuffixToken = 64
	// maxSuffixErrorLen bounds the HeaderSubjectSuffixError value.
	maxSuffixErrorLen = 200
	// suffixLogEvery is the least time between two warnings of one source.
	suffixLogEvery = time.Minute
)

// subjectSuffix is a source's compiled subject_suffix.
type subjectSuffix struct {
	expr *forwarder.EventExpr
	// lastLog is when a failure was last logged (Unix ns); failed counts
	// failures since.
	lastLog atomic.Int64
	failed  atomic.Int64
}

// newSubjectSuffix compiles a source's subject_suffix; nil when there is
// none. A malformed expression is an error with its position
// ("subject_suffix:1:12: ...").
func newSubjectSuffix(src string) (*subjectSuffix, error) {
	if src == "" {
		return nil, nil
	}
	e, err := forwarder.CompileEventExpr("subject_suffix", src)
	if err != nil {
		return nil, fmt.Errorf("%w; see 'subject_suffix' in the README", err)
	}
	return &subjectSuffix{expr: e}, nil
}

// checkSubjectSuffix compiles a source's subject_suffix at parse time, so
// that 'caddy validate' shows a malformed one with its position.
func checkSubjectSuffix(source, src string) error {
	if _, err := newSubjectSuffix(src); err != nil {
		return fmt.Errorf("source %q: %w", source, err)
	}
	return nil
}

// subject returns base with the suffix tokens ev yields.
func (s *subjectSuffix) subject(base string, ev *event.Event) (string, error) {
	tokens, err := s.expr.StringsAtMost(ev, maxSuffixTokens)
	if errors.Is(err, forwarder.ErrTooManyStrings) {
		return base, fmt.Errorf("subject_suffix: yields more than %d tokens; at most %d are allowed", maxSuffixTokens, maxSuffixTokens)
	}
	if err != nil {
		return base, err
	}
	var b strings.Builder
	b.Grow(len(base) + len(tokens)*16)
	b.WriteString(base)
	for _, t := range tokens {
		b.WriteByte('.')
		writeSuffixToken(&b, t)
	}
	return b.String(), nil
}

// writeSuffixToken writes t as one subject token.
func writeSuffixToken(b *strings.Builder, t string) {
	if t == "" {
		b.WriteByte('_')
		return
	}
	if len(t) > maxSuffixToken {
		t = t[:maxSuffixToken]
	}
	for i := 0; i < len(t); i++ {
		switch c := t[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
			b.WriteByte(c)
		default:
			b.WriteByte('_')
		}
	}
}

// suffixSubject is message's hook: it appends the source's subject_suffix
// to msg's subject, or, when it fails, marks msg with the error and warns
// (rate limited). msg is the stored message being built, id its event id.
func (h *Handler) suffixSubject(src *source, msg *nats.Msg, id, version string, receivedAt time.Time) {
	ev := &event.Event{ID: id, Source: src.name, Version: version, Type: msg.Header.Get(event.HeaderType), ReceivedAt: receivedAt,
		ContentType: msg.Header.Get(event.HeaderContentType), Header: http.Header(msg.Header), Body: msg.Data}
	subject, err := src.suffix.subject(msg.Subject, ev)
	if err == nil {
		msg.Subject = subject
		return
	}
	msg.Header[HeaderSubjectSuffixError] = []string{headerText(err.Error(), maxSuffixErrorLen)}
	failed := src.suffix.failed.Add(1)
	now := time.Now().UnixNano()
	last := src.suffix.lastLog.Load()
	if now-last < int64(suffixLogEvery) || !src.suffix.lastLog.CompareAndSwap(last, now) {
		return
	}
	src.suffix.failed.Add(-failed)
	h.logger.Warn("subject_suffix failed: events stored under their subject without the suffix, marked "+HeaderSubjectSuffixError+"; fix the expression (use has() or the ?. optional syntax for fields some events lack)",
		zap.String("source", src.name), zap.String("event_id", id), zap.Int64("failures", failed), zap.Error(err))
}

// headerText makes s a header value: printable ASCII, at most n bytes.
func headerText(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return strings.Map(func(r rune) rune {
		if r < ' ' || r > '~' {
			return ' '
		}
		return r
	}, s)
}
