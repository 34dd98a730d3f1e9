package caddymodule

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
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
//	GET  /webhooks/deliveries/<event id>      the event's delivery state at each destination
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
	if handled, err := a.serveEventLog(w, r); handled { // admin_events.go
		return err
	}
	if id, ok := strings.CutPrefix(r.URL.Path, adminPrefix+"deliveries/"); ok {
		return a.deliveries(w, r, id)
	}
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

// deliveries answers an event's delivery states: one per destination of
// the running config that the event matches, "pending" where no attempt
// has finished yet, plus any states left by destinations no longer
// configured. The id is everything after the prefix: ids may hold '/'.
func (a adminAPI) deliveries(w http.ResponseWriter, r *http.Request, id string) error {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		return apiError(http.StatusMethodNotAllowed, "%s %s: use GET", r.Method, r.URL.Path)
	}
	if id == "" {
		return apiError(http.StatusNotFound, "give an event id: /webhooks/deliveries/<event id>")
	}
	app, err := runningApp()
	if err != nil {
		return err
	}
	e := app.runningEngine()
	if e == nil {
		return apiError(http.StatusServiceUnavailable, "the event store is not running")
	}
	ctx, cancel := context.WithTimeout(r.Context(), adminTimeout)
	defer cancel()
	states, err := forwarder.ReadDeliveries(ctx, e.js, id)
	if err != nil {
		return apiError(http.StatusServiceUnavailable, "%v", err)
	}
	if len(states) == 0 {
		return apiError(http.StatusNotFound, "no delivery state for event %q: unknown, matched by no destination, or expired", id)
	}
	// A state names the event's subject, which says what else it matches.
	subject, seq := states[0].Subject, states[0].Sequence
	for _, f := range app.runningForwarders() {
		if cfg := f.Config(); !cfg.Matches(subject) || slices.ContainsFunc(states, func(d forwarder.Delivery) bool { return d.Destination == f.Name() }) {
			continue
		}
		states = append(states, forwarder.Delivery{EventID: id, Destination: f.Name(), Subject: subject, Sequence: seq, Status: forwarder.StatusPending})
	}
	slices.SortFunc(states, func(a, b forwarder.Delivery) int { return strings.Compare(a.Destination, b.Destination) })
	return writeJSON(w, states)
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
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // subjects read "webhooks.>", not "webhooks.\u003e"
	if err := enc.Encode(v); err != nil {
		return apiError(http.StatusInternalServerError, "encode: %v", err)
	}
	return nil
}

func apiError(status int, format string, args ...any) error {
	return caddy.APIError{HTTPStatus: status, Err: fmt.Errorf(format, args...)}
}

// Interface guard.
var _ caddy.AdminRouter = adminAPI{}
