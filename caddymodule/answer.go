package caddymodule

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/hookgate/hookgate/verify"
)

// accept writes the success answer, built in the request's scratch.
func (h *Handler) accept(q *request, id string, ack *jetstream.PubAck) error {
	q.sc.answer = appendAcceptBody(q.sc.answer[:0], id, ack.Duplicate)
	q.w.Header().Set("Content-Type", "application/json")
	q.w.WriteHeader(h.status)
	_, err := q.w.Write(q.sc.answer)
	return err
}

// acceptBody is the JSON body of a 2xx: the event id and whether the
// store already held it.
type acceptBody struct {
	ID        string `json:"id"`
	Duplicate bool   `json:"duplicate"`
}

// appendAcceptBody appends the JSON of acceptBody{id, duplicate} to dst,
// byte for byte what json.Marshal writes. Event ids are printable ASCII
// (appendEventID), written as they are unless a byte needs an escape; then
// json.Marshal writes it.
func appendAcceptBody(dst []byte, id string, duplicate bool) []byte {
	if !plainJSON(id) {
		b, _ := json.Marshal(acceptBody{ID: id, Duplicate: duplicate}) // a string and a bool cannot fail
		return append(dst, b...)
	}
	dst = append(append(append(dst, `{"id":"`...), id...), `","duplicate":`...)
	return append(strconv.AppendBool(dst, duplicate), '}')
}

// plainJSON reports whether json.Marshal writes s between quotes as it is:
// printable ASCII without '"', '\\' and the HTML characters it escapes.
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c >= 0x7f, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}

// reject answers with a problem and logs the real reason for the operator.
// The provider sees only the problem's fixed text.
func (h *Handler) reject(q *request, p *problem, reason error) error {
	source, version := q.src.nameOrEmpty(), q.version
	if source == "" {
		version = "" // whatever the path said: labels stay bounded
	}
	countRequest(q, source, version, p.slug)
	if ce := h.logger.Check(p.level, "webhook rejected"); ce != nil {
		fields := []zap.Field{
			zap.Int("status", p.status),
			zap.String("problem", p.slug),
			zap.String("remote_ip", clientIP(q.r)),
		}
		if source != "" {
			fields = append(fields, zap.String("source", source), zap.String("version", version))
		}
		if reason != nil {
			fields = append(fields, zap.String("reason", reason.Error()))
		}
		ce.Write(fields...)
	}
	hdr := q.w.Header()
	hdr.Set("Content-Type", "application/problem+json")
	if p.status == http.StatusServiceUnavailable {
		hdr.Set("Retry-After", h.retryAfter)
	}
	q.w.WriteHeader(p.status)
	_, err := q.w.Write(p.body)
	return err
}

// rejectUnread rejects a request whose body was not read. After the
// handler, net/http reads up to 256 KiB of an unread body before it
// answers, so the connection can carry the next request; behind Caddy
// (whose idle-timeout reader replaces the body net/http checks) it does so
// even after "Expect: 100-continue", inviting the body it was to spare.
// So unless the body is small and already on its way, the answer closes
// the connection instead.
func (h *Handler) rejectUnread(q *request, p *problem, reason error) error {
	r := q.r
	if r.ProtoMajor == 1 && r.ContentLength != 0 &&
		(r.ContentLength < 0 || r.ContentLength > maxDrain || r.Header.Get("Expect") != "") {
		q.w.Header().Set("Connection", "close")
	}
	return h.reject(q, p, reason)
}

// maxDrain is the largest unread body left for net/http to drain so the
// connection stays open: a typical delivery, whose bytes are already
// sent.
const maxDrain = 64 << 10

// clientIP is the client address for the log: Caddy's resolved client IP
// (honouring trusted_proxies), else the peer address.
func clientIP(r *http.Request) string {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok {
		return ip
	}
	return r.RemoteAddr
}

// logHandshake records that a provider's endpoint check was answered.
func (h *Handler) logHandshake(q *request) {
	countRequest(q, q.src.name, q.version, outcomeHandshake)
	if ce := h.logger.Check(zapcore.InfoLevel, "webhook URL verification answered"); ce != nil {
		ce.Write(zap.String("source", q.src.name), zap.String("version", q.version))
	}
}

// problem is one kind of rejection, rendered once as an RFC 9457 body.
type problem struct {
	status int
	slug   string
	level  zapcore.Level
	body   []byte
}

func newProblem(status int, slug, detail string, level zapcore.Level) *problem {
	return newProblemWith(status, slug, detail, level, nil)
}

// newProblemWith adds extension members (RFC 9457 section 3.2) to the body.
func newProblemWith(status int, slug, detail string, level zapcore.Level, ext map[string]any) *problem {
	m := map[string]any{
		"type":   "urn:hookgate:problem:" + slug,
		"title":  http.StatusText(status),
		"status": status,
		"detail": detail,
	}
	for k, v := range ext {
		m[k] = v
	}
	b, _ := json.Marshal(m)
	return &problem{status: status, slug: slug, level: level, body: b}
}

const rateLimitedDetail = "Too many requests; retry after the time in Retry-After."

var (
	problemNotFound  = newProblem(http.StatusNotFound, "unknown-endpoint", "No webhook endpoint at this path.", zapcore.DebugLevel)
	problemMethod    = newProblem(http.StatusMethodNotAllowed, "method-not-allowed", "Webhooks are delivered with POST.", zapcore.DebugLevel)
	problemTooLarge  = newProblem(http.StatusRequestEntityTooLarge, "body-too-large", "The request body is larger than this endpoint accepts.", zapcore.InfoLevel)
	problemEncoding  = newProblem(http.StatusUnsupportedMediaType, "unsupported-encoding", "Content-Encoding is not accepted by this endpoint.", zapcore.InfoLevel)
	problemBadBody   = newProblem(http.StatusBadRequest, "unreadable-body", "The request body could not be read.", zapcore.InfoLevel)
	problemSignature = newProblem(http.StatusUnauthorized, "invalid-signature", "The request could not be authenticated.", zapcore.InfoLevel)
	problemForbidden = newProblem(http.StatusForbidden, "client-not-allowed", "This endpoint does not accept requests from your address.", zapcore.InfoLevel)
	problemHeaders   = newProblem(http.StatusRequestHeaderFieldsTooLarge, "headers-too-large", "The request has more header fields, or larger ones, than this endpoint accepts.", zapcore.InfoLevel)
	problemTimeout   = newProblem(http.StatusRequestTimeout, "body-timeout", "The request body did not arrive in time.", zapcore.InfoLevel)
	// A client over its own budget is logged at debug level (a flood
	// would fill the log); a source over its shared budget at info, as a
	// provider is being turned away.
	problemRateIP     = newProblem(http.StatusTooManyRequests, "rate-limited", rateLimitedDetail, zapcore.DebugLevel)
	problemRateSource = newProblem(http.StatusTooManyRequests, "rate-limited", rateLimitedDetail, zapcore.InfoLevel)
	problemNotReady   = newProblem(http.StatusServiceUnavailable, "not-ready", "The event store is starting; retry later.", zapcore.WarnLevel)
	problemStore      = newProblem(http.StatusServiceUnavailable, "store-unavailable", "The event could not be stored; retry later.", zapcore.ErrorLevel)
	// problemStoreQuiet is problemStore for a refusal logged elsewhere.
	problemStoreQuiet = newProblem(http.StatusServiceUnavailable, "store-unavailable", "The event could not be stored; retry later.", zapcore.DebugLevel)
)

// Reasons logged for rejections that floods produce, made once so that
// turning a flood away allocates nothing for the log.
var (
	errOverPerIP  = errors.New("client over its rate_per_ip; Retry-After says when its next token is due")
	errOverRate   = errors.New("source over its rate; Retry-After says when its next token is due")
	errNotAllowed = errors.New("client address not in the source's allow_ips")
	// errGetNoHandshake is a verifier's slip: it passed a GET without
	// saying how to answer it, and a GET is never an event.
	errGetNoHandshake = errors.New("the verifier passed a GET that is not a handshake")
)

// answerHandshake answers a provider's setup handshake as its verifier
// said (a zero status is 200); nothing is stored.
func (h *Handler) answerHandshake(q *request, hs *verify.Handshake) error {
	h.logHandshake(q)
	hdr := q.w.Header()
	for k, v := range hs.Header {
		hdr[k] = v
	}
	status := hs.Status
	if status == 0 {
		status = http.StatusOK
	}
	q.w.WriteHeader(status)
	if len(hs.Body) == 0 {
		return nil
	}
	_, err := q.w.Write(hs.Body)
	return err
}
