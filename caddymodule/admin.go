package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
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
//	POST /webhooks/destinations/<name>/resume lift a pause (410 or open circuit);
//	                                          409 when it is not paused
//	GET  /webhooks/deliveries/<event id>      the event's delivery state at each destination
//
// serve dispatches on adminRoutes; each endpoint is one function.
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

// route is one endpoint of a route table: a method and a path under
// adminPrefix, matched by match, which returns the path's variable part,
// and serve, the function of type H that answers it.
type route[H any] struct {
	method string
	match  func(path string) (arg string, ok bool)
	serve  H
}

// adminRoute is one endpoint of admin.api.webhooks.
type adminRoute = route[func(w http.ResponseWriter, r *http.Request, arg string) error]

// adminRoutes lists the endpoints, tried in order. To add an endpoint, add
// a function and a row.
var adminRoutes = []adminRoute{
	{http.MethodGet, exactPath("destinations"), listDestinations},
	{http.MethodGet, pathBetween("destinations/", ""), getDestination},
	{http.MethodPost, pathBetween("destinations/", "/resume"), resumeDestination},
	// Everything after the prefix is the id: ids may hold '/'.
	{http.MethodGet, prefixPath("deliveries/"), getDeliveries},
}

// exactPath matches one fixed path (a trailing '/' allowed).
func exactPath(want string) func(string) (string, bool) {
	return func(p string) (string, bool) { return "", strings.TrimSuffix(p, "/") == want }
}

// pathBetween matches prefix + one path segment + suffix, the segment
// being the argument.
func pathBetween(prefix, suffix string) func(string) (string, bool) {
	return func(p string) (string, bool) {
		rest, ok := strings.CutPrefix(p, prefix)
		if !ok {
			return "", false
		}
		if suffix == "" {
			rest = strings.TrimSuffix(rest, "/")
		} else if rest, ok = strings.CutSuffix(rest, suffix); !ok {
			return "", false
		}
		return rest, rest != "" && !strings.Contains(rest, "/")
	}
}

// prefixPath matches everything under prefix, the rest being the argument.
func prefixPath(prefix string) func(string) (string, bool) {
	return func(p string) (string, bool) { return strings.CutPrefix(p, prefix) }
}

// serve finds the endpoint for the request's path and method: an unknown
// path is 404, a known path with another method 405 with Allow.
func (a adminAPI) serve(w http.ResponseWriter, r *http.Request) error {
	rt, arg, err := findRoute(w, r, adminRoutes, strings.TrimPrefix(r.URL.Path, adminPrefix), "no such webhooks admin path: ")
	if err != nil {
		return err
	}
	return rt.serve(w, r, arg)
}

// findRoute returns the first of routes that matches path (r's path
// under adminPrefix) and r's method, with the path's argument. A path no
// route matches is a 404 whose message is notFound and r's path; a
// matched path asked with another method is a 405, with Allow set on w.
func findRoute[H any](w http.ResponseWriter, r *http.Request, routes []route[H], path, notFound string) (route[H], string, error) {
	var allow []string
	for _, rt := range routes {
		arg, ok := rt.match(path)
		if !ok {
			continue
		}
		if r.Method == rt.method {
			return rt, arg, nil
		}
		allow = append(allow, rt.method)
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		return route[H]{}, "", apiError(http.StatusMethodNotAllowed, "%s %s: use %s", r.Method, r.URL.Path, strings.Join(allow, " or "))
	}
	return route[H]{}, "", apiError(http.StatusNotFound, "%s%s", notFound, r.URL.Path)
}

// listDestinations answers every running destination's status.
func listDestinations(w http.ResponseWriter, r *http.Request, _ string) error {
	app, err := runningApp()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), adminTimeout)
	defer cancel()
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

// getDestination answers one destination's status.
func getDestination(w http.ResponseWriter, r *http.Request, name string) error {
	_, f, err := runningForwarder(name)
	if err != nil {
		return err
	}
	return writeStatus(w, r, f)
}

// resumeDestination lifts a destination's pause and answers its status;
// 409 when it was not paused, so a script sees that nothing changed.
func resumeDestination(w http.ResponseWriter, r *http.Request, name string) error {
	app, f, err := runningForwarder(name)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), adminTimeout)
	defer cancel()
	if err := f.Resume(ctx); errors.Is(err, forwarder.ErrNotPaused) {
		return apiError(http.StatusConflict, "%v", err)
	} else if err != nil {
		return apiError(http.StatusServiceUnavailable, "%v", err)
	}
	app.logger.Info("destination resumed through the admin API", zap.String("destination", f.Name()))
	return writeStatus(w, r, f)
}

// runningForwarder returns the running app and its destination's
// forwarder, or a 404.
func runningForwarder(name string) (*App, *forwarder.Forwarder, error) {
	app, err := runningApp()
	if err != nil {
		return nil, nil, err
	}
	f := app.forwarder(name)
	if f == nil {
		return nil, nil, apiError(http.StatusNotFound, "no destination %q in the running config", name)
	}
	return app, f, nil
}

// writeStatus answers a destination's status.
func writeStatus(w http.ResponseWriter, r *http.Request, f *forwarder.Forwarder) error {
	ctx, cancel := context.WithTimeout(r.Context(), adminTimeout)
	defer cancel()
	st, err := f.Status(ctx)
	if err != nil {
		return apiError(http.StatusServiceUnavailable, "%v", err)
	}
	return writeJSON(w, st)
}

// getDeliveries answers an event's delivery states: one per destination of
// the running config that the event matches, "pending" where no attempt
// has finished yet, plus any states left by destinations no longer
// configured. The id is everything after the prefix: ids may hold '/'.
func getDeliveries(w http.ResponseWriter, r *http.Request, id string) error {
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
