package caddymodule

import (
	"bytes"
	"errors"
	"net/http"
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
