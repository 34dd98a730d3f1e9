// Package caddymodule is Hookgate's Caddy glue: the "webhooks" app that owns
// the embedded NATS JetStream store and the forwarders, and the
// "webhook_ingest" HTTP handler that turns a provider's POST into a stored
// event. Importing it registers both modules, their Caddyfile syntax and the
// "caddy webhooks" command.
//
// # Where things are
//
// The request path, in the order a delivery meets it:
//
//   - handler.go: the Handler module, its provisioning, and ServeHTTP as
//     three phases over one request value: admit (path, client, method,
//     rates, readiness, declared size and encoding; no body byte read),
//     read (body, gzip, signature) and store (handshake answer, or publish
//     and wait for the acknowledgement). The publisher interface there is
//     the seam to the store.
//   - source.go: a source's configuration (Source, VerifyConfig) and how it
//     becomes ready to serve; rules.go: the validation rules the Caddyfile
//     parser and Provision share (apprules.go: the same for the app).
//   - versions.go: path versions, deprecation (Deprecation, Sunset, Link
//     headers) and retirement (410).
//   - ratelimit.go: token buckets per source and per client IP, kept across
//     reloads; allowlist.go: allow_ips and the client address.
//   - body.go: reading the body within max_body, gzip within max_ratio.
//   - message.go: the stored message: headers kept, event id, subject.
//   - answer.go: 2xx bodies, RFC 9457 problems and handshake answers.
//   - prefixtrap.go: the warning when deliveries arrive outside the prefix.
//   - ready.go: the "webhook_ready" handler, for load balancers.
//
// The store and delivery:
//
//   - app.go: the "webhooks" app: configuration, lifecycle, readiness.
//   - engine.go, startup.go, auth.go, health.go, space_*.go: the embedded
//     NATS server and JetStream streams, who may use them, and what happens
//     when the disk fills up; store_group.go, store_sync_*.go: group commit,
//     one fsync for many concurrent events, behind the publisher seam.
//   - risk.go: warnings about valid but risky app settings.
//   - eventlog*.go: the event log (list, read, replay, dead letters, status)
//     that the admin API, the CLI and the dashboard (dashboard.go) share.
//   - destination.go: a destination's configuration, turned into a
//     forwarder.Config (package forwarder does the delivering).
//   - metrics.go: the Prometheus collector; natslog.go: NATS logs into zap.
//
// Operating it:
//
//   - caddyfile.go: the Caddyfile syntax of the global option and the
//     directive, written out in each UnmarshalCaddyfile's doc comment;
//     caddyfile_check.go: the checks that give a mistake its file and line.
//   - admin.go, admin_backup.go, admin_events.go: the admin API
//     (admin.api.webhooks).
//   - command*.go: the "caddy webhooks" subcommands; backup.go: backups.
//
// Tests use real parts: gateway_test.go starts a Caddy from a Caddyfile
// with an in-process store, edge_test.go is the attack table (one test per
// hostile input), and each file's pure functions have a table test beside
// it (handler_test.go, message_test.go, ...).
package caddymodule
