package forwarder

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/hookgate/hookgate/event"
	"github.com/hookgate/hookgate/verify"
)

// outcome is how one attempt went, by the classification table:
//
//	2xx                                     delivered
//	408, 425, 429, 5xx, 3xx, network error  retryable
//	410                                     gone (the destination is paused)
//	other 4xx                               rejected, or retryable with On4xx = Retry
type outcome int

const (
	delivered outcome = iota
	retryable
	rejected
	gone
)

// result is what one attempt produced.
type result struct {
	outcome    outcome
	status     int // 0 when no response came
	err        string
	latency    time.Duration
	retryAfter time.Duration
	reason     string  // why a dead letter died
	answer     *answer // the destination's headers and body start (attempts.go)
	dlqID      string  // the dead letter's Nats-Msg-Id when not dlqMsgID's (replay.go)
}

// classify maps an HTTP status to an outcome.
func classify(status int, on4xx On4xx) outcome {
	switch {
	case status >= 200 && status < 300:
		return delivered
	case status == http.StatusGone:
		return gone
	case status == http.StatusRequestTimeout, status == http.StatusTooEarly, status == http.StatusTooManyRequests:
		return retryable
	case status >= 400 && status < 500:
		if on4xx == Retry {
			return retryable
		}
		return rejected
	default:
		// 5xx, and 1xx/3xx which an internal service should never answer:
		// retry rather than lose the event to a misconfiguration.
		return retryable
	}
}

// drainLimit bounds how much of a response body is read so that the
// connection can be reused; a destination sending more costs a new
// connection, not memory.
const drainLimit = 64 << 10

// largeBody is the body size above which an attempt goes through
// net/http instead of fasthttp. A destination may answer before it has read
// the body (a 413 from a body limit, say) and close the connection: a body
// this small fits in the socket buffers, so the answer is still read, but a
// larger one fails to write, and only net/http then reads the answer that
// arrived meanwhile. Webhook bodies are rarely this large.
const largeBody = 64 << 10

// attemptOnce POSTs the event to the destination once.
func (r *run) attemptOnce(d *delivery) result {
	if r.hardCtx.Err() != nil {
		return result{outcome: retryable, err: errAborted.Error()}
	}
	if r.slow != nil {
		// A slow attempt becomes visible as "delivering"; a fast one costs
		// no extra state write.
		r.slow.begin(d)
		defer r.slow.end(d) // the final state must come after "delivering"
	}
	if len(d.out.body) > largeBody {
		return r.postLarge(d)
	}
	return r.post(d)
}

// post makes the attempt with fasthttp.
func (r *run) post(d *delivery) result {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetURI(r.uri)
	req.Header.SetMethod(http.MethodPost)
	req.SetBodyRaw(d.out.body)
	if d.out.contentType == "" {
		req.Header.SetNoDefaultContentType(true)
	}
	r.setHeaders(&req.Header, d)

	start := time.Now()
	err := r.client.DoTimeout(req, resp, r.cfg.Timeout)
	latency := time.Since(start)
	// A body over drainLimit fails only once the status and headers are
	// read: the answer counts, and the connection is closed, not drained.
	if err != nil && !errors.Is(err, fasthttp.ErrBodyTooLarge) {
		return result{outcome: retryable, latency: latency, err: r.describeErr(err)}
	}
	res := r.answered(resp.StatusCode(), string(resp.Header.Peek("Retry-After")), latency)
	res.answer = fastAnswer(resp)
	return res
}

// postLarge makes the attempt with net/http (see largeBody).
func (r *run) postLarge(d *delivery) result {
	ctx, cancel := context.WithTimeout(r.hardCtx, r.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.cfg.URL, bytes.NewReader(d.out.body))
	if err != nil {
		// The URL was validated; this is out of our hands.
		return result{outcome: retryable, err: err.Error()}
	}
	r.setHeaders(req.Header, d)
	start := time.Now()
	resp, err := r.largeClient.Do(req)
	if err != nil {
		return result{outcome: retryable, latency: time.Since(start), err: r.describeErr(err)}
	}
	ans := httpAnswer(resp)
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainLimit))
	resp.Body.Close()
	res := r.answered(resp.StatusCode, resp.Header.Get("Retry-After"), time.Since(start))
	res.answer = ans
	return res
}

// answered classifies the destination's answer.
func (f *Forwarder) answered(status int, retryAfter string, latency time.Duration) result {
	res := result{outcome: classify(status, f.cfg.On4xx), status: status, latency: latency}
	if res.outcome != delivered {
		res.err = "HTTP " + strconv.Itoa(status) + " " + http.StatusText(status)
		res.retryAfter = parseRetryAfter(retryAfter, time.Now())
	}
	return res
}

// describeErr words a failed attempt for the delivery state and the log.
func (r *run) describeErr(err error) string {
	if r.hardCtx.Err() != nil || errors.Is(err, context.Canceled) {
		return errAborted.Error()
	}
	// net/http's errors quote the method and URL; the state names the
	// destination already.
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, fasthttp.ErrConnectionClosed) || errors.Is(err, io.EOF) {
		// fasthttp's own wording blames a missing "Connection: close";
		// behind TLS 1.3 this is also how a refused client certificate
		// looks.
		return "the destination closed the connection before answering"
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, fasthttp.ErrTimeout) ||
		errors.Is(err, fasthttp.ErrDialTimeout) || (errors.As(err, &ne) && ne.Timeout()) {
		return "timeout after " + r.cfg.Timeout.String()
	}
	return err.Error()
}

// headerSetter is what fasthttp's request headers and net/http's have in
// common.
type headerSetter interface {
	Add(key, value string)
	Set(key, value string)
	Del(key string)
}

// setHeaders fills an outgoing request's headers: the provider's kept
// headers, the original Content-Type (or the transformation's), the
// destination's configured headers, transform_headers' changes, then
// Hookgate's Webhook-* headers, which win over any provider header of the
// same name. What is signed is the body sent.
func (f *Forwarder) setHeaders(h headerSetter, d *delivery) {
	if d.ev.Header == nil && d.msg != nil {
		// Decoded without the map (run.open): read the stored message.
		for k, vs := range event.ProviderHeaders(d.msg.Headers()) {
			addProviderHeader(h, k, vs)
		}
	}
	for k, vs := range d.ev.Header {
		addProviderHeader(h, k, vs)
	}
	if d.out.contentType != "" {
		h.Set("Content-Type", d.out.contentType)
	}
	for k, vs := range f.cfg.Headers {
		for i, v := range vs {
			if i == 0 {
				h.Set(k, v) // replaces a provider header of the name
			} else {
				h.Add(k, v)
			}
		}
	}
	for _, e := range d.out.edits {
		if e.remove {
			h.Del(e.name)
		} else {
			h.Set(e.name, e.value)
		}
	}
	if d.traceparent != "" {
		h.Set("Traceparent", d.traceparent)
	}
	h.Set(event.HeaderWebhookID, d.ev.ID)
	h.Set(event.HeaderIdempotencyKey, d.ev.ID)
	h.Set(event.HeaderWebhookAttempt, strconv.Itoa(d.attempt))
	if d.ev.Source != "" {
		h.Set(event.HeaderWebhookSource, d.ev.Source)
	}
	if d.replay {
		h.Set(HeaderWebhookReplay, "true")
	}
	h.Set("User-Agent", "Hookgate")
	if f.signer != nil {
		ts, sig := f.sign(d.ev.ID, d.out.body, time.Time{})
		h.Set(event.HeaderWebhookTimestamp, ts)
		h.Set(event.HeaderWebhookSignature, sig)
	}
}

// addProviderHeader adds one of the provider's headers, unless
// dropHeader drops it.
func addProviderHeader(h headerSetter, k string, vs []string) {
	if dropHeader(k) {
		return
	}
	for _, v := range vs {
		h.Add(k, v)
	}
}

// dropHeader reports the headers never forwarded from the stored event:
// hop-by-hop and framing headers belong to the provider's connection, not
// ours, and Webhook-Replay is Hookgate's to set (a provider's would make a
// fresh delivery look like a replay). Names are canonical.
func dropHeader(k string) bool {
	switch k {
	case "Host", "Accept-Encoding", "Content-Type", HeaderWebhookReplay:
		return true
	}
	return event.IsHopByHop(k)
}

// sign returns the Standard Webhooks timestamp and signature of a
// delivery, signed at now (time.Now() when zero) by verify's
// standard-webhooks signer, the same code that checks such signatures at
// ingest.
func (f *Forwarder) sign(id string, body []byte, now time.Time) (ts, sig string) {
	r := verify.Request{Header: http.Header{event.HeaderWebhookID: {id}}, Body: body, Now: now}
	// Sign fails only for a public key, which New refused.
	_ = f.signer.Sign(&r)
	return r.Header.Get(event.HeaderWebhookTimestamp), r.Header.Get(event.HeaderWebhookSignature)
}
