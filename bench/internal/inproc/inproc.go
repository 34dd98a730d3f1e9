// Package inproc runs the benchmarks' gateway inside the benchmark's own
// process: it loads a Caddyfile into Caddy and hands out loopback
// addresses. A benchmark cannot go on without its gateway, so every error
// ends the program with log.Fatal.
package inproc

import (
	"log"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// Load adapts caddyfile (the text of a Caddyfile) to JSON and loads it into
// Caddy, replacing whatever config runs; stop it with caddy.Stop. The
// caller imports the modules the config names (modules/standard and
// Hookgate's caddymodule).
func Load(caddyfile string) {
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		log.Fatal(err)
	}
	if err := caddy.Load(out, true); err != nil {
		log.Fatal(err)
	}
}
