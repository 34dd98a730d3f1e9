package caddymodule

import (
	"fmt"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/zap"
)

// natsLogger routes the embedded server's log lines into Caddy's zap logger.
// Fatalf must never exit the process: nats-server reports "Can't start
// JetStream" through it and then keeps running without JetStream, so the
// engine records the fatal and checks it after startup.
//
// A line that reports a full disk (ENOSPC) also calls onNoSpace: the server
// says so only in its log, and then stops answering publishes.
type natsLogger struct {
	log       *zap.Logger
	fatal     atomic.Pointer[string]
	onNoSpace func()
}

func (l *natsLogger) Noticef(format string, v ...any) { l.log.Info(l.check(format, v)) }
func (l *natsLogger) Warnf(format string, v ...any)   { l.log.Warn(l.check(format, v)) }
func (l *natsLogger) Errorf(format string, v ...any)  { l.log.Error(l.check(format, v)) }
func (l *natsLogger) Debugf(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Tracef(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }

func (l *natsLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.fatal.Store(&msg)
	l.log.Error(msg, zap.Bool("fatal", true))
}

// check formats a line and reports a full disk.
func (l *natsLogger) check(format string, v []any) string {
	msg := fmt.Sprintf(format, v...)
	if l.onNoSpace != nil && strings.Contains(msg, noSpace) {
		l.onNoSpace()
	}
	return msg
}

// noSpace is how ENOSPC reads in nats-server's lines (it matches the text
// too: store.go isOutOfSpaceErr).
var noSpace = syscall.ENOSPC.Error()

// lastFatal returns the last fatal message, "" when there was none.
func (l *natsLogger) lastFatal() string {
	if p := l.fatal.Load(); p != nil {
		return *p
	}
	return ""
}

var _ server.Logger = (*natsLogger)(nil)
