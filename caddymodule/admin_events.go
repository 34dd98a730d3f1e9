package caddymodule

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// The event log's admin endpoints, under admin.api.webhooks:
//
//	GET    /webhooks/events?source=&version=&type=&destination=&status=&since=&until=&q=&limit=&cursor=
//	GET    /webhooks/events/<id>[?body=1]
//	POST   /webhooks/events/<id>/replay        {"destination": "<name>"} (optional)
//	POST   /webhooks/replay                    {"source", "version", "type", "status", "destination", "since", "until"}
//	GET    /webhooks/replay/<job>
//	GET    /webhooks/dlq?destination=&since=&limit=&cursor=
//	GET    /webhooks/dlq/<id>[?body=1]
//	DELETE /webhooks/dlq/<id>
//	POST   /webhooks/dlq/<id>/redrive
//	POST   /webhooks/dlq/redrive               a filter, as for /webhooks/replay
//	GET    /webhooks/status
//
// They are rows of admin.go's table (added in init). Event ids may hold
// '/': everything after /webhooks/events/ is the id, except a trailing
// /replay on a POST.

func init() {
	for _, rt := range eventLogRoutes {
		adminRoutes = append(adminRoutes, adminRoute{rt.method, rt.match, withApp(rt.serve)})
	}
}

// eventLogRoute is one event log endpoint, served for an App: the admin
// API's rows (admin.go's adminRoutes, added in init) use the running one,
// the dashboard its own.
type eventLogRoute struct {
	method string
	match  func(path string) (arg string, ok bool)
	serve  eventLogHandler
}

// eventLogRoutes are the event log's endpoints, paths under /webhooks/.
var eventLogRoutes = []eventLogRoute{
	{http.MethodGet, exactPath("events"), listEventsRoute},
	{http.MethodPost, idBetween("events/", "/replay"), replayEventRoute},
	{http.MethodGet, idBetween("events/", ""), getEventRoute},
	{http.MethodPost, exactPath("replay"), startReplayRoute},
	{http.MethodGet, pathBetween("replay/", ""), replayJobRoute},
	{http.MethodGet, exactPath("dlq"), listDLQRoute},
	{http.MethodPost, exactPath("dlq/redrive"), redriveAllRoute},
	{http.MethodPost, pathBetween("dlq/", "/redrive"), redriveRoute},
	{http.MethodGet, pathBetween("dlq/", ""), getDLQRoute},
	{http.MethodDelete, pathBetween("dlq/", ""), deleteDLQRoute},
	{http.MethodGet, exactPath("status"), statusRoute},
}

// serveEventLogPath answers one event log path (as under /webhooks/) for
// app: 404 for a path that is none of them, 405 with Allow for a known
// path asked with another method.
func serveEventLogPath(ctx context.Context, app *App, w http.ResponseWriter, r *http.Request, path string) error {
	var methods []string
	for _, rt := range eventLogRoutes {
		arg, ok := rt.match(path)
		if !ok {
			continue
		}
		if r.Method == rt.method {
			return rt.serve(ctx, app, w, r, arg)
		}
		methods = append(methods, rt.method)
	}
	if len(methods) > 0 {
		w.Header().Set("Allow", strings.Join(methods, ", "))
		return apiError(http.StatusMethodNotAllowed, "%s %s: use %s", r.Method, r.URL.Path, strings.Join(methods, " or "))
	}
	return apiError(http.StatusNotFound, "no event log endpoint %s", r.URL.Path)
}

// routeEvents, routeReplay, routeDLQ and routeStatus serve the paths under
// events/, replay/, dlq/ and status for app (the dashboard's endpoints).
func routeEvents(ctx context.Context, app *App, w http.ResponseWriter, r *http.Request, rest string) error {
	return serveEventLogPath(ctx, app, w, r, "events/"+rest)
}

func routeReplay(ctx context.Context, app *App, w http.ResponseWriter, r *http.Request, rest string) error {
	return serveEventLogPath(ctx, app, w, r, "replay/"+rest)
}

func routeDLQ(ctx context.Context, app *App, w http.ResponseWriter, r *http.Request, rest string) error {
	return serveEventLogPath(ctx, app, w, r, "dlq/"+rest)
}

func routeStatus(ctx context.Context, app *App, w http.ResponseWriter, r *http.Request, rest string) error {
	return serveEventLogPath(ctx, app, w, r, "status/"+rest)
}

// idBetween matches prefix + an event id + suffix; the id may hold '/'.
func idBetween(prefix, suffix string) func(string) (string, bool) {
	return func(p string) (string, bool) {
		rest, ok := strings.CutPrefix(p, prefix)
		if ok && suffix != "" {
			rest, ok = strings.CutSuffix(rest, suffix)
		}
		return rest, ok && rest != ""
	}
}

// eventLogHandler is an event log endpoint: the running app, a context
// bounded by adminTimeout, and the path's argument.
type eventLogHandler func(ctx context.Context, app *App, w http.ResponseWriter, r *http.Request, arg string) error

func withApp(h eventLogHandler) func(http.ResponseWriter, *http.Request, string) error {
	return func(w http.ResponseWriter, r *http.Request, arg string) error {
		app, err := runningApp()
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(r.Context(), adminTimeout)
		defer cancel()
		return h(ctx, app, w, r, arg)
	}
}

func listEventsRoute(ctx context.Context, app *App, w http.ResponseWriter, r *http.Request, _ string) error {
	f, err := filterFromQuery(r.URL.Query())
	if err != nil {
		return err
	}
	return answer(w, http.StatusOK)(app.listEvents(ctx, f))
}

func getEventRoute(ctx context.Context, app *App, w http.ResponseWriter, r *http.Request, id string) error {
	return answer(w, http.StatusOK)(app.getEvent(ctx, id, wantBody(r)))
}

func replayEventRoute(ctx context.Context, app *App, w http.ResponseWriter, r *http.Request, id string) error {
	var body struct {
		Destination string `json:"destination"`
	}
	if err := readJSONBody(r, &body); err != nil {
		return err
	}
	return answer(w, http.StatusAccepted)(app.replayEvent(ctx, id, body.Destination))
}

func startReplayRoute(ctx context.Context, app *App, w http.ResponseWriter, r *http.Request, _ string) error {
	f, err := filterFromBody(r)
	if err != nil {
		return err
	}
	return answer(w, http.StatusAccepted)(app.startReplay(ctx, f))
}

func replayJobRoute(_ context.Context, app *App, w http.ResponseWriter, _ *http.Request, job string) error {
	return answer(w, http.StatusOK)(app.replayJob(job))
}

func listDLQRoute(ctx context.Context, app *App, w http.ResponseWriter, r *http.Request, _ string) error {
	f, err := filterFromQuery(r.URL.Query())
	if err != nil {
		return err
	}
	return answer(w, http.StatusOK)(app.listDLQ(ctx, f))
}

func redriveAllRoute(ctx context.Context, app *App, w http.ResponseWriter, r *http.Request, _ string) error {
	f, err := filterFromBody(r)
	if err != nil {
		return err
	}
	return answer(w, http.StatusAccepted)(app.redriveAll(ctx, f))
}

func redriveRoute(ctx context.Context, app *App, w http.ResponseWriter, _ *http.Request, id string) error {
	return answer(w, http.StatusAccepted)(app.redrive(ctx, id))
}

func getDLQRoute(ctx context.Context, app *App, w http.ResponseWriter, r *http.Request, id string) error {
	return answer(w, http.StatusOK)(app.getDLQ(ctx, id, wantBody(r)))
}

func deleteDLQRoute(ctx context.Context, app *App, w http.ResponseWriter, _ *http.Request, id string) error {
	if err := app.deleteDLQ(ctx, id); err != nil {
		return err
	}
	return writeJSON(w, map[string]any{"id": id, "deleted": true})
}

func statusRoute(ctx context.Context, app *App, w http.ResponseWriter, _ *http.Request, _ string) error {
	return answer(w, http.StatusOK)(app.status(ctx))
}

// answer returns a function that writes v with status, or returns err.
func answer(w http.ResponseWriter, status int) func(v any, err error) error {
	return func(v any, err error) error {
		if err != nil {
			return err
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		return enc.Encode(v)
	}
}

func wantBody(r *http.Request) bool {
	v := r.URL.Query().Get("body")
	return v == "1" || v == "true"
}

// maxFilterBody bounds a POSTed filter.
const maxFilterBody = 64 << 10

// readJSONBody decodes an optional JSON body into v.
func readJSONBody(r *http.Request, v any) error {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxFilterBody))
	if err != nil {
		return apiError(http.StatusBadRequest, "read the request body: %v", err)
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return apiError(http.StatusBadRequest, "the body must be a JSON object: %v", err)
	}
	return nil
}

// filterRequest is a filter as the API takes it: times as RFC 3339 or a
// duration back from now ("1h").
type filterRequest struct {
	Source      string `json:"source"`
	Version     string `json:"version"`
	Type        string `json:"type"`
	Destination string `json:"destination"`
	Status      string `json:"status"`
	Since       string `json:"since"`
	Until       string `json:"until"`
	Q           string `json:"q"`
	Limit       string `json:"limit"`
	Cursor      string `json:"cursor"`
}

func filterFromBody(r *http.Request) (EventFilter, error) {
	var fr filterRequest
	if err := readJSONBody(r, &fr); err != nil {
		return EventFilter{}, err
	}
	return fr.filter(time.Now())
}

func filterFromQuery(q url.Values) (EventFilter, error) {
	fr := filterRequest{
		Source: q.Get("source"), Version: q.Get("version"), Type: q.Get("type"),
		Destination: q.Get("destination"), Status: q.Get("status"),
		Since: q.Get("since"), Until: q.Get("until"), Q: q.Get("q"),
		Limit: q.Get("limit"), Cursor: q.Get("cursor"),
	}
	return fr.filter(time.Now())
}

func (fr filterRequest) filter(now time.Time) (EventFilter, error) {
	f := EventFilter{Source: fr.Source, Version: fr.Version, Type: fr.Type, Destination: fr.Destination,
		Status: fr.Status, Q: fr.Q, Cursor: fr.Cursor}
	var err error
	if f.Since, err = parseWhen("since", fr.Since, now); err != nil {
		return f, err
	}
	if f.Until, err = parseWhen("until", fr.Until, now); err != nil {
		return f, err
	}
	if fr.Limit != "" {
		if f.Limit, err = strconv.Atoi(fr.Limit); err != nil || f.Limit <= 0 {
			return f, apiError(http.StatusBadRequest, "limit %q: give a positive number (at most %d)", fr.Limit, maxPageLimit)
		}
	}
	return f, nil
}

// parseWhen reads a time as RFC 3339 or as a duration back from now
// ("1h" is an hour ago; Caddy's "d" for days works too).
func parseWhen(name, v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	d, err := caddy.ParseDuration(v)
	if err != nil || d < 0 {
		return time.Time{}, apiError(http.StatusBadRequest, "%s %q: give an RFC 3339 time (2026-01-02T15:04:05Z) or a duration back from now (1h, 30m, 7d)", name, v)
	}
	return now.Add(-d), nil
}
