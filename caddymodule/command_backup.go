package caddymodule

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
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
// directory to /webhooks/<op>; a restore then forces a config reload.
func backupRestoreCommand(c *cobra.Command, op string) *cobra.Command {
	c.Flags().String("address", "", "the admin API's address (default localhost:2019)")
	c.SetFlagErrorFunc(usageError)
	c.RunE = caddycmd.WrapCommandFuncForCobra(func(fl caddycmd.Flags) (int, error) {
		addr, err := caddycmd.DetermineAdminAPIAddress(fl.String("address"), nil, "", "")
		if err != nil {
			return exitUsage, err
		}
		dir, err := filepath.Abs(fl.Arg(0))
		if err != nil {
			return exitUsage, err
		}
		req := backupRequest{Dir: dir}
		if op == "restore" {
			req.Force = fl.Bool("force")
		}
		body, _ := json.Marshal(req)
		hdr := http.Header{"Content-Type": {"application/json"}}
		resp, err := caddycmd.AdminAPIRequest(addr, http.MethodPost, "/webhooks/"+op, hdr, bytes.NewReader(body))
		if err != nil {
			return exitInvalid, err
		}
		defer resp.Body.Close()
		if _, err := io.Copy(os.Stdout, resp.Body); err != nil {
			return exitInvalid, fmt.Errorf("reading the answer: %w", err)
		}
		if op == "restore" {
			if err := forceReload(addr); err != nil {
				return exitInvalid, fmt.Errorf("restored, but the forwarders stay stopped until a reload: %w; run caddy reload --force", err)
			}
		}
		return exitOK, nil
	})
	return c
}

// forceReload loads the running config again, as caddy reload --force does,
// so the webhooks app restarts its forwarders.
func forceReload(addr string) error {
	resp, err := caddycmd.AdminAPIRequest(addr, http.MethodGet, "/config/", nil, nil)
	if err != nil {
		return err
	}
	cfg, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	hdr := http.Header{"Content-Type": {"application/json"}, "Cache-Control": {"must-revalidate"}}
	resp, err = caddycmd.AdminAPIRequest(addr, http.MethodPost, "/load", hdr, bytes.NewReader(cfg))
	if err != nil {
		return err
	}
	return resp.Body.Close()
}
