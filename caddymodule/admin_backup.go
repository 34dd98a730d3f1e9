package caddymodule

import (
	"context"
	"net/http"
	"path/filepath"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/hookgate/hookgate/event"
)

func init() {
	caddy.RegisterModule(adminBackupAPI{})
}

// adminBackupAPI serves backup and restore on Caddy's admin API:
//
//	POST /webhooks/backup   {"dir": "/abs/path"}                  snapshot the store into dir
//	POST /webhooks/restore  {"dir": "/abs/path", "force": false}  replace the store with a backup
//
// The directory is on the gateway's host: the admin API may already load
// any config, so writing files there grants nothing new. Both answer the
// backup's manifest (backup.json). After a restore the forwarders are
// stopped; a config reload (caddy reload --force, which caddy webhooks
// restore does) starts them again on the restored consumers.
type adminBackupAPI struct{}

// CaddyModule returns the Caddy module information.
func (adminBackupAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.webhooks_backup",
		New: func() caddy.Module { return new(adminBackupAPI) },
	}
}

// Routes returns the backup and restore routes. They are more specific
// than admin.api.webhooks' prefix, so the admin mux sends them here.
func (a adminBackupAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: adminPrefix + "backup", Handler: caddy.AdminHandlerFunc(a.backup)},
		{Pattern: adminPrefix + "restore", Handler: caddy.AdminHandlerFunc(a.restore)},
	}
}

// backupTimeout bounds one backup or restore.
const backupTimeout = 30 * time.Minute

// backupRequest is the body of both endpoints.
type backupRequest struct {
	// Dir is an absolute directory on the gateway's host.
	Dir string `json:"dir"`
	// Force lets a restore replace a WEBHOOKS stream that holds events.
	Force bool `json:"force,omitempty"`
}

func (a adminBackupAPI) backup(w http.ResponseWriter, r *http.Request) error {
	req, e, err := a.begin(w, r)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), backupTimeout)
	defer cancel()
	start := time.Now()
	m, err := backupStore(ctx, e.nc, req.Dir)
	if err != nil {
		e.log.Error("backup failed", zap.String("dir", req.Dir), zap.Error(err))
		return apiError(http.StatusInternalServerError, "backup: %v", err)
	}
	e.log.Info("backup written", zap.String("dir", req.Dir), zap.Duration("took", time.Since(start)))
	return writeJSON(w, m)
}

func (a adminBackupAPI) restore(w http.ResponseWriter, r *http.Request) error {
	req, e, err := a.begin(w, r)
	if err != nil {
		return err
	}
	if _, err := readBackupManifest(req.Dir); err != nil {
		return apiError(http.StatusBadRequest, "restore: %v", err)
	}
	ctx, cancel := context.WithTimeout(r.Context(), backupTimeout)
	defer cancel()
	if !req.Force {
		if s, err := e.js.Stream(ctx, event.StreamName); err == nil && s.CachedInfo().State.Msgs > 0 {
			return apiError(http.StatusConflict, "restore: stream %s holds %d events that the restore would replace; restore into an empty store, or pass --force", event.StreamName, s.CachedInfo().State.Msgs)
		}
	}
	app, err := runningApp()
	if err != nil {
		return err
	}
	// The forwarders' consumers live in WEBHOOKS, which is replaced.
	app.stopForwarders()
	m, err := restoreStore(ctx, e.nc, req.Dir)
	if err != nil {
		e.log.Error("restore failed", zap.String("dir", req.Dir), zap.Error(err))
		return apiError(http.StatusInternalServerError, "restore: %v (forwarders are stopped: fix the cause, restore again, then caddy reload --force)", err)
	}
	e.log.Info("store restored from backup; forwarders stopped until the next config reload", zap.String("dir", req.Dir))
	return writeJSON(w, m)
}

// begin checks the method, reads the request and finds the running store.
func (a adminBackupAPI) begin(w http.ResponseWriter, r *http.Request) (*backupRequest, *engine, error) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return nil, nil, apiError(http.StatusMethodNotAllowed, "%s %s: use POST", r.Method, r.URL.Path)
	}
	var req backupRequest
	if err := readJSONBody(r, &req); err != nil {
		return nil, nil, err
	}
	if !filepath.IsAbs(req.Dir) {
		return nil, nil, apiError(http.StatusBadRequest, "dir %q: give an absolute path on the gateway's host", req.Dir)
	}
	app, err := runningApp()
	if err != nil {
		return nil, nil, err
	}
	e := app.runningEngine()
	if e == nil {
		return nil, nil, apiError(http.StatusServiceUnavailable, "the event store is not running")
	}
	return &req, e, nil
}

// Interface guard.
var _ caddy.AdminRouter = adminBackupAPI{}
