package forwarder

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/hookgate/hookgate/event"
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
	reason     string // why a dead letter died
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

// attemptOnce POSTs the event to the destination once.
func (f *Forwarder) attemptOnce(d *delivery) result {
	ctx, cancel := context.WithTimeout(f.hardCtx, f.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.cfg.URL, bytes.NewReader(d.ev.Body))
	if err != nil {
		// The URL was validated; this is out of our hands.
		return result{outcome: retryable, err: err.Error()}
	}
	f.setHeaders(req.Header, d)

	if f.slowAfter > 0 {
		// A slow attempt becomes visible as "delivering"; a fast one costs
		// no extra state write.
		done := make(chan struct{})
		t := time.AfterFunc(f.slowAfter, func() {
			f.writeState(d, StatusDelivering, result{}, time.Time{})
			close(done)
		})
		defer func() {
			if !t.Stop() {
				<-done // the final state must come after "delivering"
			}
		}()
	}
	start := time.Now()
	resp, err := f.client.Do(req)
	if err != nil {
		res := result{outcome: retryable, latency: time.Since(start), err: describeErr(err, f.cfg.Timeout)}
		return res
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainLimit))
	resp.Body.Close()
	res := result{
		outcome: classify(resp.StatusCode, f.cfg.On4xx),
		status:  resp.StatusCode,
		latency: time.Since(start),
	}
	if res.outcome != delivered {
		res.err = "HTTP " + strconv.Itoa(resp.StatusCode) + " " + http.StatusText(resp.StatusCode)
		res.retryAfter = parseRetryAfter(resp.Header, time.Now())
	}
	return res
}

func describeErr(err error, timeout time.Duration) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout after " + timeout.String()
	}
	if errors.Is(err, context.Canceled) {
		return "aborted: forwarder stopping"
	}
	return err.Error()
}

// dropHeaders are never forwarded from the stored event: hop-by-hop and
// framing headers belong to the provider's connection, not ours.
var dropHeaders = []string{"Host", "Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive",
	"Proxy-Connection", "Te", "Trailer", "Upgrade", "Expect", "Accept-Encoding"}

// setHeaders fills an outgoing request's headers: the provider's kept
// headers, the original Content-Type, then Hookgate's Webhook-* headers,
// which win over any provider header of the same name.
func (f *Forwarder) setHeaders(h http.Header, d *delivery) {
	if len(d.ev.Header) > 0 {
		for k, v := range d.ev.Header {
			h[k] = v
		}
		for _, k := range dropHeaders {
			delete(h, k)
		}
	}
	// Hookgate's values share one array; each header gets a full slice of
	// its own element, so an append to one never writes into another. The
	// names are canonical already.
	vals := make([]string, 0, 8)
	set := func(k, v string) {
		vals = append(vals, v)
		h[k] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	if d.ev.ContentType != "" {
		set("Content-Type", d.ev.ContentType)
	} else {
		delete(h, "Content-Type")
	}
	set(event.HeaderWebhookID, d.ev.ID)
	set(event.HeaderIdempotencyKey, d.ev.ID)
	set(event.HeaderWebhookAttempt, strconv.Itoa(d.attempt))
	if d.ev.Source != "" {
		set(event.HeaderWebhookSource, d.ev.Source)
	}
	set("User-Agent", "Hookgate")
	if f.signKey != nil {
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		set(event.HeaderWebhookTimestamp, ts)
		set(event.HeaderWebhookSignature, signStandard(f.signKey, d.ev.ID, ts, d.ev.Body))
	}
}

// signStandard returns the Standard Webhooks v1 signature of a delivery:
// "v1," and the base64 HMAC-SHA256 of "<id>.<timestamp>.<body>".
func signStandard(key []byte, id, ts string, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(ts))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}
