package caddymodule

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

// The backup and restore subcommands: the running gateway does the work
// (admin.api.webhooks_backup), so a backup is consistent while ingest runs.

func backupCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "backup <dir> [--address <admin address>]",
		Short: "Backs up a running gateway's events, dead letters and delivery states",
		Long: `Asks the running gateway's admin API (POST /webhooks/backup) to snapshot the
WEBHOOKS stream with its consumers, the WEBHOOKS_DLQ stream and the delivery
state bucket into <dir>, a new or empty directory on the gateway's host. Ingest
and forwarding go on meanwhile. Prints the backup's manifest (backup.json).`,
		Example: `  caddy webhooks backup /var/backups/hookgate/2026-11-30`,
		Args:    cobra.ExactArgs(1),
	}
	return backupRestoreCommand(c, "backup")
}

func restoreCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "restore <dir> [--force] [--address <admin address>]",
		Short: "Restores a backup into a running gateway",
		Long: `Asks the running gateway's admin API (POST /webhooks/restore) to replace its
streams and delivery states with the backup in <dir>, then reloads the config
(as caddy reload --force does) so the forwarders resume from the restored
consumers: what had been delivered when the backup was taken is not delivered
again. Refuses when the gateway already holds events, unless --force.`,
		Example: `  caddy webhooks restore /var/backups/hookgate/2026-11-30`,
		Args:    cobra.ExactArgs(1),
	}
	c.Flags().Bool("force", false, "replace the events the gateway holds now")
	return backupRestoreCommand(c, "restore")
}

// backupRestoreCommand gives c an --address flag and a run that posts the
// directory to /webhooks/<op> and prints the manifest; a restore then
// forces a config reload. Exit 0 on success, 1 when the gateway refused or
// could not be reached, 2 on a usage error.
func backupRestoreCommand(c *cobra.Command, op string) *cobra.Command {
	return adminRun(c, func(fl caddycmd.Flags) (int, error) {
		dir, err := filepath.Abs(fl.Arg(0))
		if err != nil {
			return exitUsage, err
		}
		req := backupRequest{Dir: dir}
		if op == "restore" {
			req.Force = fl.Bool("force")
		}
		body, _ := json.Marshal(req)
		if code, err := printAdminAnswer(fl, http.MethodPost, "/webhooks/"+op, bytes.NewReader(body)); err != nil {
			return code, err
		}
		if op == "restore" {
			if err := forceReload(fl); err != nil {
				return exitInvalid, fmt.Errorf("restored, but the forwarders stay stopped until a reload: %w; run caddy reload --force", err)
			}
		}
		return exitOK, nil
	})
}

// forceReload loads the running config again, as caddy reload --force does,
// so the webhooks app starts its forwarders anew.
func forceReload(fl caddycmd.Flags) error {
	resp, err := adminRequest(fl, http.MethodGet, "/config/", nil)
	if err != nil {
		return err
	}
	cfg, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	addr, err := caddycmd.DetermineAdminAPIAddress(fl.String("address"), nil, "", "")
	if err != nil {
		return err
	}
	// /load needs a content type, and must-revalidate forces the reload
	// of an unchanged config (caddy reload --force sends the same).
	hdr := http.Header{"Content-Type": {"application/json"}, "Cache-Control": {"must-revalidate"}}
	resp, err = caddycmd.AdminAPIRequest(addr, http.MethodPost, "/load", hdr, bytes.NewReader(cfg))
	if err != nil {
		return plainAdminError(addr, err)
	}
	return resp.Body.Close()
}
