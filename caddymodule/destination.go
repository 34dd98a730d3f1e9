package caddymodule

import (
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/hookgate/hookgate/forwarder"
)

// DestinationConfig is the JSON config of one destination.
// (Minimal version written by the lead so the package compiles; the
// forwarder engineer owns this file and extends it.)
type DestinationConfig struct {
	// Name identifies the destination; its consumer is "fwd-<name>".
	Name string `json:"name"`
	// URL receives a POST per event.
	URL string `json:"url"`
	// Subjects filter the events this destination receives.
	Subjects []string `json:"subjects,omitempty"`
	// Timeout bounds one delivery attempt.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// MaxAttempts is how many attempts an event gets.
	MaxAttempts int `json:"max_attempts,omitempty"`
	// BackoffBase and BackoffCap shape the retry delays.
	BackoffBase caddy.Duration `json:"backoff_base,omitempty"`
	BackoffCap  caddy.Duration `json:"backoff_cap,omitempty"`
}

// parseDestination reads "destination <name> { ... }"; the dispenser is on
// the "destination" token.
func parseDestination(d *caddyfile.Dispenser) (*DestinationConfig, error) {
	dc := new(DestinationConfig)
	if !d.NextArg() {
		return nil, d.ArgErr()
	}
	dc.Name = d.Val()
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "url":
			if !d.NextArg() {
				return nil, d.ArgErr()
			}
			dc.URL = d.Val()
		case "subjects":
			dc.Subjects = append(dc.Subjects, d.RemainingArgs()...)
		case "timeout":
			if !d.NextArg() {
				return nil, d.ArgErr()
			}
			v, err := caddy.ParseDuration(d.Val())
			if err != nil {
				return nil, d.Errf("timeout: %v", err)
			}
			dc.Timeout = caddy.Duration(v)
		default:
			return nil, d.Errf("unrecognized destination subdirective %q", d.Val())
		}
	}
	return dc, nil
}

// forwarderConfig resolves placeholders and returns the forwarder config.
func (dc *DestinationConfig) forwarderConfig(repl *caddy.Replacer) (forwarder.Config, error) {
	u, err := repl.ReplaceOrErr(dc.URL, true, true)
	if err != nil {
		return forwarder.Config{}, err
	}
	return forwarder.Config{
		Name:        dc.Name,
		URL:         u,
		Subjects:    dc.Subjects,
		Timeout:     time.Duration(dc.Timeout),
		MaxAttempts: dc.MaxAttempts,
		BackoffBase: time.Duration(dc.BackoffBase),
		BackoffCap:  time.Duration(dc.BackoffCap),
	}, nil
}
