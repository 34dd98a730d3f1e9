package caddymodule

import (
	"fmt"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap/zapcore"
)

func init() {
	caddy.RegisterModule(new(Ready))
	httpcaddyfile.RegisterHandlerDirective("webhook_ready", parseReady)
	// Ahead of webhook_ingest (which is before abort), so that a
	// webhook_ingest without a matcher does not take /ready for a
	// webhook path.
	httpcaddyfile.RegisterDirectiveOrder("webhook_ready", httpcaddyfile.After, "route")
}

// Ready is the "webhook_ready" handler: a readiness check for load
// balancers and orchestrators. It answers GET and HEAD with 200 and
// {"status":"ready"} only while the event store accepts writes, and with 503,
// a Retry-After and a problem body while the store is starting, stopped,
// out of disk space or past a failed fsync, or for a few seconds after the WEBHOOKS stream refused
// an event for its max_store (problem type store-full in both cases). It says nothing else about the gateway (no versions,
// paths or counts), so it is safe to expose where a load balancer can reach
// it. Mount it on a path of your choice:
//
//	webhook_ready /ready
type Ready struct {
	// RetryAfter is the Retry-After sent with a 503. Default: 5s.
	RetryAfter caddy.Duration `json:"retry_after,omitempty"`

	app        *App
	retryAfter string
}

// CaddyModule returns the Caddy module information.
func (*Ready) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.webhook_ready",
		New: func() caddy.Module { return new(Ready) },
	}
}

// Provision finds the webhooks app whose store it reports on.
func (h *Ready) Provision(ctx caddy.Context) error {
	app, err := ctx.App("webhooks")
	if err != nil {
		return fmt.Errorf("webhook_ready: the webhooks app: %w", err)
	}
	h.app = app.(*App)
	h.retryAfter = retryAfter(time.Duration(orDefault(h.RetryAfter, caddy.Duration(defaultRetryAfter))))
	return nil
}

// Answers of the readiness check.
var (
	readyBody          = []byte(`{"status":"ready"}`)
	problemStoreFull   = newProblem(http.StatusServiceUnavailable, "store-full", "The event store is out of disk space and refuses events; retry later.", zapcore.WarnLevel)
	problemStreamFull  = newProblem(http.StatusServiceUnavailable, "store-full", "The event stream is at its max_store and refuses events; retry later.", zapcore.WarnLevel)
	problemSyncFailed  = newProblem(http.StatusServiceUnavailable, "store-unavailable", "The event store could not fsync and refuses events until it is restarted.", zapcore.ErrorLevel)
	problemReadyMethod = newProblem(http.StatusMethodNotAllowed, "method-not-allowed", "The readiness check answers GET and HEAD.", zapcore.DebugLevel)
)

// ServeHTTP answers the readiness check; it never calls next.
func (h *Ready) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	hdr := w.Header()
	hdr.Set("Cache-Control", "no-store")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		return writeReadyProblem(w, r, problemReadyMethod)
	}
	switch h.app.storeState() {
	case storeWritable:
		hdr.Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodHead {
			return nil
		}
		_, err := w.Write(readyBody)
		return err
	case storeFull:
		hdr.Set("Retry-After", h.retryAfter)
		return writeReadyProblem(w, r, problemStoreFull)
	case streamFull:
		hdr.Set("Retry-After", h.retryAfter)
		return writeReadyProblem(w, r, problemStreamFull)
	case storeSyncFailed:
		hdr.Set("Retry-After", h.retryAfter)
		return writeReadyProblem(w, r, problemSyncFailed)
	default:
		hdr.Set("Retry-After", h.retryAfter)
		return writeReadyProblem(w, r, problemNotReady)
	}
}

func writeReadyProblem(w http.ResponseWriter, r *http.Request, p *problem) error {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.status)
	if r.Method == http.MethodHead {
		return nil
	}
	_, err := w.Write(p.body)
	return err
}

// storeState is what the readiness check reports.
type storeState int

const (
	storeDown       storeState = iota // not started yet, or stopped
	storeWritable                     // accepts events
	storeFull                         // refuses events for lack of disk space
	streamFull                        // WEBHOOKS refused an event for its max_store lately
	storeSyncFailed                   // an fsync failed: refuses events until a restart
)

// storeState says whether the app's store takes events now. Cheap: no I/O.
func (a *App) storeState() storeState {
	e := a.runningEngine()
	switch {
	case e == nil:
		return storeDown
	case !e.writable():
		return storeFull
	case e.syncFailed(): // store_group.go: a failed fsync is sticky
		return storeSyncFailed
	case !e.clusterCurrent(): // cluster.go: cut off from the majority
		return storeDown
	case e.streamRecentlyFull():
		return streamFull
	}
	return storeWritable
}

func parseReady(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Ready)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile sets up the readiness check from Caddyfile tokens.
// Syntax:
//
//	webhook_ready [<matcher>] [{
//		retry_after <duration>   # default: 5s, sent with every 503
//	}]
func (h *Ready) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "retry_after":
			v, err := durationArg(d)
			if err != nil {
				return err
			}
			h.RetryAfter = v
		default:
			return d.Errf("unrecognized webhook_ready subdirective %q", d.Val())
		}
	}
	return nil
}

// Interface guards.
var (
	_ caddyhttp.MiddlewareHandler = (*Ready)(nil)
	_ caddy.Provisioner           = (*Ready)(nil)
	_ caddyfile.Unmarshaler       = (*Ready)(nil)
)
