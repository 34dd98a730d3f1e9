package caddymodule

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// startPoll is how often start-up checks for a fatal error or a stop.
const startPoll = 25 * time.Millisecond

// errStartInterrupted means the process was told to stop (SIGTERM, SIGINT,
// caddy stop) while the store was starting.
var errStartInterrupted = errors.New("start-up interrupted: the process is exiting")

// runServer starts srv and waits until it takes connections. Start runs
// in its own goroutine because opening a large store takes a while; the
// wait ends at once on a fatal error (nats-server logs a taken port and
// carries on without a listener) or when stop says the process is exiting,
// so that a signal during start-up is honoured. ready bounds the wait for
// the listener once Start has returned.
func runServer(srv *server.Server, nl *natsLogger, stop func() bool, ready time.Duration) error {
	started := make(chan struct{})
	go func() {
		srv.Start()
		close(started)
	}()
	var deadline <-chan time.Time
	tick := time.NewTicker(startPoll)
	defer tick.Stop()
	for {
		if fatal := nl.lastFatal(); fatal != "" {
			return errors.New(fatal)
		}
		if stop() {
			return errStartInterrupted
		}
		select {
		case <-started:
			started = nil
			if srv.ReadyForConnections(startPoll) {
				return nil
			}
			deadline = time.After(ready)
		case <-deadline:
			if fatal := nl.lastFatal(); fatal != "" {
				return errors.New(fatal)
			}
			return fmt.Errorf("not ready for connections after %s", ready)
		case <-tick.C:
			if started == nil && srv.ReadyForConnections(startPoll) {
				return nil
			}
		}
	}
}

// listenAdvice adds to a start-up error what to change when it is about
// the client listener's address.
func listenAdvice(err error, listen string) error {
	if listen == "" || !strings.Contains(err.Error(), "listening on port") {
		return err
	}
	return fmt.Errorf("%w: the NATS listen address %s is taken or not allowed; stop what uses it, set another port ('listen 127.0.0.1:<port>' in the webhooks block), or 'listen off' if no internal service reads events from NATS", err, listen)
}
