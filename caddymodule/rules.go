package caddymodule

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// The rules below are checked twice: by the Caddyfile parser, wrapped with
// the file and line (d.WrapErr), and by Provision, for configs written in
// JSON. One function per rule keeps the two in the same words.

// checkSourceName requires a source name that is a safe path segment.
func checkSourceName(name string) error {
	if !validSegment(name) {
		return fmt.Errorf("source name %q: want 1-%d characters of [a-z0-9_-]", name, maxSegment)
	}
	return nil
}

// checkVersion requires a version (of versions, retire or deprecate) that
// is a safe path segment; what names the setting.
func checkVersion(what, v string) error {
	if !validSegment(v) {
		return fmt.Errorf("%s %q: want 1-%d characters of [a-z0-9_-]", what, v, maxSegment)
	}
	return nil
}

// checkStatus requires a 2xx success status.
func checkStatus(code int) error {
	if code < 200 || code > 299 {
		return fmt.Errorf("status %q: want a 2xx code (providers treat anything else as failure)", strconv.Itoa(code))
	}
	return nil
}

// checkDedup requires a known dedup mode ("" is off).
func checkDedup(mode string) error {
	if mode != "" && mode != "body" {
		return fmt.Errorf("dedup %q: the only mode is 'body'", mode)
	}
	return nil
}

// checkEncoding requires an accepted Content-Encoding.
func checkEncoding(enc string) error {
	if enc != "gzip" {
		return fmt.Errorf("accept_encoding %q: the only encoding is gzip", enc)
	}
	return nil
}

// checkVerify requires a verify line: a source that accepts unsigned
// requests says so.
func checkVerify(name string, v *VerifyConfig) error {
	if v == nil || v.Scheme == "" {
		return fmt.Errorf("source %q has no verify line: add 'verify <scheme> <secret>...', or 'verify none' to accept unsigned requests", name)
	}
	return nil
}

// checkPrefix requires a prefix that is a path ("" is the default).
func checkPrefix(prefix string) error {
	if p := strings.TrimSuffix(prefix, "/"); p != "" && !strings.HasPrefix(p, "/") {
		return fmt.Errorf("prefix %q must start with /", prefix)
	}
	return nil
}

// checkHasSources requires at least one source.
func checkHasSources(n int) error {
	if n == 0 {
		return errors.New("no source: add at least one 'source <name> { verify ... }'")
	}
	return nil
}

// errSourceTwice is the error of a source name given twice.
func errSourceTwice(name string) error {
	return fmt.Errorf("source %q is defined twice", name)
}

// checkMaxRatio requires max_ratio (0 is the default) only with gzip.
func checkMaxRatio(maxRatio int, gzip bool) error {
	switch {
	case maxRatio < 0:
		return fmt.Errorf("max_ratio %d: must be positive", maxRatio)
	case maxRatio != 0 && !gzip:
		return fmt.Errorf("max_ratio %d: applies to gzip bodies only; add 'accept_encoding gzip'", maxRatio)
	}
	return nil
}
