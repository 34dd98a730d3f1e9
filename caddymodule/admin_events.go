package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"reflect"
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
type eventLogRoute = route[eventLogHandler]

// eventLogRoutes are the event log's endpoints, paths under /webhooks/.
var eventLogRoutes = []eventLogRoute{
	{http.MethodGet, exactPath("events"), fromQuery((*App).listEvents)},
	{http.MethodPost, idBetween("events/", "/replay"), replayEventRoute},
	{http.MethodGet, idBetween("events/", ""), getEventRoute},
	{http.MethodPost, exactPath("replay"), fromBody((*App).startReplay)},
	{http.MethodGet, pathBetween("replay/", ""), replayJobRoute},
	{http.MethodGet, exactPath("dlq"), fromQuery((*App).listDLQ)},
	{http.MethodPost, exactPath("dlq/redrive"), fromBody((*App).redriveAll)},
	{http.MethodPost, pathBetween("dlq/", "/redrive"), redriveRoute},
	{http.MethodGet, pathBetween("dlq/", ""), getDLQRoute},
	{http.MethodDelete, pathBetween("dlq/", ""), deleteDLQRoute},
	{http.MethodGet, exactPath("status"), statusRoute},
}

// serveEventLogPath answers one event log path (as under /webhooks/) for
// app: 404 for a path that is none of them, 405 with Allow for a known
// path asked with another method.
func serveEventLogPath(ctx context.Context, app *App, w http.ResponseWriter, r *http.Request, path string) error {
	rt, arg, err := findRoute(w, r, eventLogRoutes, path, "no event log endpoint ")
	if err != nil {
		return err
	}
	return rt.serve(ctx, app, w, r, arg)
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

// fromQuery serves run, an event list, with the filter of the request's
// query string, answering 200.
func fromQuery[T any](run func(*App, context.Context, EventFilter) (T, error)) eventLogHandler {
	return func(ctx context.Context, app *App, w http.ResponseWriter, r *http.Request, _ string) error {
		f, err := filterFromQuery(r.URL.Query())
		if err != nil {
			return err
		}
		return answer(w, http.StatusOK)(run(app, ctx, f))
	}
}

// fromBody serves run, a background job over the events a filter
// selects, with the filter of the request's JSON body, answering 202; a
// 429 (too many unfinished jobs) carries a Retry-After of jobRetryAfter.
func fromBody[T any](run func(*App, context.Context, EventFilter) (T, error)) eventLogHandler {
	return func(ctx context.Context, app *App, w http.ResponseWriter, r *http.Request, _ string) error {
		f, err := filterFromBody(r)
		if err != nil {
			return err
		}
		v, err := run(app, ctx, f)
		if ae := (caddy.APIError{}); errors.As(err, &ae) && ae.HTTPStatus == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", strconv.Itoa(int(jobRetryAfter/time.Second)))
		}
		return answer(w, http.StatusAccepted)(v, err)
	}
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

func replayJobRoute(_ context.Context, app *App, w http.ResponseWriter, _ *http.Request, job string) error {
	return answer(w, http.StatusOK)(app.replayJob(job))
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

// maxAdminBody bounds the JSON body of any webhooks admin request (a
// filter, a replay's destination, a backup's directory): each is a few
// hundred bytes.
const maxAdminBody = 64 << 10

// readJSONBody decodes an optional JSON body into v: the one reader of a
// webhooks admin request's body (the event log's, the dashboard's and
// backup's endpoints). A body over maxAdminBody is a 413, not cut off.
func readJSONBody(r *http.Request, v any) error {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxAdminBody+1))
	if err != nil {
		return apiError(http.StatusBadRequest, "read the request body: %v", err)
	}
	if len(b) > maxAdminBody {
		return apiError(http.StatusRequestEntityTooLarge, "the request body is over %d bytes; send only the fields %s", maxAdminBody, strings.Join(jsonFields(v), ", "))
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	err = dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("more than one JSON value")
	}
	if err != nil {
		if field, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return apiError(http.StatusBadRequest, "unknown field %s in the body; this endpoint takes %s", field, strings.Join(jsonFields(v), ", "))
		}
		return apiError(http.StatusBadRequest, "the body must be one JSON object with the fields %s: %v", strings.Join(jsonFields(v), ", "), err)
	}
	return nil
}

// jsonFields lists the JSON names of the fields of the struct v points
// to, for an error that says which fields a body may hold.
func jsonFields(v any) []string {
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	var out []string
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); name != "" && name != "-" {
			out = append(out, name)
		}
	}
	return out
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
		if f.Limit, err = strconv.Atoi(fr.Limit); err != nil || f.Limit <= 0 || f.Limit > maxPageLimit {
			return f, apiError(http.StatusBadRequest, "limit %q: give a number from 1 to %d; page on with the cursor for more", fr.Limit, maxPageLimit)
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
