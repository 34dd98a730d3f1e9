package caddymodule

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(Dashboard{})
	httpcaddyfile.RegisterHandlerDirective("webhook_dashboard", parseDashboard)
	// Like webhook_ingest: before the handlers that respond, so that it
	// works in a site block without a route block.
	httpcaddyfile.RegisterDirectiveOrder("webhook_dashboard", httpcaddyfile.Before, "abort")
}

//go:embed dashboard
var dashboardFiles embed.FS

// Dashboard serves the event log's web page and the JSON endpoints it
// reads, under the route the user mounts it on:
//
//	GET    <route>/                          the page (dashboard/index.html)
//	GET    <route>/api/events?<filters>      as GET /webhooks/events on the admin API
//	GET    <route>/api/events/<id>[?body=1]
//	POST   <route>/api/events/<id>/replay    {"destination": "<name>"} (optional)
//	POST   <route>/api/replay                a filter; a background job
//	GET    <route>/api/replay/<job>
//	GET    <route>/api/dlq?<filters>
//	GET    <route>/api/dlq/<id>[?body=1]
//	POST   <route>/api/dlq/<id>/redrive
//	POST   <route>/api/dlq/redrive           a filter; a background job
//	DELETE <route>/api/dlq/<id>
//	GET    <route>/api/status
//
// The endpoints answer what the admin API answers, through the same
// functions, so the page works when Caddy's admin endpoint is off or on
// another host. The handler does no authentication of its own: mount it on
// a route protected by basic_auth or forward_auth, never on the webhook
// listener. Every POST and DELETE must come from the page itself: its
// Origin must be the dashboard's own (or Sec-Fetch-Site same-origin), and
// it must carry the page's CSRF token in X-CSRF-Token, equal to the
// hookgate_csrf cookie the page was served with; otherwise 403.
type Dashboard struct {
	app    *App
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Dashboard) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.webhook_dashboard",
		New: func() caddy.Module { return new(Dashboard) },
	}
}

// Provision finds the webhooks app whose events the page shows.
func (d *Dashboard) Provision(ctx caddy.Context) error {
	d.logger = ctx.Logger()
	app, err := ctx.App("webhooks")
	if err != nil {
		return fmt.Errorf("webhooks app: %w", err)
	}
	d.app = app.(*App)
	return nil
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	webhook_dashboard [<matcher>]
//
// It has no options. Mount it on a route of its own, behind basic_auth
// or forward_auth; see the README.
func (d *Dashboard) UnmarshalCaddyfile(disp *caddyfile.Dispenser) error {
	disp.Next() // the directive name
	if disp.NextArg() {
		return disp.ArgErr()
	}
	if disp.NextBlock(0) {
		return disp.Errf("webhook_dashboard takes no options; protect its route with basic_auth or forward_auth")
	}
	return nil
}

func parseDashboard(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	d := new(Dashboard)
	return d, d.UnmarshalCaddyfile(h.Dispenser)
}

// csrfCookie holds the token the page sends back in csrfHeader.
const (
	csrfCookie = "hookgate_csrf"
	csrfHeader = "X-CSRF-Token"
)

// ServeHTTP serves the page or one of its JSON endpoints; it never calls
// next.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	// The first "/api/" starts the endpoints: the route must not hold one.
	_, rest, isAPI := strings.Cut(r.URL.Path, "/api/")
	if !isAPI {
		return d.servePage(w, r)
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		if err := checkSameOrigin(r); err != nil {
			d.logger.Warn("dashboard request refused", zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.String("remote_ip", r.RemoteAddr), zap.Error(err))
			return writeDashboardError(w, apiError(http.StatusForbidden, "%v", err))
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	ctx, cancel := context.WithTimeout(r.Context(), adminTimeout)
	defer cancel()
	if err := d.serveAPI(ctx, w, r, rest); err != nil {
		return writeDashboardError(w, err)
	}
	return nil
}

// serveAPI answers one JSON endpoint with the admin API's own routes.
func (d *Dashboard) serveAPI(ctx context.Context, w http.ResponseWriter, r *http.Request, rest string) error {
	return serveEventLogPath(ctx, d.app, w, r, rest)
}

// servePage serves the page with a CSRF token of its own: the token is in
// the page and in a cookie, and state-changing requests must carry both.
// A path without a trailing slash is redirected to one, so that the page's
// relative URLs (api/...) stay under the route.
func (d *Dashboard) servePage(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return writeDashboardError(w, apiError(http.StatusMethodNotAllowed, "%s: the page is read with GET", r.Method))
	}
	// The path as the browser sent it, before handle_path stripped it.
	path := r.URL.Path
	if orig, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok {
		path = orig.URL.Path
	}
	if !strings.HasSuffix(path, "/") {
		u := url.URL{Path: path + "/", RawQuery: r.URL.RawQuery}
		http.Redirect(w, r, u.String(), http.StatusFound)
		return nil
	}
	token := ""
	if c, err := r.Cookie(csrfCookie); err == nil && validToken(c.Value) {
		token = c.Value
	} else {
		token = newToken()
		http.SetCookie(w, &http.Cookie{
			Name: csrfCookie, Value: token, Path: path,
			HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
		})
	}
	page, err := dashboardFiles.ReadFile("dashboard/index.html")
	if err != nil {
		return err
	}
	nonce := newToken()
	page = bytes.Replace(page, []byte("{{csrf_token}}"), []byte(html.EscapeString(token)), 1)
	page = bytes.Replace(page, []byte("{{nonce}}"), []byte(nonce), 1)
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	// Everything the page needs is in the page: nothing from elsewhere,
	// and no other site may frame it.
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'nonce-"+nonce+"'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	_, err = w.Write(page)
	return err
}

// newToken returns 32 random bytes, base64url.
func newToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand, Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// validToken reports whether s has the shape newToken gives.
func validToken(s string) bool {
	b, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil && len(b) == 32
}

// checkSameOrigin refuses a state-changing request that does not come
// from the dashboard's own page: the browser's Origin (or, without one,
// Sec-Fetch-Site) must say same origin, and the X-CSRF-Token header must
// equal the hookgate_csrf cookie.
func checkSameOrigin(r *http.Request) error {
	if origin := r.Header.Get("Origin"); origin != "" {
		u, err := url.Parse(origin)
		if err != nil || !strings.EqualFold(u.Host, r.Host) {
			return fmt.Errorf("cross-origin request from %q refused: use the dashboard page at %s", origin, r.Host)
		}
	} else if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return fmt.Errorf("cross-site request (Sec-Fetch-Site: %s) refused", site)
	}
	c, err := r.Cookie(csrfCookie)
	token := r.Header.Get(csrfHeader)
	if err != nil || token == "" || subtle.ConstantTimeCompare([]byte(c.Value), []byte(token)) != 1 {
		return errors.New("missing or wrong CSRF token: reload the dashboard page")
	}
	return nil
}

// writeDashboardError answers err as the admin API would: its status and
// {"error": "..."}.
func writeDashboardError(w http.ResponseWriter, err error) error {
	status, msg := http.StatusInternalServerError, err.Error()
	var ae caddy.APIError
	if errors.As(err, &ae) {
		status = ae.HTTPStatus
		if ae.Err != nil {
			msg = ae.Err.Error()
		} else if ae.Message != "" {
			msg = ae.Message
		}
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Dashboard)(nil)
	_ caddyhttp.MiddlewareHandler = (*Dashboard)(nil)
	_ caddyfile.Unmarshaler       = (*Dashboard)(nil)
)
