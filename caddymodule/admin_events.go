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
// Event ids may hold '/': everything after /webhooks/events/ is the id,
// except a trailing /replay on a POST.

// serveEventLog answers the event log's paths; handled is false for any
// other path, which admin.go serves.
func (adminAPI) serveEventLog(w http.ResponseWriter, r *http.Request) (handled bool, err error) {
	rest := strings.TrimPrefix(r.URL.Path, adminPrefix)
	head, tail, _ := strings.Cut(rest, "/")
	var h func(context.Context, *App, http.ResponseWriter, *http.Request, string) error
	switch head {
	case "events":
		h = routeEvents
	case "replay":
		h = routeReplay
	case "dlq":
		h = routeDLQ
	case "status":
		if tail != "" {
			return false, nil
		}
		h = routeStatus
	default:
		return false, nil
	}
	app, err := runningApp()
	if err != nil {
		return true, err
	}
	ctx, cancel := context.WithTimeout(r.Context(), adminTimeout)
	defer cancel()
	return true, h(ctx, app, w, r, tail)
}

// allow answers 405 unless r's method is one of methods.
func allow(w http.ResponseWriter, r *http.Request, methods ...string) error {
	for _, m := range methods {
		if r.Method == m {
			return nil
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	return apiError(http.StatusMethodNotAllowed, "%s %s: use %s", r.Method, r.URL.Path, strings.Join(methods, " or "))
}

func routeEvents(ctx context.Context, app *App, w http.ResponseWriter, r *http.Request, id string) error {
	if id == "" {
		if err := allow(w, r, http.MethodGet); err != nil {
			return err
		}
		f, err := filterFromQuery(r.URL.Query())
		if err != nil {
			return err
		}
		return answer(w, http.StatusOK)(app.listEvents(ctx, f))
	}
	if r.Method == http.MethodPost {
		id, ok := strings.CutSuffix(id, "/replay")
		if !ok {
			return apiError(http.StatusNotFound, "POST /webhooks/events/<id>/replay replays an event; nothing else is posted here")
		}
		var body struct {
			Destination string `json:"destination"`
		}
		if err := readJSONBody(r, &body); err != nil {
			return err
		}
		return answer(w, http.StatusAccepted)(app.replayEvent(ctx, id, body.Destination))
	}
	if err := allow(w, r, http.MethodGet, http.MethodPost); err != nil {
		return err
	}
	return answer(w, http.StatusOK)(app.getEvent(ctx, id, wantBody(r)))
}

func routeReplay(ctx context.Context, app *App, w http.ResponseWriter, r *http.Request, job string) error {
	if job != "" {
		if err := allow(w, r, http.MethodGet); err != nil {
			return err
		}
		return answer(w, http.StatusOK)(app.replayJob(job))
	}
	if err := allow(w, r, http.MethodPost); err != nil {
		return err
	}
	f, err := filterFromBody(r)
	if err != nil {
		return err
	}
	return answer(w, http.StatusAccepted)(app.startReplay(ctx, f))
}

func routeDLQ(ctx context.Context, app *App, w http.ResponseWriter, r *http.Request, rest string) error {
	switch {
	case rest == "":
		if err := allow(w, r, http.MethodGet); err != nil {
			return err
		}
		f, err := filterFromQuery(r.URL.Query())
		if err != nil {
			return err
		}
		return answer(w, http.StatusOK)(app.listDLQ(ctx, f))
	case rest == "redrive":
		if err := allow(w, r, http.MethodPost); err != nil {
			return err
		}
		f, err := filterFromBody(r)
		if err != nil {
			return err
		}
		return answer(w, http.StatusAccepted)(app.redriveAll(ctx, f))
	case strings.HasSuffix(rest, "/redrive"):
		if err := allow(w, r, http.MethodPost); err != nil {
			return err
		}
		return answer(w, http.StatusAccepted)(app.redrive(ctx, strings.TrimSuffix(rest, "/redrive")))
	case strings.Contains(rest, "/"):
		return apiError(http.StatusNotFound, "no such path %s: see GET /webhooks/dlq", r.URL.Path)
	}
	if err := allow(w, r, http.MethodGet, http.MethodDelete); err != nil {
		return err
	}
	if r.Method == http.MethodDelete {
		if err := app.deleteDLQ(ctx, rest); err != nil {
			return err
		}
		return writeJSON(w, map[string]any{"id": rest, "deleted": true})
	}
	return answer(w, http.StatusOK)(app.getDLQ(ctx, rest, wantBody(r)))
}

func routeStatus(ctx context.Context, app *App, w http.ResponseWriter, r *http.Request, _ string) error {
	if err := allow(w, r, http.MethodGet); err != nil {
		return err
	}
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
