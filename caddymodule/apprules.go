package caddymodule

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"regexp"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/nats-io/nkeys"
)

// The rules of the webhooks global option that both the Caddyfile parser
// (with the file and line) and Provision or Validate (for JSON configs)
// check: one function per rule, so both say the same thing.

// errAppPrefix starts every error of the webhooks app, so that an error
// found while a webhook_ingest handler loads the app is not taken for the
// handler's own.
const errAppPrefix = "webhooks global option"

// appError attributes err to the webhooks global option.
func appError(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", errAppPrefix, err)
}

// checkDedupWindow: a delivery id cannot be remembered longer than its
// event is kept.
func checkDedupWindow(dedup, retention time.Duration) error {
	if dedup > retention {
		return fmt.Errorf("dedup_window %s is longer than retention %s: an event cannot be remembered longer than it is kept; shorten dedup_window or lengthen retention", dedup, retention)
	}
	return nil
}

// checkMaxEventSize: NATS holds a message in memory whole.
func checkMaxEventSize(size int64) error {
	if size > maxMaxEventSize {
		return fmt.Errorf("max_event_size %d: at most 64MiB (NATS messages are held in memory whole)", size)
	}
	return nil
}

// checkListen: "off" or a host:port with a numeric port.
func checkListen(listen string) error {
	if listen == "off" {
		return nil
	}
	_, port, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("listen %q: want host:port such as 127.0.0.1:4222, or off: %w", listen, err)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("listen %q: port %q is not a number from 0 to 65535", listen, port)
	}
	return nil
}

// checkNKey: a public user nkey ("U" and 55 more characters), never a
// seed ("SU..."), which is a secret.
func checkNKey(key string) error {
	if nkeys.IsValidPublicUserKey(key) {
		return nil
	}
	if len(key) > 1 && key[0] == 'S' {
		return errors.New("nkey: this is a seed (a secret): give the public key (U...) that 'nk -inkey <seed file> -pubout' prints")
	}
	return fmt.Errorf("nkey %q: not a public user nkey (U followed by 55 characters)", key)
}

// placeholderRe finds {env.X} and {file.X} placeholders.
var placeholderRe = regexp.MustCompile(`\{(env|file)\.([^{}]+)\}`)

// resolveSecret resolves the placeholders of a setting (a secret, or a
// path that must not silently become empty), and when that fails says
// which environment variable or file is missing.
func resolveSecret(repl *caddy.Replacer, name, value string) (string, error) {
	out, err := repl.ReplaceOrErr(value, true, true)
	if err == nil {
		return out, nil
	}
	for _, m := range placeholderRe.FindAllStringSubmatch(value, -1) {
		if why := placeholderProblem(m[1], m[2]); why != "" {
			return "", fmt.Errorf("%s: %s %s", name, m[0], why)
		}
	}
	return "", fmt.Errorf("%s: %w", name, err)
}

// placeholderProblem says why {kind.key} resolves to nothing, or "".
func placeholderProblem(kind, key string) string {
	switch kind {
	case "env":
		state := "is empty"
		if _, ok := os.LookupEnv(key); !ok {
			state = "is not set"
		}
		if os.Getenv(key) == "" {
			return fmt.Sprintf("needs the environment variable %s, which %s in the environment Caddy runs in", key, state)
		}
	case "file":
		f, err := os.Open(key)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return fmt.Sprintf("needs the file %s, which does not exist", key)
		case err != nil:
			return fmt.Sprintf("needs the file %s, which Caddy cannot read: %v", key, err)
		}
		defer f.Close()
		if fi, err := f.Stat(); err == nil && fi.Size() == 0 {
			return fmt.Sprintf("needs the file %s, which is empty", key)
		}
	}
	return ""
}
