package caddymodule

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("webhooks", parseGlobalOption)
	httpcaddyfile.RegisterHandlerDirective("webhook_ingest", parseHandler)
	// Before the handlers that typically respond, so a webhook_ingest with
	// a path matcher works in a site block without a route block.
	httpcaddyfile.RegisterDirectiveOrder("webhook_ingest", httpcaddyfile.Before, "abort")
}

// parseGlobalOption reads the "webhooks" global option into the app's JSON.
// Several webhooks blocks merge into one app.
func parseGlobalOption(d *caddyfile.Dispenser, existing any) (any, error) {
	app := new(App)
	if prev, ok := existing.(httpcaddyfile.App); ok {
		if err := json.Unmarshal(prev.Value, app); err != nil {
			return nil, err
		}
	}
	if err := app.UnmarshalCaddyfile(d); err != nil {
		return nil, appError(err)
	}
	return httpcaddyfile.App{Name: "webhooks", Value: caddyconfig.JSON(app, nil)}, nil
}

// UnmarshalCaddyfile sets up the app from Caddyfile tokens. Syntax:
//
//	webhooks {
//		store          <dir>               # default: <caddy data dir>/hookgate
//		sync           always|<interval>   # default: always (fsync before every 2xx)
//		retention      <duration>          # default: 7d
//		max_store      <size>              # default: 10GiB; full → 503, never silent loss
//		max_event_size <size>              # default: 4MiB
//		dedup_window   <duration>          # default: 6h
//		listen         <host:port>|off     # NATS clients; default: 127.0.0.1:4222
//		server_name    <name>              # default: hookgate
//		user           <name>              # NATS subscribers' login, instead of
//		password       <password>          #   the generated <store>/subscriber.nk
//		nkey           <public nkey>...    # or subscribers' public nkeys (U...)
//		tls            <cert_file> <key_file>  # TLS for NATS clients
//		replicas       1|3|5               # copies of every stream; >1 needs a cluster
//		nats <url>... {                    # or use an external NATS cluster
//			...                            # see parseExternalNATS (external.go)
//		}
//		cluster {                          # join a JetStream cluster of gateways
//			...                            # see parseCluster (cluster.go)
//		}
//		destination    <name> {
//			...                            # see parseDestination
//		}
//	}
func (a *App) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the option name
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "store":
			a.Store, err = oneArg(d)
		case "sync":
			a.Sync, err = oneArg(d)
			if err == nil && a.Sync != "always" {
				if dur, perr := caddy.ParseDuration(a.Sync); perr != nil || dur <= 0 {
					err = d.Errf("sync %q: want 'always' or a positive interval such as 1s", a.Sync)
				}
			}
		case "retention":
			if a.Retention, err = durationArg(d); err == nil && a.DedupWindow != 0 {
				err = wrapRule(d, checkDedupWindow(time.Duration(a.DedupWindow), time.Duration(a.Retention)))
			}
		case "dedup_window":
			if a.DedupWindow, err = durationArg(d); err == nil && a.Retention != 0 {
				err = wrapRule(d, checkDedupWindow(time.Duration(a.DedupWindow), time.Duration(a.Retention)))
			}
		case "max_store":
			a.MaxStore, err = sizeArg(d)
		case "max_event_size":
			if a.MaxEventSize, err = sizeArg(d); err == nil {
				err = wrapRule(d, checkMaxEventSize(a.MaxEventSize))
			}
		case "listen":
			if a.Listen, err = oneArg(d); err == nil {
				err = wrapRule(d, checkListen(a.Listen))
			}
		case "server_name":
			a.ServerName, err = oneArg(d)
		case "user":
			a.User, err = oneArg(d)
		case "password":
			a.Password, err = oneArg(d)
		case "tls":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return d.Errf("tls: want <cert_file> <key_file>")
			}
			a.TLSCert, a.TLSKey = args[0], args[1]
		case "nkey":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			for _, k := range args {
				if err := checkNKey(k); err != nil {
					return wrapRule(d, err)
				}
			}
			a.NKeys = append(a.NKeys, args...)
		case "cluster":
			a.Cluster, err = parseCluster(d)
		case "nats":
			a.NATS, err = parseExternalNATS(d)
		case "replicas":
			a.Replicas, err = replicasArg(d)
		case "destination":
			dc, derr := parseDestination(d)
			if derr != nil {
				return derr
			}
			a.Destinations = append(a.Destinations, dc)
		default:
			return d.Errf("unrecognized webhooks option %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// wrapRule attributes a broken rule to the file and line being parsed;
// nil stays nil. parseGlobalOption names the webhooks global option.
func wrapRule(d *caddyfile.Dispenser, err error) error {
	if err == nil {
		return nil
	}
	return d.WrapErr(err)
}

func parseHandler(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Handler)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	webhook_ingest [<matcher>] {
//		prefix          <path>             # default: /webhooks
//		versions        <version>...       # default: v1
//		deprecate       <version> <sunset date> [since <date>] [successor <version>]
//		retire          <version>...       # 410 Gone, naming the current versions
//		status          <2xx code>         # default: 200
//		publish_timeout <duration>         # default: 5s
//		retry_after     <duration>         # default: 5s, sent with every 503
//		rate_per_ip     <n>/<window> [burst <n>] [max_clients <n>]
//		body_timeout    <duration>         # default: 10s, then 408; sources' default
//		max_headers     <n>                # default: 100, then 431; sources' default
//		max_header_bytes <size>            # default: 16KiB, then 431; sources' default
//		source <name> {
//			verify      <scheme> [<secret>...] [{
//				<option> <value>           # scheme-specific, see package verify
//			}]
//			tolerance   <duration>         # default: 5m
//			public_url  <url>              # the URL the provider signs, behind proxies
//			max_body    <size>             # default: 1MiB
//			id_header   <header>           # delivery id for generic sources
//			type_header <header>           # event type for generic sources
//			dedup       body               # identical bodies are duplicates
//			versions    <version>...       # default: all of the handler's
//			rate        <n>/<window> [burst <n>]   # the source's shared budget
//			rate_per_ip <n>/<window> [burst <n>] [max_clients <n>]   # replaces the handler's
//			allow_ips   <cidr>|<ip>|private_ranges...   # others get 403
//			accept_encoding gzip               # default: identity only (else 415)
//			max_ratio   <n>                    # gzip expansion cap; default: 100
//			body_timeout <duration>            # replaces the handler's
//			max_headers  <n>                   # replaces the handler's
//			max_header_bytes <size>            # replaces the handler's
//			subject_suffix <cel expression>    # subject tokens from the event (subject_suffix.go)
//			subject_header <name> <cel expression>   # a header from the event, repeatable
//		}
//	}
//
// Every source needs a verify line; "verify none" accepts unsigned requests.
//
// A rate is <events>/<window>: 100/s, 6000/m, 1/2s, read by parseRateArgs for
// sources and destinations alike. The burst (default: the
// events of one window) is how many requests may come at once. Limits are
// token buckets checked before the body is read; past them the answer is
// 429 with a Retry-After in whole seconds. rate_per_ip counts every request
// of a client, unknown paths included; a client is its IPv4 address or its
// IPv6 /64, as Caddy resolves it (set trusted_proxies behind a proxy), and
// at most max_clients (default: 100000) are remembered at once.
//
// A deprecated version keeps working; its responses carry Deprecation:
// @<since>, Sunset: <sunset date> and Link: <prefix/successor/source>;
// rel="successor-version". Dates are 2027-06-30 (midnight UTC) or RFC 3339.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	var sources []parsedSource // with their places, for checkHandler
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "prefix":
			h.Prefix, err = oneArg(d)
		case "versions":
			var args []string
			if args, err = segmentArgs(d); err == nil {
				h.Versions = append(h.Versions, args...)
			}
		case "status":
			var s string
			if s, err = oneArg(d); err == nil {
				if h.Status, err = strconv.Atoi(s); err != nil {
					err = d.Errf("status %q: want a 2xx code", s)
				} else {
					err = wrapRule(d, checkStatus(h.Status))
				}
			}
		case "publish_timeout":
			h.PublishTimeout, err = durationArg(d)
		case "retry_after":
			h.RetryAfter, err = durationArg(d)
		case "rate_per_ip":
			h.RatePerIP, err = parseRateLimit(d, true)
		case "body_timeout":
			h.BodyTimeout, err = durationArg(d)
		case "max_headers":
			h.MaxHeaders, err = intArg(d)
		case "max_header_bytes":
			h.MaxHeaderBytes, err = sizeArg(d)
		case "deprecate":
			var dep *Deprecation
			if dep, err = parseDeprecate(d); err == nil {
				h.Deprecated = append(h.Deprecated, dep)
			}
		case "retire":
			var args []string
			if args, err = segmentArgs(d); err == nil {
				h.Retired = append(h.Retired, args...)
			}
		case "source":
			at := posOf(d)
			var s *Source
			if s, err = parseSource(d); err == nil {
				h.Sources = append(h.Sources, s)
				sources = append(sources, parsedSource{s, at})
			}
		default:
			return d.Errf("unrecognized webhook_ingest subdirective %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return checkHandler(d, h, sources)
}

// parseSource reads "source <name> { ... }"; the dispenser is on "source".
func parseSource(d *caddyfile.Dispenser) (*Source, error) {
	s := new(Source)
	at, verifyAt := posOf(d), posOf(d)
	var err error
	if s.Name, err = oneArg(d); err != nil {
		return nil, err
	}
	if err := checkSourceName(s.Name); err != nil {
		return nil, d.WrapErr(err)
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "verify":
			if s.Verify != nil {
				return nil, d.Errf("source %q: verify given twice; list every active secret on one verify line", s.Name)
			}
			args := d.RemainingArgs()
			if len(args) == 0 {
				return nil, d.Errf("source %q: verify needs a scheme, e.g. 'verify github {env.GITHUB_WEBHOOK_SECRET}' or 'verify none'", s.Name)
			}
			s.Verify = &VerifyConfig{Scheme: args[0], Secrets: args[1:]}
			verifyAt = posOf(d)
			for vn := d.Nesting(); d.NextBlock(vn); {
				opt := d.Val()
				val, err := oneArg(d)
				if err != nil {
					return nil, err
				}
				if s.Verify.Options == nil {
					s.Verify.Options = map[string]string{}
				}
				s.Verify.Options[opt] = val
			}
		case "tolerance":
			s.Tolerance, err = durationArg(d)
		case "public_url":
			s.PublicURL, err = oneArg(d)
		case "max_body":
			s.MaxBody, err = sizeArg(d)
		case "id_header":
			s.IDHeader, err = oneArg(d)
		case "type_header":
			s.TypeHeader, err = oneArg(d)
		case "dedup":
			if s.Dedup, err = oneArg(d); err == nil {
				err = wrapRule(d, checkDedup(s.Dedup))
			}
		case "versions":
			var args []string
			if args, err = segmentArgs(d); err == nil {
				s.Versions = append(s.Versions, args...)
			}
		case "rate":
			s.Rate, err = parseRateLimit(d, false)
		case "rate_per_ip":
			s.RatePerIP, err = parseRateLimit(d, true)
		case "allow_ips":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return nil, d.Errf("allow_ips: give at least one address or CIDR prefix, e.g. 192.30.252.0/22")
			}
			if _, perr := parseAllowIPs(args); perr != nil {
				return nil, d.WrapErr(perr)
			}
			s.AllowIPs = append(s.AllowIPs, args...)
		case "accept_encoding":
			var enc string
			if enc, err = oneArg(d); err == nil {
				err = wrapRule(d, checkEncoding(enc))
			}
			s.AcceptEncoding = []string{enc}
		case "body_timeout":
			s.BodyTimeout, err = durationArg(d)
		case "max_headers":
			s.MaxHeaders, err = intArg(d)
		case "max_header_bytes":
			s.MaxHeaderBytes, err = sizeArg(d)
		case "max_ratio":
			s.MaxRatio, err = intArg(d)
		case "subject_suffix":
			if s.SubjectSuffix, err = expressionArg(d); err == nil {
				err = wrapRule(d, checkSubjectSuffix(s))
			}
		case "subject_header":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return nil, d.Errf("subject_header: want '<name> <CEL expression>', e.g. subject_header X-Mode `body.livemode ? \"live\" : \"test\"`")
			}
			if s.SubjectHeaders == nil {
				s.SubjectHeaders = map[string]string{}
			}
			s.SubjectHeaders[args[0]] = args[1]
			err = wrapRule(d, checkSubjectSuffix(s))
		default:
			return nil, d.Errf("unrecognized source subdirective %q", d.Val())
		}
		if err != nil {
			return nil, err
		}
	}
	if err := checkVerify(s.Name, s.Verify); err != nil {
		return nil, d.WrapErr(err)
	}
	return s, checkSource(s, at, verifyAt)
}

// segmentArgs reads a line of versions: one or more path segments.
func segmentArgs(d *caddyfile.Dispenser) ([]string, error) {
	name := d.Val()
	args := d.RemainingArgs()
	if len(args) == 0 {
		return nil, d.Errf("%s: give at least one version, e.g. v1", name)
	}
	for _, v := range args {
		if err := checkVersion("version", v); err != nil {
			return nil, d.WrapErr(err)
		}
	}
	return args, nil
}

// parseRateLimit reads a rate line ("rate", "rate_per_ip"): see
// parseRateArgs; max_clients only where perIP.
func parseRateLimit(d *caddyfile.Dispenser, perIP bool) (*RateLimit, error) {
	rl, err := parseRateArgs(d.Val(), d.RemainingArgs(), perIP)
	if err != nil {
		return nil, d.WrapErr(err)
	}
	return rl, nil
}

// parseDeprecate reads "deprecate <version> <sunset> [since <date>]
// [successor <version>]".
func parseDeprecate(d *caddyfile.Dispenser) (*Deprecation, error) {
	args := d.RemainingArgs()
	if len(args) < 2 || len(args)%2 != 0 {
		return nil, d.Errf("deprecate: want <version> <sunset date> [since <date>] [successor <version>], e.g. deprecate v1 2027-06-30")
	}
	dep := &Deprecation{Version: args[0], Sunset: args[1]}
	for i := 2; i < len(args); i += 2 {
		switch args[i] {
		case "since":
			dep.Since = args[i+1]
		case "successor":
			dep.Successor = args[i+1]
		default:
			return nil, d.Errf("deprecate: unknown setting %q; want since or successor", args[i])
		}
	}
	for _, date := range []string{dep.Sunset, dep.Since} {
		if date == "" {
			continue
		}
		if _, err := parseDate(date); err != nil {
			return nil, d.WrapErr(fmt.Errorf("deprecate %s: %w", dep.Version, err))
		}
	}
	return dep, nil
}

// oneArg reads exactly one argument of the current line.
func oneArg(d *caddyfile.Dispenser) (string, error) {
	name := d.Val()
	if !d.NextArg() {
		return "", d.Errf("%s: missing value", name)
	}
	v := d.Val()
	if d.NextArg() {
		return "", d.Errf("%s: one value expected, got another: %q", name, d.Val())
	}
	return v, nil
}

func durationArg(d *caddyfile.Dispenser) (caddy.Duration, error) {
	name := d.Val()
	s, err := oneArg(d)
	if err != nil {
		return 0, err
	}
	v, err := caddy.ParseDuration(s)
	if err != nil || v <= 0 {
		return 0, d.Errf("%s %q: want a positive duration such as 30s, 5m or 7d", name, s)
	}
	return caddy.Duration(v), nil
}

func sizeArg(d *caddyfile.Dispenser) (int64, error) {
	name := d.Val()
	s, err := oneArg(d)
	if err != nil {
		return 0, err
	}
	v, err := humanize.ParseBytes(s)
	if err != nil || v == 0 || v > 1<<62 {
		return 0, d.Errf("%s %q: want a size such as 1MiB or 10GB", name, s)
	}
	return int64(v), nil
}

// Interface guards.
var (
	_ caddyfile.Unmarshaler = (*App)(nil)
	_ caddyfile.Unmarshaler = (*Handler)(nil)
)
