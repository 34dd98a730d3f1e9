package caddymodule

import (
	"strings"
	"time"

	"go.uber.org/zap"
)

// prefixTrapEvery spaces out the warning about requests outside the
// prefix: enough to be seen, never a flood.
const prefixTrapEvery = 5 * time.Minute

// notePrefixTrap warns, at most every prefixTrapEvery, when a request for
// a known version and source arrives outside the handler's prefix, e.g.
// "handle /hooks/* { webhook_ingest { ... } }" with the default prefix
// /webhooks: the config is valid, yet every delivery gets 404.
func (h *Handler) notePrefixTrap(path string) {
	want, ok := h.misplacedPrefix(path)
	if !ok {
		return
	}
	if turn(h.trapWarn) {
		h.warnPrefixTrap(want)
	}
}

// warnPrefixTrap logs the prefix trap: deliveries arrive under want.
func (h *Handler) warnPrefixTrap(want string) {
	if want == "" {
		want = "/"
	}
	current := h.prefix
	if current == "" {
		current = "/"
	}
	h.logger.Warn("webhook deliveries arrive outside the handler's prefix and get 404: set 'prefix "+want+"' in webhook_ingest",
		zap.String("prefix", current),
		zap.String("deliveries_under", want),
		zap.Duration("next_warning_in", prefixTrapEvery))
}

// misplacedPrefix returns the prefix under which path would route: the part
// before a final /<version>/<source> the handler knows, when that part is
// not the prefix and is a plain path (so nothing odd from a request reaches
// the log).
func (h *Handler) misplacedPrefix(path string) (string, bool) {
	rest, name, ok := cutLast(path)
	if !ok || h.sources[name] == nil {
		return "", false
	}
	prefix, version, ok := cutLast(rest)
	if !ok || (!h.versions[version] && !h.retired[version]) {
		return "", false
	}
	if prefix == h.prefix || !plainPath(prefix) {
		return "", false
	}
	return prefix, true
}

// cutLast splits s around its last '/'.
func cutLast(s string) (before, after string, ok bool) {
	i := strings.LastIndexByte(s, '/')
	if i < 0 {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}

// maxTrapPrefix bounds a prefix suggested in the log.
const maxTrapPrefix = 200

// plainPath reports whether p is a short path of letters, digits and
// "/_.~-", safe to suggest in a log line.
func plainPath(p string) bool {
	if len(p) > maxTrapPrefix {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("/_.~-", c) >= 0) {
			return false
		}
	}
	return true
}
