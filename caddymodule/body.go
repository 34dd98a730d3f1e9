package caddymodule

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// errInflateLimit marks a gzip body that decompresses past a limit.
var errInflateLimit = errors.New("decompressed body over its limit")

// bodyPool recycles body buffers: the stored message is copied into the
// NATS connection's buffer before publish returns, so a buffer is free again
// once the handler answers.
var bodyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBody keeps rare huge bodies from pinning memory in the pool.
const maxPooledBody = 256 << 10

func putBody(b *bytes.Buffer) {
	if b == nil || b.Cap() > maxPooledBody {
		return
	}
	b.Reset()
	bodyPool.Put(b)
}

// readBody reads at most limit bytes of r's body into buf; past the limit
// the error is an *http.MaxBytesError. A body whose Content-Length is
// within the limit is read through lr, the caller's scratch, instead of
// an http.MaxBytesReader (an allocation a request): net/http ends such a
// body at its declared length, and lr caps it should a transport not.
func readBody(buf *bytes.Buffer, lr *io.LimitedReader, w http.ResponseWriter, r *http.Request, limit int64) error {
	var body io.Reader
	if n := r.ContentLength; n >= 0 && n <= limit {
		buf.Grow(int(n))
		*lr = io.LimitedReader{R: r.Body, N: limit + 1}
		body = lr
	} else {
		body = http.MaxBytesReader(w, r.Body, limit)
	}
	_, err := buf.ReadFrom(body)
	lr.R = nil // the body is the request's: keep no reference in the pool
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if int64(buf.Len()) > limit {
		return &http.MaxBytesError{Limit: limit}
	}
	return nil
}

// contentEncoding reports whether the body is gzip, and whether its
// Content-Encoding is one the source accepts at all.
func (s *source) contentEncoding(h http.Header) (gz, ok bool) {
	ce := h["Content-Encoding"]
	switch {
	case len(ce) == 0:
		return false, true
	case len(ce) > 1:
		return false, false
	}
	switch v := strings.TrimSpace(ce[0]); {
	case v == "" || strings.EqualFold(v, "identity"):
		return false, true
	case s.gzip && (strings.EqualFold(v, "gzip") || strings.EqualFold(v, "x-gzip")):
		return true, true
	}
	return false, false
}

// gzipReaders recycles gzip readers and their 32 KiB windows.
var gzipReaders sync.Pool

// gunzip decompresses a gzip body into dst: at most max_body bytes, and at
// most max_ratio times the compressed size, so a small bomb costs little.
func (s *source) gunzip(dst *bytes.Buffer, compressed []byte) error {
	limit := min(s.maxBody, int64(len(compressed))*s.maxRatio)
	in := bytes.NewReader(compressed)
	zr, _ := gzipReaders.Get().(*gzip.Reader)
	var err error
	if zr == nil {
		zr, err = gzip.NewReader(in)
	} else {
		err = zr.Reset(in)
	}
	if err != nil {
		return fmt.Errorf("gzip body of %d bytes: %w", len(compressed), err)
	}
	defer gzipReaders.Put(zr)
	n, err := dst.ReadFrom(io.LimitReader(zr, limit+1))
	if err != nil {
		return fmt.Errorf("gzip body of %d bytes: %w", len(compressed), err)
	}
	if n > limit {
		return fmt.Errorf("gzip body of %d bytes: %w: more than %d bytes (max_body %d, max_ratio %d)", len(compressed), errInflateLimit, limit, s.maxBody, s.maxRatio)
	}
	return nil
}

// Defaults of the bounds on what a request may send.
const (
	defaultBodyTimeout = 10 * time.Second
	// defaultMaxHeaders and defaultMaxHeaderBytes keep a stored event's
	// headers, with the few the forwarder adds, within what ordinary HTTP
	// servers accept (Node.js: 16 KiB in all; nginx: 8 KiB a line).
	defaultMaxHeaders     = 100
	defaultMaxHeaderBytes = 16 << 10
)

// checkBounds checks the handler's body and header bounds.
func (h *Handler) checkBounds() error {
	return checkBounds(h.BodyTimeout, h.MaxHeaders, h.MaxHeaderBytes)
}

// sourceBounds sets a source's body and header bounds, the handler's
// where the source sets none.
func (h *Handler) sourceBounds(s *Source, rs *source) error {
	if err := checkBounds(s.BodyTimeout, s.MaxHeaders, s.MaxHeaderBytes); err != nil {
		return err
	}
	rs.bodyTimeout = time.Duration(orDefault(s.BodyTimeout, orDefault(h.BodyTimeout, caddy.Duration(defaultBodyTimeout))))
	rs.maxHeaders = orDefault(s.MaxHeaders, orDefault(h.MaxHeaders, defaultMaxHeaders))
	rs.maxHeaderBytes = orDefault(s.MaxHeaderBytes, orDefault(h.MaxHeaderBytes, defaultMaxHeaderBytes))
	return nil
}

// checkBounds requires bounds that are positive or unset.
func checkBounds(bodyTimeout caddy.Duration, maxHeaders int, maxHeaderBytes int64) error {
	switch {
	case bodyTimeout < 0:
		return fmt.Errorf("body_timeout %s: must be positive", time.Duration(bodyTimeout))
	case maxHeaders < 0:
		return fmt.Errorf("max_headers %d: must be positive", maxHeaders)
	case maxHeaderBytes < 0:
		return fmt.Errorf("max_header_bytes %d: must be positive", maxHeaderBytes)
	}
	return nil
}

// checkHeaders bounds the request's header fields (Host aside, which
// net/http keeps apart): their number, and their size as sent.
func (s *source) checkHeaders(h http.Header) error {
	n, size := 0, int64(0)
	for k, vs := range h {
		n += len(vs)
		for _, v := range vs {
			size += int64(len(k) + len(v) + len(": \r\n"))
		}
	}
	switch {
	case n > s.maxHeaders:
		return fmt.Errorf("%d header fields, above max_headers %d", n, s.maxHeaders)
	case size > s.maxHeaderBytes:
		return fmt.Errorf("%d bytes of header fields, above max_header_bytes %d", size, s.maxHeaderBytes)
	}
	return nil
}

// deadlineSetter is a ResponseWriter that can set its connection's read
// deadline, as http.ResponseController finds it.
type deadlineSetter interface {
	SetReadDeadline(time.Time) error
}

// setReadDeadline sets the read deadline of w's connection, unwrapping w
// as http.ResponseController does, and reports whether it could. Unlike
// ResponseController it allocates nothing where it cannot (a test
// recorder).
func setReadDeadline(w http.ResponseWriter, t time.Time) bool {
	for {
		switch v := w.(type) {
		case deadlineSetter:
			return v.SetReadDeadline(t) == nil
		case interface{ Unwrap() http.ResponseWriter }:
			w = v.Unwrap()
		default:
			return false
		}
	}
}
