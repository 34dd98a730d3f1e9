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
// the error is an *http.MaxBytesError.
func readBody(buf *bytes.Buffer, w http.ResponseWriter, r *http.Request, limit int64) error {
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength))
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit))
	if err != nil && !errors.Is(err, io.EOF) {
		return err
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
