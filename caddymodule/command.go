package caddymodule

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hookgate/hookgate/verify"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "webhooks",
		Usage: "verify|sign|send|destinations|resume|deliveries|backup|restore|events|show|replay|dlq|redrive|status|tail|listen [flags]",
		Short: "Verifies, signs and sends webhook deliveries; shows destinations and delivery states",
		Long: `
Tools for debugging webhook deliveries, using the same signature code as the
webhook_ingest handler.

  caddy webhooks verify   checks a captured delivery (exit 0 valid, 1 invalid, 2 usage)
  caddy webhooks sign     prints the headers a provider would send for a body
  caddy webhooks send     signs a body and POSTs it, printing the response
  caddy webhooks destinations   prints the destinations of a running gateway
  caddy webhooks resume <name>  resumes a destination paused by a 410 or an open circuit
  caddy webhooks deliveries <event id>  prints an event's delivery state at each destination
  caddy webhooks backup <dir>    snapshots a running gateway's events and delivery states
  caddy webhooks restore <dir>   restores such a backup into a running gateway
  caddy webhooks events [filters]   lists stored events (the event log)
  caddy webhooks show <event id>    one event: headers, delivery states, attempts
  caddy webhooks replay <event id>  delivers an event again (or every event a filter selects)
  caddy webhooks dlq                lists dead letters
  caddy webhooks redrive <id>       delivers a dead letter again (--all for many)
  caddy webhooks status             the store, the sources and the destinations at a glance
  caddy webhooks tail [filters]     follows events as they are stored
  caddy webhooks listen --forward-to <url>  forwards live events to a local URL

The body comes from --body-file, or from standard input, byte for byte.
Schemes: ` + strings.Join(verify.Schemes(), ", ") + `.`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.AddCommand(verifyCommand(), signCommand(), sendCommand(), destinationsCommand(), resumeCommand(), deliveriesCommand(), backupCommand(), restoreCommand())
			cmd.AddCommand(eventLogCommands()...) // command_events.go
		},
	})
}

// Exit codes of the webhooks commands.
const (
	exitOK      = 0
	exitInvalid = 1
	exitUsage   = 2
)

func verifyCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "verify --scheme <name> --secret <secret> [--secret <secret>...] [--header 'Name: value'...] [--method M] [--url URL] [--now UNIX_SECONDS] [--tolerance DUR] [--body-file F]",
		Short: "Checks a captured delivery's signature",
		Long: `Checks the signature of a delivery exactly as webhook_ingest would. Give the
headers the provider sent with --header and the body, byte for byte, with
--body-file or on standard input. --now pins the clock so an old capture can
still be checked against its timestamp. Exit status: 0 valid, 1 invalid (the
reason on stderr), 2 usage error.`,
		Example: `  caddy webhooks verify --scheme github --secret "$SECRET" \
    --header "X-Hub-Signature-256: sha256=757107ea..." --body-file payload.json`,
	}
	deliveryCommand(c, cmdVerify)
	c.Flags().Duration("tolerance", 0, "how far the signed timestamp may be from now (default: the scheme's, 5m for most, 8h for mailgun)")
	return c
}

func signCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "sign --scheme <name> --secret <secret> [--header 'Name: value'...] [--method M] [--url URL] [--now UNIX_SECONDS] [--body-file F]",
		Short: "Prints the headers a provider would send for a body",
		Long: `Signs a body the way the provider would and prints the resulting headers, one
"Name: value" per line, ready for curl -H. Headers given with --header (a
delivery id, say) are kept and signed as they are.`,
	}
	return deliveryCommand(c, cmdSign)
}

func sendCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "send --scheme <name> --secret <secret> --url URL [--header 'Name: value'...] [--body-file F]",
		Short: "Signs a body and POSTs it, printing the response",
		Long: `Signs a body the way the provider would and sends it to --url: the quickest way
to test a running gateway. Prints the response status, headers and body; exits
0 on a 2xx answer and 1 otherwise.`,
		Example: `  echo '{"id":"evt_1","type":"invoice.paid"}' | \
    caddy webhooks send --scheme stripe --secret whsec_test --url http://localhost:8080/webhooks/v1/stripe`,
	}
	deliveryCommand(c, cmdSend)
	c.Flags().Duration("timeout", 30*time.Second, "how long to wait for the answer")
	c.Flags().String("content-type", "", "the Content-Type (default: application/json when the body is JSON, as GitHub and Stripe send; none otherwise); a --header Content-Type wins")
	return c
}

// deliveryCommand gives c what the three subcommands share: no positional
// arguments, the delivery flags, run, and exit status 2 for a flag error.
func deliveryCommand(c *cobra.Command, run caddycmd.CommandFunc) *cobra.Command {
	c.Args = cobra.NoArgs
	addDeliveryFlags(c.Flags())
	c.RunE = runCommand(run)
	c.SetFlagErrorFunc(usageError)
	return c
}

func addDeliveryFlags(fs *pflag.FlagSet) {
	fs.String("scheme", "", "signature scheme: "+strings.Join(verify.Schemes(), ", "))
	fs.StringArray("secret", nil, "a secret (or key); repeat for rotation, newest first")
	fs.StringArray("option", nil, "a scheme option as name=value (e.g. header=X-Signature for hmac); repeatable")
	fs.StringArray("header", nil, "a request header as 'Name: value'; repeatable")
	fs.String("method", http.MethodPost, "the request method")
	fs.String("url", "", "the URL the provider posts to (signed by twilio, square, hubspot)")
	fs.Int64("now", 0, "the current time as Unix seconds (default: the real clock)")
	fs.String("body-file", "", "the body, byte for byte (default: standard input)")
}

// usageError makes a flag or argument error exit with status 2, printed
// as plain text like every other error of these commands.
func usageError(c *cobra.Command, err error) error {
	return exit(c, exitUsage, fmt.Errorf("%w (see 'caddy webhooks %s --help')", err, c.Name()))
}

// args makes an argument check of cobra's a usage error (status 2).
func args(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(c *cobra.Command, a []string) error {
		if err := check(c, a); err != nil {
			return usageError(c, err)
		}
		return nil
	}
}

// runCommand adapts a command function to cobra. Unlike
// caddycmd.WrapCommandFuncForCobra, which hands the error to Caddy's
// logger (a JSON log line when stderr is not a terminal, with any JSON in
// the message escaped), the error is printed as one plain line on stderr:
//
//	caddy webhooks resume: no destination "x" in the running config (HTTP 404)
//
// and status is the exit code.
func runCommand(f caddycmd.CommandFunc) func(*cobra.Command, []string) error {
	return func(c *cobra.Command, _ []string) error {
		status, err := f(caddycmd.Flags{FlagSet: c.Flags()})
		return exit(c, status, err)
	}
}

// exit prints err (if any) as "<command path>: <err>" on c's stderr and
// returns what makes caddycmd.Main exit with status.
func exit(c *cobra.Command, status int, err error) error {
	if err != nil {
		fmt.Fprintf(c.ErrOrStderr(), "%s: %v\n", c.CommandPath(), err)
	}
	if status == exitOK {
		return nil
	}
	// Printed above: cobra must not print it again.
	c.SilenceErrors = true
	if status == 1 {
		// Main exits 1 on any error it does not know.
		return errors.New(c.CommandPath() + " failed")
	}
	// Main exits with a status above 1 only for caddycmd's own
	// (unexported) exit error, which this returns without logging
	// anything since the function it wraps returns no error.
	return caddycmd.WrapCommandFuncForCobra(func(caddycmd.Flags) (int, error) { return status, nil })(c, nil)
}

// delivery is what the flags describe: a config and a request.
type delivery struct {
	cfg verify.Config
	req *verify.Request
}

// readDelivery turns the flags into a verify config and request.
func readDelivery(fl caddycmd.Flags, stdin io.Reader) (*delivery, error) {
	d := &delivery{req: &verify.Request{Header: http.Header{}}}
	d.cfg.Scheme = fl.String("scheme")
	if d.cfg.Scheme == "" {
		return nil, errors.New("--scheme is required")
	}
	d.cfg.Secrets, _ = fl.GetStringArray("secret")
	opts, _ := fl.GetStringArray("option")
	for _, o := range opts {
		k, v, ok := strings.Cut(o, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--option %q: want name=value", o)
		}
		if d.cfg.Options == nil {
			d.cfg.Options = map[string]string{}
		}
		d.cfg.Options[k] = v
	}
	if fl.Lookup("tolerance") != nil {
		d.cfg.Tolerance = fl.Duration("tolerance")
	}
	hdrs, _ := fl.GetStringArray("header")
	for _, h := range hdrs {
		k, v, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("--header %q: want 'Name: value'", h)
		}
		d.req.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	d.req.Method = fl.String("method")
	if raw := fl.String("url"); raw != "" {
		u, err := url.Parse(raw)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("--url %q: want an absolute URL", raw)
		}
		d.req.URL = u
	}
	if now, _ := fl.GetInt64("now"); now != 0 {
		d.req.Now = time.Unix(now, 0)
	}
	var err error
	if f := fl.String("body-file"); f != "" {
		d.req.Body, err = os.ReadFile(f)
	} else {
		d.req.Body, err = io.ReadAll(stdin)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the body: %w", err)
	}
	return d, nil
}

func cmdVerify(fl caddycmd.Flags) (int, error) {
	d, err := readDelivery(fl, os.Stdin)
	if err != nil {
		return exitUsage, err
	}
	v, err := verify.New(d.cfg)
	if err != nil {
		return exitUsage, err
	}
	res, err := v.Verify(d.req)
	if err != nil {
		return exitInvalid, fmt.Errorf("invalid: %w", err)
	}
	fmt.Printf("valid: scheme %s, delivery id %q, type %q\n", d.cfg.Scheme, res.ID, res.Type)
	return exitOK, nil
}

// sign signs d.req in place.
func (d *delivery) sign() error {
	s, err := verify.NewSigner(d.cfg)
	if err != nil {
		return err
	}
	return s.Sign(d.req)
}

func cmdSign(fl caddycmd.Flags) (int, error) {
	d, err := readDelivery(fl, os.Stdin)
	if err != nil {
		return exitUsage, err
	}
	body := bytes.Clone(d.req.Body)
	if err := d.sign(); err != nil {
		return exitUsage, err
	}
	writeHeaders(os.Stdout, d.req.Header)
	if d.req.URL != nil && d.req.URL.String() != fl.String("url") {
		fmt.Fprintf(os.Stderr, "note: the scheme signs this URL: %s\n", d.req.URL)
	}
	if !bytes.Equal(body, d.req.Body) {
		fmt.Fprintf(os.Stderr, "note: the scheme carries its signature in the body; the signed body is:\n%s\n", d.req.Body)
	}
	return exitOK, nil
}

func cmdSend(fl caddycmd.Flags) (int, error) {
	d, err := readDelivery(fl, os.Stdin)
	if err != nil {
		return exitUsage, err
	}
	if d.req.URL == nil {
		return exitUsage, errors.New("--url is required")
	}
	setContentType(d.req, fl.String("content-type"))
	if err := d.sign(); err != nil {
		return exitUsage, err
	}
	req, err := http.NewRequest(d.req.Method, d.req.URL.String(), bytes.NewReader(d.req.Body))
	if err != nil {
		return exitUsage, err
	}
	req.Header = d.req.Header
	client := &http.Client{
		Timeout: fl.Duration("timeout"),
		// Show a redirect instead of following it: providers never do.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		return exitInvalid, fmt.Errorf("no answer: %w", err)
	}
	defer resp.Body.Close()
	fmt.Println(resp.Proto, resp.Status)
	writeHeaders(os.Stdout, resp.Header)
	fmt.Println()
	if _, err := io.Copy(os.Stdout, io.LimitReader(resp.Body, 1<<20)); err != nil {
		return exitInvalid, err
	}
	fmt.Println()
	if resp.StatusCode/100 != 2 {
		return exitInvalid, fmt.Errorf("the gateway answered %s", resp.Status)
	}
	return exitOK, nil
}

// setContentType gives req the Content-Type a provider would send unless
// a --header set one: ct when given, else application/json for a JSON
// body.
func setContentType(req *verify.Request, ct string) {
	if req.Header.Get("Content-Type") != "" {
		return
	}
	if ct == "" && len(bytes.TrimSpace(req.Body)) > 0 && json.Valid(req.Body) {
		ct = "application/json"
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
}

func writeHeaders(w io.Writer, h http.Header) {
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		for _, v := range h[k] {
			fmt.Fprintf(w, "%s: %s\n", k, v)
		}
	}
}
