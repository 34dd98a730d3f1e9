package caddymodule

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestContentEncoding: identity always, gzip only where accepted, anything
// else (or two encodings) refused.
func TestContentEncoding(t *testing.T) {
	plain, gzipped := &source{}, &source{gzip: true}
	for _, tc := range []struct {
		ce       []string
		src      *source
		gz, ok   bool
		describe string
	}{
		{nil, plain, false, true, "none"},
		{[]string{""}, plain, false, true, "empty"},
		{[]string{" Identity "}, plain, false, true, "identity"},
		{[]string{"gzip"}, plain, false, false, "gzip not accepted"},
		{[]string{"gzip"}, gzipped, true, true, "gzip"},
		{[]string{"X-GZIP"}, gzipped, true, true, "x-gzip"},
		{[]string{"br"}, gzipped, false, false, "br"},
		{[]string{"gzip", "gzip"}, gzipped, false, false, "two"},
	} {
		hdr := http.Header{}
		if tc.ce != nil {
			hdr["Content-Encoding"] = tc.ce
		}
		gz, ok := tc.src.contentEncoding(hdr)
		if gz != tc.gz || ok != tc.ok {
			t.Errorf("%s: contentEncoding = %v, %v; want %v, %v", tc.describe, gz, ok, tc.gz, tc.ok)
		}
	}
}

// TestGunzipCaps: a body within the caps comes out whole; past max_body or
// max_ratio it is errInflateLimit; a corrupt one is another error.
func TestGunzipCaps(t *testing.T) {
	small := gz([]byte(`{"a":1}`))
	bomb := gz(bytes.Repeat([]byte{'a'}, 64<<10))
	for _, tc := range []struct {
		name     string
		src      *source
		in       []byte
		want     string
		limitErr bool
		err      bool
	}{
		{"fits", &source{maxBody: 1 << 20, maxRatio: 100}, small, `{"a":1}`, false, false},
		{"over max_body", &source{maxBody: 1 << 10, maxRatio: 1000}, bomb, "", true, true},
		{"over max_ratio", &source{maxBody: 1 << 20, maxRatio: 2}, bomb, "", true, true},
		{"corrupt", &source{maxBody: 1 << 20, maxRatio: 100}, []byte("not gzip"), "", false, true},
	} {
		var out bytes.Buffer
		err := tc.src.gunzip(&out, tc.in)
		if (err != nil) != tc.err || errors.Is(err, errInflateLimit) != tc.limitErr {
			t.Errorf("%s: err %v", tc.name, err)
			continue
		}
		if !tc.err && out.String() != tc.want {
			t.Errorf("%s: got %q", tc.name, strings.TrimSpace(out.String()))
		}
	}
}

// TestReadBodyCaps: a body is read whole up to max_body, with or without
// a Content-Length; past it the error is an *http.MaxBytesError, also for
// a body longer than its declared length (a transport that does not end
// it there), and the pooled limit keeps no reference to the body.
func TestReadBodyCaps(t *testing.T) {
	const limit = 50
	for _, tc := range []struct {
		name     string
		declared int64 // -1: unknown (chunked)
		sent     int
		tooBig   bool
	}{
		{"declared, within", 40, 40, false},
		{"declared, at the limit", limit, limit, false},
		{"chunked, within", -1, 40, false},
		{"chunked, past the limit", -1, limit + 1, true},
		{"declared within, more sent", 10, limit + 20, true},
	} {
		body := strings.Repeat("x", tc.sent)
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		r.ContentLength = tc.declared
		var buf bytes.Buffer
		var lr io.LimitedReader
		err := readBody(&buf, &lr, httptest.NewRecorder(), r, limit)
		var mbe *http.MaxBytesError
		switch {
		case tc.tooBig && !errors.As(err, &mbe):
			t.Errorf("%s: %v, want an *http.MaxBytesError", tc.name, err)
		case !tc.tooBig && (err != nil || buf.String() != body):
			t.Errorf("%s: read %d bytes, %v; want the %d sent", tc.name, buf.Len(), err, tc.sent)
		}
		if lr.R != nil {
			t.Errorf("%s: the limit still holds the body", tc.name)
		}
	}
}
