package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/hookgate/hookgate/forwarder"
)

// ExternalNATS points the webhooks app at a NATS cluster the team already
// runs, instead of the embedded server: the streams, buckets and consumers
// live there (created if missing; existing ones are checked and their
// differences reported, never changed). One of Creds, NKeySeed or User
// authenticates the gateway.
type ExternalNATS struct {
	// URLs are the cluster's client URLs (nats:// or tls://).
	URLs []string `json:"urls,omitempty"`
	// Creds is a .creds file (JWT and seed) of the gateway's user.
	Creds string `json:"creds,omitempty"`
	// NKeySeed is a file holding the gateway user's nkey seed (SU...).
	NKeySeed string `json:"nkey,omitempty"`
	// User and Password log in with a password; use {env.X} or {file.X}.
	User     string `json:"user,omitempty"`
	Password string `json:"password,omitempty"`
	// TLSCA is a PEM file of the CAs that sign the servers' certificates.
	TLSCA string `json:"tls_ca,omitempty"`
	// TLSCert and TLSKey are the gateway's client certificate and key,
	// for servers that verify clients.
	TLSCert string `json:"tls_cert,omitempty"`
	TLSKey  string `json:"tls_key,omitempty"`
}

// externalEngineConfig is the resolved ExternalNATS, comparable.
type externalEngineConfig struct {
	// NATSURLs are the client URLs, comma-separated; "" means the
	// embedded server.
	NATSURLs                  string
	NATSCreds, NATSNKeySeed   string
	NATSUser, NATSPassword    string
	NATSCA, NATSCert, NATSKey string
}

// external reports whether the app uses an external NATS cluster.
func (c externalEngineConfig) external() bool { return c.NATSURLs != "" }

// provisionExternal resolves the nats block.
func (a *App) provisionExternal(repl *caddy.Replacer) error {
	x := a.NATS
	if x == nil {
		return nil
	}
	if a.Cluster != nil {
		return errors.New("nats and cluster exclude each other: an external NATS cluster replaces the embedded server")
	}
	if len(x.URLs) == 0 {
		return errors.New("nats: give at least one server URL")
	}
	n := 0
	for _, s := range []string{x.Creds, x.NKeySeed, x.User} {
		if s != "" {
			n++
		}
	}
	if n > 1 {
		return errors.New("nats: give one of creds, nkey, or user and password")
	}
	if (x.TLSCert == "") != (x.TLSKey == "") {
		return errors.New("nats tls client_auth: give both a certificate and a key file")
	}
	xe := &a.ecfg.externalEngineConfig
	for _, u := range x.URLs {
		if _, err := routeURL(u, "", ""); err != nil {
			return fmt.Errorf("nats %q: want nats://host:port or tls://host:port", forwarder.RedactURL(u))
		}
	}
	xe.NATSURLs = strings.Join(x.URLs, ",")
	if err := resolveSettings(repl, []setting{
		{"nats creds", x.Creds, &xe.NATSCreds},
		{"nats nkey", x.NKeySeed, &xe.NATSNKeySeed},
		{"nats user", x.User, &xe.NATSUser},
		{"nats password", x.Password, &xe.NATSPassword},
		{"nats tls ca", x.TLSCA, &xe.NATSCA},
		{"nats tls certificate", x.TLSCert, &xe.NATSCert},
		{"nats tls key", x.TLSKey, &xe.NATSKey},
	}); err != nil {
		return err
	}
	return nil
}

// poolKey is the engines pool's key of the app's store: the store
// directory, or the external cluster's URLs.
func (c engineConfig) poolKey() string {
	if c.external() {
		return "nats:" + c.NATSURLs
	}
	return c.StoreDir
}

// connectOptions are the nats.go options of an external connection.
func (c externalEngineConfig) connectOptions() ([]nats.Option, error) {
	opts := []nats.Option{nats.Name("hookgate"), nats.MaxReconnects(-1)}
	switch {
	case c.NATSCreds != "":
		opts = append(opts, nats.UserCredentials(c.NATSCreds))
	case c.NATSNKeySeed != "":
		o, err := nats.NkeyOptionFromSeed(c.NATSNKeySeed)
		if err != nil {
			return nil, fmt.Errorf("nats nkey %s: %w", c.NATSNKeySeed, err)
		}
		opts = append(opts, o)
	case c.NATSUser != "":
		opts = append(opts, nats.UserInfo(c.NATSUser, c.NATSPassword))
	}
	if c.NATSCA != "" {
		opts = append(opts, nats.RootCAs(c.NATSCA))
	}
	if c.NATSCert != "" {
		opts = append(opts, nats.ClientCert(c.NATSCert, c.NATSKey))
	}
	return opts, nil
}

// newExternalEngine connects to an external NATS cluster. The engine has no
// server, no store lock and no group commit: durability is the external
// streams' (replicas and the servers' sync setting).
func newExternalEngine(cfg engineConfig, log *zap.Logger) (*engine, error) {
	e := &engine{cfg: cfg, dir: "nats:" + redactURLs(cfg.NATSURLs), log: log, stopping: make(chan struct{})}
	e.health.Store(newStoreHealth())
	opts, err := cfg.connectOptions()
	if err != nil {
		return nil, err
	}
	opts = append(opts, nats.RetryOnFailedConnect(true))
	nc, err := nats.Connect(cfg.NATSURLs, opts...)
	if err != nil {
		return nil, fmt.Errorf("nats %s: %w; check the URLs, the credentials and that the cluster is up", redactURLs(cfg.NATSURLs), err)
	}
	e.nc = nc
	if e.js, err = jetstream.New(nc); err != nil {
		nc.Close()
		return nil, fmt.Errorf("nats: jetstream: %w", err)
	}
	if e.acks, err = newAckMux(nc, false); err != nil {
		nc.Close()
		return nil, err
	}
	if e.commit, err = newGroupCommit("", e.publishRaw, false, log); err != nil {
		nc.Close()
		return nil, err
	}
	log.Info("event store on an external NATS cluster", zap.String("nats", redactURLs(cfg.NATSURLs)))
	return e, nil
}

// ensureExternalStream creates sc when missing; when it exists, its
// settings are compared with sc's and each difference is logged, but the
// stream is left as the cluster's operators made it. A stream whose
// subjects are not exactly the gateway's is an error: with fewer, events
// would not be stored; with more, the event log, replay and the forwarders
// would meet messages that are not events.
func (a *App) ensureExternalStream(ctx context.Context, sc jetstream.StreamConfig) error {
	s, err := a.engine.js.Stream(ctx, sc.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = a.engine.js.CreateStream(ctx, sc)
		if err != nil {
			return fmt.Errorf("stream %s: create on the external cluster: %w", sc.Name, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("stream %s: %w", sc.Name, err)
	}
	have := s.CachedInfo().Config
	if !slices.Equal(have.Subjects, sc.Subjects) {
		return fmt.Errorf("stream %s on the external cluster has subjects %v, not %v: fix or delete it", sc.Name, have.Subjects, sc.Subjects)
	}
	if diffs := streamDiffs(have, sc); len(diffs) > 0 {
		a.logger.Warn("stream on the external cluster differs from the webhooks config; left as it is",
			zap.String("stream", sc.Name), zap.Strings("differences", diffs))
	}
	return nil
}

// streamDiffs lists the settings in which have differs from want.
func streamDiffs(have, want jetstream.StreamConfig) []string {
	var d []string
	add := func(name string, h, w any) {
		if h != w {
			d = append(d, fmt.Sprintf("%s: %v, config says %v", name, h, w))
		}
	}
	add("replicas", have.Replicas, want.Replicas)
	add("storage", have.Storage, want.Storage)
	add("retention", have.Retention, want.Retention)
	add("discard", have.Discard, want.Discard)
	add("max_bytes", have.MaxBytes, want.MaxBytes)
	add("max_age", have.MaxAge, want.MaxAge)
	add("duplicates", have.Duplicates, want.Duplicates)
	add("max_msg_size", have.MaxMsgSize, want.MaxMsgSize)
	return d
}

// parseExternalNATS reads a nats block. Syntax:
//
//	nats <url>... {
//		creds    <file>           # or
//		nkey     <seed file>      # or
//		user     <user>
//		password <password>
//		tls {
//			ca          <file>
//			client_auth <cert_file> <key_file>
//		}
//	}
func parseExternalNATS(d *caddyfile.Dispenser) (*ExternalNATS, error) {
	x := &ExternalNATS{URLs: d.RemainingArgs()}
	if len(x.URLs) == 0 {
		return nil, d.Errf("nats: give at least one server URL")
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "creds":
			x.Creds, err = oneArg(d)
		case "nkey":
			x.NKeySeed, err = oneArg(d)
		case "user":
			x.User, err = oneArg(d)
		case "password":
			x.Password, err = oneArg(d)
		case "tls":
			err = parseExternalTLS(d, x)
		default:
			return nil, d.Errf("unrecognized nats option %q", d.Val())
		}
		if err != nil {
			return nil, err
		}
	}
	return x, nil
}

// parseExternalTLS reads the tls block of a nats block.
func parseExternalTLS(d *caddyfile.Dispenser, x *ExternalNATS) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "ca":
			v, err := oneArg(d)
			if err != nil {
				return err
			}
			x.TLSCA = v
		case "client_auth":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return d.Errf("client_auth: want <cert_file> <key_file>")
			}
			x.TLSCert, x.TLSKey = args[0], args[1]
		default:
			return d.Errf("unrecognized nats tls option %q", d.Val())
		}
	}
	return nil
}
