package caddymodule

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

// The subcommands that talk to a running gateway through Caddy's admin API.

func destinationsCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "destinations [--address <admin address>]",
		Short: "Prints the status of every destination of a running gateway",
		Long: `Asks the running gateway's admin API (GET /webhooks/destinations) for each
destination's circuit, pause and consumer counts, and prints the JSON.`,
		Args: cobra.NoArgs,
	}
	return adminCommand(c, func(fl caddycmd.Flags) (string, string) {
		return http.MethodGet, "/webhooks/destinations"
	})
}

func resumeCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "resume <destination> [--address <admin address>]",
		Short: "Resumes a destination paused by a 410 or an open circuit",
		Long: `Asks the running gateway's admin API (POST
/webhooks/destinations/<name>/resume) to lift the destination's pause and close
its circuit, then prints the destination's status.`,
		Example: `  caddy webhooks resume orders`,
		Args:    cobra.ExactArgs(1),
	}
	return adminCommand(c, func(fl caddycmd.Flags) (string, string) {
		return http.MethodPost, "/webhooks/destinations/" + url.PathEscape(fl.Arg(0)) + "/resume"
	})
}

func deliveriesCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "deliveries <event id> [--address <admin address>]",
		Short: "Prints an event's delivery state at each destination",
		Long: `Asks the running gateway's admin API (GET /webhooks/deliveries/<event id>)
for the event's delivery state at every destination it matches: status,
attempts, next retry, last status code and error, and prints the JSON. The
event id is the one the gateway answered the provider with, <source>:<id>.`,
		Example: `  caddy webhooks deliveries stripe:evt_1Q2w3E`,
		Args:    cobra.ExactArgs(1),
	}
	return adminCommand(c, func(fl caddycmd.Flags) (string, string) {
		return http.MethodGet, "/webhooks/deliveries/" + url.PathEscape(fl.Arg(0))
	})
}

// adminCommand gives c an --address flag and a run that makes the request
// route returns and prints the answer: exit 0 on success, 1 when the
// gateway refused or could not be reached, 2 on a usage error.
func adminCommand(c *cobra.Command, route func(caddycmd.Flags) (method, path string)) *cobra.Command {
	return adminRun(c, func(fl caddycmd.Flags) (int, error) {
		method, path := route(fl)
		return printAdminAnswer(fl, method, path, nil)
	})
}

// adminRun gives c an --address flag, usage errors (exit 2) for bad flags
// and arguments, and run as what it does; run returns the exit status.
func adminRun(c *cobra.Command, run func(caddycmd.Flags) (int, error)) *cobra.Command {
	addAddressFlag(c)
	c.SetFlagErrorFunc(usageError)
	if c.Args != nil {
		c.Args = args(c.Args)
	}
	c.RunE = runCommand(run)
	return c
}

// printAdminAnswer makes one request with adminRequest and copies the
// answer to stdout: exit 0, or 1 when the gateway refused, could not be
// reached, or the answer could not be read.
func printAdminAnswer(fl caddycmd.Flags, method, path string, body io.Reader) (int, error) {
	resp, err := adminRequest(fl, method, path, body)
	if err != nil {
		return exitInvalid, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(os.Stdout, resp.Body); err != nil {
		return exitInvalid, fmt.Errorf("reading the answer: %w", err)
	}
	return exitOK, nil
}

// addAddressFlag gives c the --address flag that adminRequest reads.
func addAddressFlag(c *cobra.Command) {
	c.Flags().String("address", "", "the admin API's address (default localhost:2019)")
}

// adminRequest makes one request to the admin API at --address (Caddy's
// default when empty) and returns the answer when its status is below 400.
// Its errors read as plain sentences: the admin API's own message with
// the status, or that the gateway could not be reached and what to do.
func adminRequest(fl caddycmd.Flags, method, path string, body io.Reader) (*http.Response, error) {
	addr, err := caddycmd.DetermineAdminAPIAddress(fl.String("address"), nil, "", "")
	if err != nil {
		return nil, err
	}
	resp, err := caddycmd.AdminAPIRequest(addr, method, path, nil, body)
	if err != nil {
		return nil, plainAdminError(addr, err)
	}
	return resp, nil
}

// caddyAPIError matches the error caddycmd.AdminAPIRequest returns for a
// status of 400 or more (caddy v2.11.9, cmd/commandfuncs.go); the body is
// the admin API's JSON error, {"error": "..."}.
var caddyAPIError = regexp.MustCompile(`(?s)^caddy responded with error: HTTP (\d+): (.*)$`)

// plainAdminError rewrites an error of caddycmd.AdminAPIRequest, which
// quotes the admin API's JSON answer or the HTTP client's error, as a
// sentence: `no destination "x" in the running config (HTTP 404)`.
func plainAdminError(addr string, err error) error {
	m := caddyAPIError.FindStringSubmatch(err.Error())
	if m == nil {
		// Not an answer: the request did not get through.
		cause := err.Error()
		if i := strings.LastIndex(cause, ": "); i >= 0 {
			cause = cause[i+2:]
		}
		return fmt.Errorf("the admin API is not reachable at %s (%s): is the gateway running? Give its admin address with --address", addr, cause)
	}
	var answer struct {
		Error string `json:"error"`
	}
	msg := strings.TrimSpace(m[2])
	if json.Unmarshal([]byte(msg), &answer) == nil && answer.Error != "" {
		msg = answer.Error
	}
	return fmt.Errorf("%s (HTTP %s)", msg, m[1])
}
