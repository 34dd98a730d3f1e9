// Package hookgate is Hookgate, a webhook ingress gateway for Caddy.
//
// Importing this package registers Hookgate's Caddy modules, which is what
// `xcaddy build --with github.com/hookgate/hookgate` does. The modules live in
// package caddymodule; signature schemes in verify; delivery in forwarder;
// the stream's wire contract in event.
package hookgate

import _ "github.com/hookgate/hookgate/caddymodule"
