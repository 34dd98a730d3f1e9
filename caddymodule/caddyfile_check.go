package caddymodule

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/hookgate/hookgate/verify"
)

// The checks below run while the Caddyfile is parsed, on what Provision
// would otherwise be the first to check, so that the error names the file
// and line of the block that holds the mistake ("…, at Caddyfile:12")
// rather than a chain of module names. Provision still checks everything:
// JSON configs do not pass through here. What depends on the running
// process — the value of an {env.*} or {file.*} placeholder, a certificate
// file — is left to Provision, since `caddy reload` adapts the Caddyfile in
// the CLI's process, whose environment is not the server's.

// caddyfilePos is a place in a Caddyfile, kept for errors found after the
// dispenser has moved past it.
type caddyfilePos struct {
	file string
	line int
}

// posOf returns the place of d's current token.
func posOf(d *caddyfile.Dispenser) caddyfilePos {
	return caddyfilePos{file: d.File(), line: d.Line()}
}

// errf formats an error at p the way caddyfile.Dispenser.Errf does.
func (p caddyfilePos) errf(format string, args ...any) error {
	return fmt.Errorf("%w, at %s:%d", fmt.Errorf(format, args...), p.file, p.line)
}

// parsedSource is a source with the place of its block.
type parsedSource struct {
	*Source
	at caddyfilePos
}

// checkSource checks what a source block holds by itself: its verify line
// (at verifyAt: scheme, options and literal secrets, as verify.New takes
// them) and the settings that depend on one another.
func checkSource(s *Source, at, verifyAt caddyfilePos) error {
	if err := checkVerifier(s); err != nil {
		return verifyAt.errf("source %q: verify: %v", s.Name, err)
	}
	if err := checkMaxRatio(s.MaxRatio, slices.Contains(s.AcceptEncoding, "gzip")); err != nil {
		return at.errf("source %q: %w", s.Name, err)
	}
	return nil
}

// checkVerifier builds the source's verifier when its secrets are literal;
// with placeholder secrets it checks the scheme name only, since the
// secrets' shape is known once the placeholders are resolved.
func checkVerifier(s *Source) error {
	if !slices.Contains(verify.Schemes(), s.Verify.Scheme) {
		return fmt.Errorf("unknown scheme %q (known: %s)", s.Verify.Scheme, strings.Join(verify.Schemes(), ", "))
	}
	for _, sec := range s.Verify.Secrets {
		if strings.Contains(sec, "{") {
			return nil
		}
	}
	_, err := verify.New(verify.Config{
		Scheme:    s.Verify.Scheme,
		Secrets:   s.Verify.Secrets,
		Tolerance: time.Duration(s.Tolerance),
		Options:   s.Verify.Options,
	})
	return err
}

// checkHandler checks, at the end of a webhook_ingest block, what its
// sources and versions say about one another: at least one source, no
// name twice, and versions, retirements and deprecations that agree. It
// uses the handler's own checks on a scratch handler.
func checkHandler(d *caddyfile.Dispenser, h *Handler, sources []parsedSource) error {
	if err := checkPrefix(h.Prefix); err != nil {
		return d.WrapErr(err)
	}
	if err := checkHasSources(len(sources)); err != nil {
		return d.WrapErr(err)
	}
	scratch := &Handler{Versions: h.Versions, Retired: h.Retired, Deprecated: h.Deprecated}
	if err := scratch.acceptVersions(); err != nil {
		return d.WrapErr(err)
	}
	deprecated, err := scratch.retireAndDeprecate()
	if err != nil {
		return d.WrapErr(err)
	}
	seen := map[string]bool{}
	for _, s := range sources {
		if seen[s.Name] {
			return s.at.errf("%w", errSourceTwice(s.Name))
		}
		seen[s.Name] = true
		if err := scratch.sourceVersions(s.Source, new(source), deprecated); err != nil {
			return s.at.errf("source %q: %v", s.Name, err)
		}
	}
	return nil
}

// placeholderError explains why secret number n (from 1) resolved to an
// error or to nothing. A secret that is one placeholder is named with what
// it needed: "secret {env.GITHUB_SECRET}: environment variable
// GITHUB_SECRET is not set or empty". Any other is named by its number
// only, so that no literal part of a secret reaches a log.
func placeholderError(n int, secret string, err error) error {
	inner, ok := strings.CutPrefix(secret, "{")
	inner, whole := strings.CutSuffix(inner, "}")
	if ok && whole && !strings.ContainsAny(inner, "{}") {
		if name, ok := strings.CutPrefix(inner, "env."); ok {
			return fmt.Errorf("secret %s: environment variable %s is not set or empty; set it in the environment of the process that runs Caddy, or use {file.<path>}", secret, name)
		}
		if name, ok := strings.CutPrefix(inner, "file."); ok {
			return fmt.Errorf("secret %s: file %s is missing, unreadable or empty (the log says why); write the secret into it", secret, name)
		}
	}
	if err == nil {
		err = errors.New("it is empty")
	}
	return fmt.Errorf("secret %d: %w", n, err)
}
