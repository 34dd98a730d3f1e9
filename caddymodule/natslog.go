package caddymodule

import (
	"fmt"
	"sync/atomic"

	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/zap"
)

// natsLogger routes the embedded server's log lines into Caddy's zap logger.
// Fatalf must never exit the process: nats-server reports "Can't start
// JetStream" through it and then keeps running without JetStream, so the
// engine records the fatal and checks it after startup.
type natsLogger struct {
	log   *zap.Logger
	fatal atomic.Pointer[string]
}

func (l *natsLogger) Noticef(format string, v ...any) { l.log.Info(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Errorf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Debugf(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Tracef(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }

func (l *natsLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.fatal.Store(&msg)
	l.log.Error(msg, zap.Bool("fatal", true))
}

// lastFatal returns the last fatal message, "" when there was none.
func (l *natsLogger) lastFatal() string {
	if p := l.fatal.Load(); p != nil {
		return *p
	}
	return ""
}

var _ server.Logger = (*natsLogger)(nil)
