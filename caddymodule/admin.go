package caddymodule

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/hookgate/hookgate/forwarder"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// adminAPI serves the webhooks endpoints of Caddy's admin API:
//
//	GET  /webhooks/destinations               every destination's status
//	GET  /webhooks/destinations/<name>        one destination's status
//	POST /webhooks/destinations/<name>/resume lift a pause (410 or open circuit)
type adminAPI struct{}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.webhooks",
		New: func() caddy.Module { return new(adminAPI) },
	}
}

// Routes returns the webhooks admin routes.
func (a adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: adminPrefix, Handler: caddy.AdminHandlerFunc(a.serve)}}
}

const adminPrefix = "/webhooks/"

// adminTimeout bounds the NATS requests one admin call makes.
const adminTimeout = 10 * time.Second

func (a adminAPI) serve(w http.ResponseWriter, r *http.Request) error {
	parts := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, adminPrefix), "/"), "/")
	if parts[0] != "destinations" || len(parts) > 3 || (len(parts) == 3 && parts[2] != "resume") {
		return apiError(http.StatusNotFound, "no such webhooks admin path: %s", r.URL.Path)
	}
	want := http.MethodGet
	if len(parts) == 3 {
		want = http.MethodPost
	}
	if r.Method != want {
		w.Header().Set("Allow", want)
		return apiError(http.StatusMethodNotAllowed, "%s %s: use %s", r.Method, r.URL.Path, want)
	}
	app, err := runningApp()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), adminTimeout)
	defer cancel()
	if len(parts) == 1 {
		out := []*forwarder.DestinationStatus{}
		for _, f := range app.runningForwarders() {
			st, err := f.Status(ctx)
			if err != nil {
				return apiError(http.StatusServiceUnavailable, "%v", err)
			}
			out = append(out, st)
		}
		return writeJSON(w, out)
	}
	f := app.forwarder(parts[1])
	if f == nil {
		return apiError(http.StatusNotFound, "no destination %q in the running config", parts[1])
	}
	if len(parts) == 3 {
		if err := f.Resume(ctx); err != nil {
			return apiError(http.StatusServiceUnavailable, "%v", err)
		}
		app.logger.Info("destination resumed through the admin API", zap.String("destination", f.Name()))
	}
	st, err := f.Status(ctx)
	if err != nil {
		return apiError(http.StatusServiceUnavailable, "%v", err)
	}
	return writeJSON(w, st)
}

// runningApp returns the webhooks app of the running config.
func runningApp() (*App, error) {
	v, err := caddy.ActiveContext().AppIfConfigured("webhooks")
	if err != nil || v == nil {
		return nil, apiError(http.StatusNotFound, "the running config has no webhooks app")
	}
	app, ok := v.(*App)
	if !ok {
		return nil, apiError(http.StatusInternalServerError, "webhooks app of unexpected type %T", v)
	}
	return app, nil
}

func writeJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		return apiError(http.StatusInternalServerError, "encode: %v", err)
	}
	return nil
}

func apiError(status int, format string, args ...any) error {
	return caddy.APIError{HTTPStatus: status, Err: fmt.Errorf(format, args...)}
}

// Interface guard.
var _ caddy.AdminRouter = adminAPI{}
