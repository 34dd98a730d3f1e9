package caddymodule

import (
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

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
// A source's subject_header lines add headers the same way: each is a
// header name (not Hookgate's or NATS's own) and an expression yielding a
// string, a list of at most maxSubjectHeaderValues strings (one value
// each) or null (no header); values
// are cut at maxSubjectHeaderValue bytes of printable ASCII, and replace a
// provider header of the same name.
//
// An evaluation that fails (a missing field, the cost limit, too many
// tokens) never costs the event: it is stored under its usual subject
// with HeaderSubjectSuffixError saying why, the provider gets its usual
// 2xx, and the operator a warning at most once a minute per source.

// HeaderSubjectSuffixError is set on an event whose source's
// subject_suffix or a subject_header failed for it: the event is stored
// under its subject without the suffix (or without that header), and the
// header holds the errors (at most maxSuffixErrorLen bytes of printable
// ASCII).
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
	// maxSubjectHeaderValue bounds one subject_header value, in bytes.
	maxSubjectHeaderValue = 256
	// maxSubjectHeaderValues bounds the values of one subject_header: a
	// list from a provider's body could otherwise put thousands in the
	// stored event and in every destination's request.
	maxSubjectHeaderValues = 16
)

// subjectSuffix is a source's compiled subject_suffix and subject_header
// lines; nil when it has none.
type subjectSuffix struct {
	// expr is the subject_suffix; nil when only headers are set.
	expr *forwarder.EventExpr
	// headers are the subject_header lines, sorted by name.
	headers []subjectHeader
	// logEvery lets a failure be logged once per suffixLogEvery; failed
	// counts the failures since the last one logged.
	logEvery rate.Sometimes
	failed   atomic.Int64
}

// subjectHeader is one compiled subject_header line.
type subjectHeader struct {
	name string
	expr *forwarder.EventExpr
}

// newSubjectSuffix compiles a source's subject_suffix and subject_header
// lines (header name → expression); nil when there are none. A malformed
// expression is an error with its position ("subject_suffix:1:12: ...",
// "subject_header X-Mode:1:3: ...").
func newSubjectSuffix(src string, headers map[string]string) (*subjectSuffix, error) {
	if src == "" && len(headers) == 0 {
		return nil, nil
	}
	s := &subjectSuffix{logEvery: rate.Sometimes{Interval: suffixLogEvery}}
	if src != "" {
		e, err := forwarder.CompileEventExpr("subject_suffix", src)
		if err != nil {
			return nil, fmt.Errorf("%w; see 'subject_suffix' in the README", err)
		}
		s.expr = e
	}
	for name, expr := range headers {
		h, err := newSubjectHeader(name, expr)
		if err != nil {
			return nil, err
		}
		s.headers = append(s.headers, h)
	}
	slices.SortFunc(s.headers, func(a, b subjectHeader) int { return strings.Compare(a.name, b.name) })
	return s, nil
}

// newSubjectHeader compiles one subject_header line.
func newSubjectHeader(name, expr string) (subjectHeader, error) {
	valid := name != ""
	for i := 0; i < len(name); i++ {
		c := name[i]
		valid = valid && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-')
	}
	if !valid || event.IsReserved(name) {
		return subjectHeader{}, fmt.Errorf("subject_header %q: want a header name of letters, digits and '-', not starting with Hookgate- or Nats-", name)
	}
	canon := textproto.CanonicalMIMEHeaderKey(name)
	e, err := forwarder.CompileEventExpr("subject_header "+canon, expr)
	if err != nil {
		return subjectHeader{}, err
	}
	return subjectHeader{name: canon, expr: e}, nil
}

// checkSubjectSuffix compiles a source's subject_suffix and
// subject_header lines at parse time, so that 'caddy validate' shows a
// malformed one with its position.
func checkSubjectSuffix(s *Source) error {
	if _, err := newSubjectSuffix(s.SubjectSuffix, s.SubjectHeaders); err != nil {
		return fmt.Errorf("source %q: %w", s.Name, err)
	}
	return nil
}

// apply sets msg's subject suffix and headers from ev; the errors of the
// expressions that failed are joined, and what they would have set is
// left out.
func (s *subjectSuffix) apply(msg *nats.Msg, ev *event.Event) error {
	var errs []error
	if s.expr != nil {
		subject, err := s.subject(msg.Subject, ev)
		if err != nil {
			errs = append(errs, err)
		}
		msg.Subject = subject
	}
	// Every line sees the provider's headers: the values are set only
	// once all are computed, so a line never reads another's result.
	set := make([][]string, len(s.headers))
	for i, h := range s.headers {
		vals, err := h.expr.StringsAtMost(ev, maxSubjectHeaderValues)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for j, v := range vals {
			vals[j] = headerText(v, maxSubjectHeaderValue)
		}
		set[i] = vals
	}
	for i, vals := range set {
		if len(vals) > 0 {
			msg.Header[s.headers[i].name] = vals
		}
	}
	return errors.Join(errs...)
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
		b.WriteByte(event.TokenByte(t[i]))
	}
}

// suffixSubject is message's hook: it appends the source's subject_suffix
// to msg's subject, or, when it fails, marks msg with the error and warns
// (rate limited). msg is the stored message being built, id its event id.
func (h *Handler) suffixSubject(src *source, msg *nats.Msg, id, version string, receivedAt time.Time) {
	ev := &event.Event{ID: id, Source: src.name, Version: version, Type: msg.Header.Get(event.HeaderType), ReceivedAt: receivedAt,
		ContentType: msg.Header.Get(event.HeaderContentType), Header: http.Header(msg.Header), Body: msg.Data}
	err := src.suffix.apply(msg, ev)
	if err == nil {
		return
	}
	msg.Header[HeaderSubjectSuffixError] = []string{headerText(strings.ReplaceAll(err.Error(), "\n", "; "), maxSuffixErrorLen)}
	src.suffix.failed.Add(1)
	if turn(&src.suffix.logEvery) {
		h.logger.Warn("subject_suffix or subject_header failed: events stored without what it yields, marked "+HeaderSubjectSuffixError+"; fix the expression (use has() or the ?. optional syntax for fields some events lack)",
			zap.String("source", src.name), zap.String("event_id", id), zap.Int64("failures", src.suffix.failed.Swap(0)), zap.Error(err))
	}
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
