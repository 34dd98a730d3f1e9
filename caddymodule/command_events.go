package caddymodule

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hookgate/hookgate/event"
	"github.com/hookgate/hookgate/forwarder"
)

// The event log's subcommands: caddy webhooks events, show, replay, dlq,
// redrive, status, tail and listen. Each talks to a running gateway's
// admin API (--address, as Caddy's own commands), prints an aligned table
// by default and the API's JSON with --json, and exits 1 with a plain
// message when the gateway cannot be reached or refuses.

// eventLogCommands returns the event log's subcommands for command.go.
func eventLogCommands() []*cobra.Command {
	return []*cobra.Command{eventsCommand(), showCommand(), replayCommand(), dlqCommand(),
		redriveCommand(), statusCommand(), tailCommand(), listenCommand()}
}

// filterFlags are the flags that select events.
var filterFlags = []struct{ name, usage string }{
	{"source", "only events of this source (stripe)"},
	{"version", "only events posted to this version (v1)"},
	{"type", "only events of this type (invoice.paid)"},
	{"destination", "only events this destination takes; with --status, the status there"},
	{"status", "pending, delivering, retrying, delivered, failed or filtered"},
	{"since", "stored since: RFC 3339 or a duration back from now (1h)"},
	{"until", "stored before: RFC 3339 or a duration back from now"},
}

// addFilterFlags adds the filter flags of the given names, or all of
// them when none is given.
func addFilterFlags(fs *pflag.FlagSet, names ...string) {
	for _, f := range filterFlags {
		if len(names) == 0 || slices.Contains(names, f.name) {
			fs.String(f.name, "", f.usage)
		}
	}
}

// qUsage is the --q flag's help: the admin API's q filter.
const qUsage = "an event id or the provider's delivery id"

// redriveFilters are the filters 'dlq' and 'redrive --all' send (GET
// /webhooks/dlq, POST /webhooks/dlq/redrive).
var redriveFilters = []string{"destination", "source", "version", "type", "since", "until", "q"}

// addDLQFilterFlags adds the flags of redriveFilters, worded for dead
// letters: a dead letter has no delivery status, and since is the time it
// was dead-lettered.
func addDLQFilterFlags(fs *pflag.FlagSet) {
	fs.String("destination", "", "only this destination's dead letters")
	addFilterFlags(fs, "source", "version", "type", "until")
	fs.String("since", "", "dead-lettered since: RFC 3339 or a duration back from now (1h)")
	fs.String("q", "", qUsage)
}

// filterValues returns the filter flags that were given.
func filterValues(fl caddycmd.Flags) url.Values {
	v := url.Values{}
	for _, f := range filterFlags {
		if s := fl.String(f.name); s != "" {
			v.Set(f.name, s)
		}
	}
	return v
}

// pageQuery adds to q the string flags named keys that were given and
// --limit when positive, the query of a list page, and returns q.
func pageQuery(q url.Values, fl caddycmd.Flags, keys ...string) url.Values {
	for _, k := range keys {
		if v := fl.String(k); v != "" {
			q.Set(k, v)
		}
	}
	if n := fl.Int("limit"); n > 0 {
		q.Set("limit", strconv.Itoa(n))
	}
	return q
}

// eventLogCommand gives c the common flags (--address, --json) and a run.
func eventLogCommand(c *cobra.Command, run func(*client, caddycmd.Flags) error) *cobra.Command {
	addAddressFlag(c)
	c.Flags().Bool("json", false, "print the admin API's JSON instead of a table")
	c.SetFlagErrorFunc(usageError)
	if c.Args != nil {
		c.Args = args(c.Args) // a wrong argument count is a usage error (exit 2), as for the other commands
	}
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		code, err := runEventLog(flagsOf(cmd), run)
		return exit(cmd, code, err) // command.go: one plain line on stderr
	}
	return c
}

// flagsOf wraps a command's flags the way Caddy's commands read them.
func flagsOf(cmd *cobra.Command) caddycmd.Flags { return caddycmd.Flags{FlagSet: cmd.Flags()} }

// runEventLog runs an event log command and returns its exit status.
func runEventLog(fl caddycmd.Flags, run func(*client, caddycmd.Flags) error) (int, error) {
	addr, err := caddycmd.DetermineAdminAPIAddress(fl.String("address"), nil, "", "")
	if err != nil {
		return exitUsage, err
	}
	cl := &client{addr: addr, json: fl.Bool("json"), out: os.Stdout}
	if err := run(cl, fl); err != nil {
		var ue usageErr
		if errors.As(err, &ue) {
			return exitUsage, err
		}
		return exitInvalid, err
	}
	return exitOK, nil
}

// usageErr marks a usage mistake (exit status 2).
type usageErr struct{ error }

// client talks to the admin API.
type client struct {
	addr string
	json bool
	out  io.Writer
}

// call makes one request and returns the answer's body. A refused request
// returns the API's message as plain text.
func (c *client) call(method, path string, body any) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	resp, err := caddycmd.AdminAPIRequest(c.addr, method, path, nil, rd)
	if err != nil {
		return nil, plainAdminError(c.addr, err) // command_admin.go
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("reading the answer: %w", err)
	}
	return b, nil
}

// show makes a request and prints its answer: the JSON with --json, else
// what table makes of the decoded answer.
func show[T any](c *client, method, path string, body any, table func(io.Writer, *T)) error {
	b, err := c.call(method, path, body)
	if err != nil {
		return err
	}
	if c.json {
		_, err := c.out.Write(b)
		return err
	}
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("unexpected answer from the gateway: %w", err)
	}
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	table(tw, &v)
	return tw.Flush()
}

func eventsCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "events [--source s] [--type t] [--status failed] [--since 1h] [--q id] [--limit n] [--cursor c]",
		Short: "Lists stored events, newest first, with their status per destination",
		Long: `Lists the events of a running gateway (GET /webhooks/events), newest first:
sequence, time, id, source, version, type, size and the delivery status at
each destination. The filters combine; --q finds an event by its id or the
provider's delivery id. When more events match, the last line gives the
--cursor for the next page.`,
		Example: `  caddy webhooks events --source stripe --type invoice.paid --since 1h
  caddy webhooks events --status failed --destination orders`,
		Args: cobra.NoArgs,
	}
	addFilterFlags(c.Flags())
	c.Flags().String("q", "", qUsage)
	c.Flags().Int("limit", 0, "events per page (default 50)")
	c.Flags().String("cursor", "", "the cursor printed under the previous page")
	return eventLogCommand(c, func(cl *client, fl caddycmd.Flags) error {
		q := pageQuery(filterValues(fl), fl, "q", "cursor")
		return show(cl, http.MethodGet, "/webhooks/events?"+q.Encode(), nil, printEvents)
	})
}

// eventsHeader is the header row of 'events' and 'tail'.
const eventsHeader = "SEQ\tRECEIVED\tID\tSOURCE\tVERSION\tTYPE\tSIZE\tSTATUS\n"

func printEvents(w io.Writer, p *EventPage) {
	fmt.Fprint(w, eventsHeader)
	for _, e := range p.Events {
		printEventRow(w, e)
	}
	if len(p.Events) == 0 {
		fmt.Fprintln(w, "(no events)")
	}
	if p.NextCursor != "" {
		fmt.Fprintf(w, "more: --cursor %s\n", p.NextCursor)
	}
}

func printEventRow(w io.Writer, e EventSummary) {
	fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", e.StreamSeq, e.ReceivedAt.Local().Format(time.DateTime),
		e.ID, e.Source, e.Version, orDefault(e.Type, "-"), e.Size, statusWords(e.Status))
}

// statusWords renders "orders=delivered audit=failed".
func statusWords(st map[string]forwarder.Status) string {
	if len(st) == 0 {
		return "-"
	}
	names := make([]string, 0, len(st))
	for d := range st {
		names = append(names, d)
	}
	sort.Strings(names)
	for i, d := range names {
		names[i] = d + "=" + string(st[d])
	}
	return strings.Join(names, " ")
}

func showCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "show <event id> [--body]",
		Short: "Shows one event: headers, deliveries and every attempt",
		Long: `Shows one event of a running gateway (GET /webhooks/events/<id>): its headers
as stored (signatures and credentials redacted), its delivery at each
destination, and every attempt with the destination's answer. --body adds
the body (JSON pretty-printed; base64 when it is not text). For a destination
with a transformation it shows the digest of the body sent beside the body
the running config's transformation yields, and whether they are the same.`,
		Example: `  caddy webhooks show stripe:evt_1Q2w3E --body`,
		Args:    cobra.ExactArgs(1),
	}
	c.Flags().Bool("body", false, "print the body too")
	return eventLogCommand(c, func(cl *client, fl caddycmd.Flags) error {
		path := "/webhooks/events/" + url.PathEscape(fl.Arg(0))
		if fl.Bool("body") {
			path += "?body=1"
		}
		return show(cl, http.MethodGet, path, nil, printEvent)
	})
}

func printEvent(w io.Writer, d *EventDetail) {
	fmt.Fprintf(w, "id:\t%s\nsource:\t%s %s\ntype:\t%s\nsubject:\t%s\nsequence:\t%d\nreceived:\t%s\nsize:\t%d bytes\n",
		d.ID, d.Source, d.Version, orDefault(d.Type, "-"), d.Subject, d.StreamSeq, d.ReceivedAt.Local().Format(time.RFC3339), d.Size)
	fmt.Fprintln(w, "\nHEADER\tVALUE")
	names := make([]string, 0, len(d.Headers))
	for k := range d.Headers {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(w, "%s\t%s\n", k, strings.Join(d.Headers[k], ", "))
	}
	fmt.Fprintln(w, "\nDESTINATION\tSTATUS\tRETRIES\tLAST CODE\tNEXT RETRY\tLAST ERROR")
	for _, v := range d.Deliveries {
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s\n", v.Destination, v.Status, v.RetryAttempts,
			intOr(v.LastStatusCode), strOr(v.NextRetryIn), strOr(v.LastError))
	}
	fmt.Fprintln(w, "\nTIME\tDESTINATION\tATTEMPT\tCODE\tLATENCY\tERROR / ANSWER")
	for _, a := range d.Attempts {
		n := strconv.Itoa(a.Attempt)
		if a.Replay {
			n += " (replay)"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\n", a.Time.Local().Format("15:04:05.000"), a.Destination, n,
			a.StatusCode, time.Duration(a.Latency).Round(time.Microsecond), attemptNote(a))
	}
	if d.Body != nil {
		fmt.Fprintln(w, "\nbody:")
		fmt.Fprintln(w, prettyBody(*d.Body, d.BodyEncoding))
	}
	printTransformed(w, d.Transformed)
}

// printTransformed prints what each transforming destination was sent
// beside what its transformation yields now (see TransformedView).
func printTransformed(w io.Writer, views []TransformedView) {
	if len(views) == 0 {
		return
	}
	fmt.Fprintln(w, "\nTRANSFORMED FOR\tSENT\tNOW\tSAME AS SENT")
	for _, v := range views {
		now := digestText(v.Current)
		if v.Error != "" {
			now = "error: " + v.Error
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", v.Destination, digestText(v.Sent), now, yesNo(v.SameAsSent))
	}
	for _, v := range views {
		if v.Body == nil {
			continue
		}
		what := "body sent to " + v.Destination
		if !v.SameAsSent {
			what = "body " + v.Destination + "'s transformation yields now (not proven to be what was sent)"
		}
		fmt.Fprintf(w, "\n%s (Content-Type %s):\n", what, orDefault(v.ContentType, "none"))
		names := make([]string, 0, len(v.Headers))
		for k := range v.Headers {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			fmt.Fprintf(w, "header %s: %s\n", k, orDefault(v.Headers[k], "(removed)"))
		}
		fmt.Fprintln(w, prettyBody(*v.Body, v.BodyEncoding))
	}
}

// digestText renders a body's digest: "96 B sha256:1f0a3c2d9e8b".
func digestText(s *forwarder.Sent) string {
	if s == nil {
		return "-"
	}
	return fmt.Sprintf("%d B sha256:%.12s", s.Size, s.SHA256)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func attemptNote(a forwarder.Attempt) string {
	note := a.Error
	if a.Response != nil && a.Response.Body != "" && a.Response.BodyEncoding == "" {
		body := strings.Join(strings.Fields(a.Response.Body), " ")
		if len(body) > 80 {
			body = body[:80] + "…"
		}
		note = strings.TrimSpace(note + " " + body)
	}
	return orDefault(note, "-")
}

// prettyBody indents a JSON body; other bodies are printed as they are.
func prettyBody(body, encoding string) string {
	if encoding != "" {
		return "(" + encoding + ") " + body
	}
	var buf bytes.Buffer
	if json.Indent(&buf, []byte(body), "", "  ") == nil {
		return buf.String()
	}
	return body
}

func intOr(p *int) string {
	if p == nil {
		return "-"
	}
	return strconv.Itoa(*p)
}

func strOr(p *string) string {
	if p == nil || *p == "" {
		return "-"
	}
	return *p
}

func replayCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "replay <event id> [--destination d] | replay [filters]",
		Short: "Delivers stored events again, with their original idempotency key",
		Long: `With an event id, queues that event for delivery again (POST
/webhooks/events/<id>/replay) to --destination, or to every destination it
matches. Without one, replays every event the filters match in the
background (POST /webhooks/replay) and prints the job; follow it with
'caddy webhooks replay --job <id>'. Replays carry the same Webhook-Id and
Idempotency-Key, Webhook-Attempt continuing, and Webhook-Replay: true.`,
		Example: `  caddy webhooks replay stripe:evt_1Q2w3E --destination orders
  caddy webhooks replay --since 1h --source stripe --status failed`,
		Args: cobra.MaximumNArgs(1),
	}
	addFilterFlags(c.Flags())
	c.Flags().String("job", "", "show the progress of a bulk replay or redrive job")
	return eventLogCommand(c, func(cl *client, fl caddycmd.Flags) error {
		if job := fl.String("job"); job != "" {
			return show(cl, http.MethodGet, "/webhooks/replay/"+url.PathEscape(job), nil, printJob)
		}
		if fl.NArg() == 1 {
			body := map[string]string{}
			if d := fl.String("destination"); d != "" {
				body["destination"] = d
			}
			return show(cl, http.MethodPost, "/webhooks/events/"+url.PathEscape(fl.Arg(0))+"/replay", body, func(w io.Writer, q *ReplayQueued) {
				fmt.Fprintf(w, "queued %s (sequence %d) for %s\n", q.EventID, q.StreamSeq, strings.Join(q.Destinations, ", "))
			})
		}
		f := filterValues(fl)
		if len(f) == 0 {
			return usageErr{errors.New("give an event id, or filters for a bulk replay (--since 1h, --source, --status ...)")}
		}
		return show(cl, http.MethodPost, "/webhooks/replay", flatten(f), printJob)
	})
}

func flatten(v url.Values) map[string]string {
	out := map[string]string{}
	for k := range v {
		out[k] = v.Get(k)
	}
	return out
}

func printJob(w io.Writer, j *ReplayJob) {
	fmt.Fprintln(w, "JOB\tKIND\tSTATE\tMATCHED\tQUEUED\tDELIVERED\tFAILED\tSKIPPED")
	fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\n", j.ID, j.Kind, j.State, j.Matched, j.Queued, j.Delivered, j.Failed, j.Skipped)
	if j.Error != "" {
		fmt.Fprintf(w, "error: %s\n", j.Error)
	}
}

func dlqCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "dlq [--destination d] [--source s] [--version v] [--type t] [--since 1h] [--until …] [--q id] [--limit n] [--cursor c]",
		Short: "Lists dead letters, newest first",
		Long: `Lists the dead letters of a running gateway (GET /webhooks/dlq): events a
destination gave up on, with why, how many attempts were made and the last
answer. Redrive one with 'caddy webhooks redrive <id>'.`,
		Args: cobra.NoArgs,
	}
	addDLQFilterFlags(c.Flags())
	c.Flags().Int("limit", 0, "dead letters per page (default 50)")
	c.Flags().String("cursor", "", "the cursor printed under the previous page")
	return eventLogCommand(c, func(cl *client, fl caddycmd.Flags) error {
		q := pageQuery(url.Values{}, fl, append(redriveFilters, "cursor")...)
		return show(cl, http.MethodGet, "/webhooks/dlq?"+q.Encode(), nil, printDLQ)
	})
}

func printDLQ(w io.Writer, p *DLQPage) {
	fmt.Fprintln(w, "ID\tFAILED\tEVENT\tDESTINATION\tREASON\tATTEMPTS\tLAST CODE\tLAST ERROR")
	for _, d := range p.DeadLetters {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", d.ID, d.FailedAt.Local().Format(time.DateTime), d.EventID,
			d.Destination, d.Reason, d.Attempts, d.LastStatusCode, orDefault(d.LastError, "-"))
	}
	if len(p.DeadLetters) == 0 {
		fmt.Fprintln(w, "(no dead letters)")
	}
	if p.NextCursor != "" {
		fmt.Fprintf(w, "more: --cursor %s\n", p.NextCursor)
	}
}

func redriveCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "redrive <dead letter id> | redrive --all [--destination d] [--source s] [--version v] [--type t] [--since 1h] [--until …] [--q id]",
		Short: "Delivers dead letters again to their destination",
		Long: `Queues a dead letter for delivery again to the destination that gave up on it
(POST /webhooks/dlq/<id>/redrive), with the same idempotency key; the dead
letter is removed once the redrive is queued. --all redrives every dead
letter the filters match, in the background (POST /webhooks/dlq/redrive).`,
		Example: `  caddy webhooks redrive 42
  caddy webhooks redrive --all --destination orders`,
		Args: cobra.MaximumNArgs(1),
	}
	c.Flags().Bool("all", false, "redrive every dead letter the filters match")
	addDLQFilterFlags(c.Flags())
	return eventLogCommand(c, func(cl *client, fl caddycmd.Flags) error {
		switch {
		case fl.NArg() == 1 && !fl.Bool("all"):
			return show(cl, http.MethodPost, "/webhooks/dlq/"+url.PathEscape(fl.Arg(0))+"/redrive", nil, func(w io.Writer, r *Redrive) {
				fmt.Fprintf(w, "queued dead letter %s: %s to %s\n", r.ID, r.EventID, r.Destination)
			})
		case fl.NArg() == 0 && fl.Bool("all"):
			body := map[string]string{}
			for _, k := range redriveFilters {
				if v := fl.String(k); v != "" {
					body[k] = v
				}
			}
			return show(cl, http.MethodPost, "/webhooks/dlq/redrive", body, printJob)
		}
		return usageErr{errors.New("give one dead letter id, or --all with optional filters")}
	})
}

func statusCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "status",
		Short: "Shows the store, the sources and the destinations at a glance",
		Long: `Shows a running gateway's health (GET /webhooks/status): the store (up, sync
mode, bytes used of the maximum, oldest event), each source's requests of
the last minute by outcome, and each destination's backlog, circuit, pause
and last error.`,
		Args: cobra.NoArgs,
	}
	return eventLogCommand(c, func(cl *client, fl caddycmd.Flags) error {
		return show(cl, http.MethodGet, "/webhooks/status", nil, printStatus)
	})
}

func printStatus(w io.Writer, s *GatewayStatus) {
	st := s.Store
	up := "up"
	if !st.Up {
		up = "DOWN " + st.Error
	}
	oldest := "-"
	if st.OldestEvent != nil {
		oldest = st.OldestEvent.Local().Format(time.DateTime)
	}
	fmt.Fprintf(w, "STORE\tSYNC\tEVENTS\tUSED\tOLDEST\tDEAD LETTERS\n%s\t%s\t%d\t%s\t%s\t%d\n\n",
		up, st.Sync, st.Events, usage(st.Bytes, st.MaxBytes), oldest, st.DeadLetters)
	fmt.Fprintln(w, "SOURCE\tREQUESTS/MIN\tOUTCOMES")
	for _, src := range s.Sources {
		var parts []string
		for o, n := range src.Outcomes {
			parts = append(parts, fmt.Sprintf("%s=%d", o, n))
		}
		sort.Strings(parts)
		fmt.Fprintf(w, "%s\t%d\t%s\n", src.Source, src.Requests, strings.Join(parts, " "))
	}
	fmt.Fprintln(w, "\nDESTINATION\tPENDING\tIN FLIGHT\tOLDEST PENDING\tBREAKER\tPAUSED\tLAST ERROR")
	for _, d := range s.Destinations {
		fmt.Fprintf(w, "%s\t%d\t%d\t%s\t%s\t%t\t%s\n", d.Name, d.Pending, d.InFlight, orDefault(d.OldestPendingAge, "-"),
			d.Breaker, d.Paused, orDefault(orDefault(d.Error, d.LastError), "-"))
	}
}

func usage(used uint64, limit int64) string {
	if limit <= 0 {
		return fmt.Sprintf("%d B", used)
	}
	return fmt.Sprintf("%.1f MiB of %.1f MiB (%.1f%%)", float64(used)/(1<<20), float64(limit)/(1<<20), 100*float64(used)/float64(limit))
}

func tailCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "tail [filters]",
		Short: "Prints new events as they arrive",
		Long: `Prints each new event that matches the filters as the gateway stores it, one
line each (like 'nats sub', but readable), until interrupted; --json prints
one JSON object per line. --count stops after that many events.`,
		Example: `  caddy webhooks tail --source github`,
		Args:    cobra.NoArgs,
	}
	addTailFlags(c.Flags())
	return eventLogCommand(c, func(cl *client, fl caddycmd.Flags) error {
		tw := &streamTable{w: cl.out, widths: slices.Clone(tailWidths[:])}
		if !cl.json {
			if err := tw.row(eventsHeader); err != nil {
				return err
			}
		}
		return follow(cl, fl, func(e EventSummary) error {
			if cl.json {
				b, _ := json.Marshal(e)
				_, err := fmt.Fprintf(cl.out, "%s\n", b)
				return err
			}
			var b strings.Builder
			printEventRow(&b, e)
			return tw.row(b.String())
		})
	})
}

// tailWidths are the widths of tail's columns (but the last): a row is
// printed as it comes, so the columns cannot be measured first as a
// tabwriter does for 'events'. 44 fits a GitHub delivery id with its
// source ("github:" and a UUID); a longer cell widens its column from
// then on.
var tailWidths = [7]int{6, 19, 44, 8, 7, 24, 6}

// streamTable prints tab-separated rows one at a time in columns of at
// least widths, two spaces apart: the look of the tabwriter tables of the
// other commands, for output that never ends.
type streamTable struct {
	w      io.Writer
	widths []int
}

func (t *streamTable) row(line string) error {
	cells := strings.Split(strings.TrimSuffix(line, "\n"), "\t")
	var b strings.Builder
	for i, c := range cells {
		if i == len(cells)-1 {
			b.WriteString(c)
			break
		}
		if i >= len(t.widths) {
			t.widths = append(t.widths, 0)
		}
		n := utf8.RuneCountInString(c)
		t.widths[i] = max(t.widths[i], n)
		b.WriteString(c)
		b.WriteString(strings.Repeat(" ", t.widths[i]-n+2))
	}
	b.WriteByte('\n')
	_, err := io.WriteString(t.w, b.String())
	return err
}

func addTailFlags(fs *pflag.FlagSet) {
	addFilterFlags(fs)
	fs.Duration("interval", time.Second, "how often to ask the gateway for new events")
	fs.Int("count", 0, "stop after this many events (default: run until interrupted)")
}

// follow calls each for every new event matching the filters, oldest
// first, polling the event list, until interrupted or --count events.
func follow(cl *client, fl caddycmd.Flags, each func(EventSummary) error) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	q := filterValues(fl)
	q.Del("since")
	last, err := newestSeq(cl, q)
	if err != nil {
		return err
	}
	count, seen := fl.Int("count"), 0
	t := time.NewTicker(max(fl.Duration("interval"), 50*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		evs, err := eventsAfter(cl, q, last)
		if err != nil {
			return err
		}
		for _, e := range evs {
			if err := each(e); err != nil {
				return err
			}
			last = e.StreamSeq
			if seen++; count > 0 && seen >= count {
				return nil
			}
		}
	}
}

func listPage(cl *client, q url.Values) (*EventPage, error) {
	b, err := cl.call(http.MethodGet, "/webhooks/events?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	var p EventPage
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("unexpected answer from the gateway: %w", err)
	}
	return &p, nil
}

// newestSeq returns the sequence of the newest event matching q, 0 when
// none.
func newestSeq(cl *client, q url.Values) (uint64, error) {
	q = cloneValues(q)
	q.Set("limit", "1")
	p, err := listPage(cl, q)
	if err != nil || len(p.Events) == 0 {
		return 0, err
	}
	return p.Events[0].StreamSeq, nil
}

// eventsAfter returns the events matching q stored after sequence last,
// oldest first.
func eventsAfter(cl *client, q url.Values, last uint64) ([]EventSummary, error) {
	q = cloneValues(q)
	q.Set("limit", "200")
	var out []EventSummary
	for {
		p, err := listPage(cl, q)
		if err != nil {
			return nil, err
		}
		done := p.NextCursor == ""
		for _, e := range p.Events {
			if e.StreamSeq <= last {
				done = true
				break
			}
			out = append(out, e)
		}
		if done {
			break
		}
		q.Set("cursor", p.NextCursor)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

func listenCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "listen --forward-to <url> [filters]",
		Short: "Forwards each new event to a local URL: a developer's loop",
		Long: `Like 'stripe listen': each new event that matches the filters is POSTed to
--forward-to with its body and original headers (credential headers, which
the event log redacts, are left out) plus Webhook-Id and Idempotency-Key,
and a line with the answer is printed. Runs until interrupted, or --count
events.`,
		Example: `  caddy webhooks listen --forward-to http://localhost:3000/hooks --source stripe`,
		Args:    cobra.NoArgs,
	}
	addTailFlags(c.Flags())
	c.Flags().String("forward-to", "", "the local URL to POST each event to (required)")
	return eventLogCommand(c, func(cl *client, fl caddycmd.Flags) error {
		target := fl.String("forward-to")
		if u, err := url.Parse(target); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return usageErr{fmt.Errorf("--forward-to %q: give an http:// or https:// URL", target)}
		}
		hc := &http.Client{Timeout: 30 * time.Second}
		fmt.Fprintf(cl.out, "forwarding new events to %s (Ctrl-C to stop)\n", target)
		return follow(cl, fl, func(e EventSummary) error {
			return forwardEvent(cl, hc, target, e)
		})
	})
}

// forwardEvent reads one event with its body and POSTs it to target.
func forwardEvent(cl *client, hc *http.Client, target string, e EventSummary) error {
	b, err := cl.call(http.MethodGet, "/webhooks/events/"+url.PathEscape(e.ID)+"?body=1", nil)
	if err != nil {
		return err
	}
	var d EventDetail
	if err := json.Unmarshal(b, &d); err != nil {
		return fmt.Errorf("unexpected answer from the gateway: %w", err)
	}
	body := []byte(strOr(d.Body))
	if d.BodyEncoding == "base64" {
		if body, err = base64.StdEncoding.DecodeString(*d.Body); err != nil {
			return fmt.Errorf("event %s: body: %w", e.ID, err)
		}
	}
	req, err := http.NewRequest(http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return err
	}
	for k, vs := range d.Headers {
		if event.IsReserved(k) || forwarder.IsCredentialHeader(k) || k == "Content-Length" {
			continue
		}
		req.Header[k] = vs
	}
	if ct := d.Headers[event.HeaderContentType]; len(ct) > 0 {
		req.Header.Set("Content-Type", ct[0])
	}
	req.Header.Set(event.HeaderWebhookID, e.ID)
	req.Header.Set(event.HeaderIdempotencyKey, e.ID)
	start := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		fmt.Fprintf(cl.out, "%s  %s  %s -> error: %v\n", time.Now().Format("15:04:05"), e.ID, orDefault(e.Type, "-"), err)
		return nil
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	fmt.Fprintf(cl.out, "%s  %s  %s -> %d (%s)\n", time.Now().Format("15:04:05"), e.ID, orDefault(e.Type, "-"),
		resp.StatusCode, time.Since(start).Round(time.Millisecond))
	return nil
}
