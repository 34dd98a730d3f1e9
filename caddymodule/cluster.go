package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/zap"

	"github.com/hookgate/hookgate/forwarder"
)

// ClusterConfig makes the embedded NATS server one node of a JetStream
// cluster formed by several gateways (see docs/CLUSTER.md). Each node needs
// a stable, unique server_name; the streams get the app's Replicas.
type ClusterConfig struct {
	// Name is the cluster's name; every node must use the same.
	Name string `json:"name,omitempty"`

	// Listen is the host:port where the other nodes' routes connect.
	// Keep it on a private network: see docs/CLUSTER.md.
	Listen string `json:"listen,omitempty"`

	// Routes are the nats://host:port URLs of the other nodes (listing
	// the node itself is harmless). They may carry user:password.
	Routes []string `json:"routes,omitempty"`

	// User and Password, when set, are required of every incoming route
	// and added to every route URL that has no credentials of its own.
	// Use {env.X} or {file.X} for the password.
	User     string `json:"user,omitempty"`
	Password string `json:"password,omitempty"`

	// TLSCert and TLSKey are the PEM certificate and key of the route
	// listener and of outgoing routes; with TLSCA, peers must present a
	// certificate signed by it (mutual TLS).
	TLSCert string `json:"tls_cert,omitempty"`
	TLSKey  string `json:"tls_key,omitempty"`
	TLSCA   string `json:"tls_ca,omitempty"`
}

// clusterEngineConfig is the part of engineConfig about clustering; all
// strings, so engineConfig stays comparable.
type clusterEngineConfig struct {
	ClusterName   string
	ClusterListen string
	// Routes are the route URLs, credentials included, space-separated.
	Routes                                   string
	ClusterUser, ClusterPassword             string
	ClusterTLSCert, ClusterTLSKey, ClusterCA string
}

// clustered reports whether the embedded server joins a cluster.
func (c clusterEngineConfig) clustered() bool { return c.ClusterName != "" }

// clusterSetupTimeout bounds one attempt at creating the streams and
// consumers on a cluster; clusterRetry is the pause between attempts.
const (
	clusterSetupTimeout = 10 * time.Second
	clusterRetry        = time.Second
)

// provisionCluster checks the cluster block and replicas and fills the
// engine's cluster settings.
func (a *App) provisionCluster(repl *caddy.Replacer) error {
	switch a.Replicas {
	case 0, 1, 3, 5:
	default:
		return fmt.Errorf("replicas %d: want 1, 3 or 5 (an odd number keeps a Raft majority)", a.Replicas)
	}
	c := a.Cluster
	if c == nil {
		if a.Replicas > 1 && a.NATS == nil {
			return fmt.Errorf("replicas %d needs a cluster block (or an external nats cluster); a single node has one copy", a.Replicas)
		}
		return nil
	}
	if c.Name == "" || c.Listen == "" {
		return errors.New("cluster: give a name and a listen host:port")
	}
	if a.ServerName == "" {
		return errors.New("cluster: set server_name to a stable name unique to this node (its Raft identity)")
	}
	if err := checkListen(c.Listen); err != nil {
		return fmt.Errorf("cluster listen: %w", err)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("cluster tls: give both a certificate and a key file")
	}
	ce := &a.ecfg.clusterEngineConfig
	ce.ClusterName, ce.ClusterListen = c.Name, c.Listen
	if err := resolveSettings(repl, []setting{
		{"cluster user", c.User, &ce.ClusterUser},
		{"cluster password", c.Password, &ce.ClusterPassword},
		{"cluster tls certificate", c.TLSCert, &ce.ClusterTLSCert},
		{"cluster tls key", c.TLSKey, &ce.ClusterTLSKey},
		{"cluster tls ca", c.TLSCA, &ce.ClusterCA},
	}); err != nil {
		return err
	}
	routes := make([]string, 0, len(c.Routes))
	for _, r := range c.Routes {
		u, err := routeURL(r, ce.ClusterUser, ce.ClusterPassword)
		if err != nil {
			return err
		}
		routes = append(routes, u)
	}
	ce.Routes = strings.Join(routes, " ")
	return nil
}

// setting is one configured value and where its resolved form goes.
type setting struct {
	name string
	src  string
	dst  *string
}

// resolveSettings resolves the placeholders of each setting into its dst.
func resolveSettings(repl *caddy.Replacer, settings []setting) error {
	for _, f := range settings {
		v, err := resolveSecret(repl, f.name, f.src)
		if err != nil {
			return err
		}
		*f.dst = v
	}
	return nil
}

// routeURL checks a route URL and adds the cluster's credentials when it
// has none. Errors never repeat the URL's password.
func routeURL(raw, user, password string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "nats" && u.Scheme != "nats-route" && u.Scheme != "tls") {
		return "", fmt.Errorf("cluster route %q: want nats://host:port", forwarder.RedactURL(raw))
	}
	if u.Port() == "" {
		return "", fmt.Errorf("cluster route %q: give the port of the node's cluster listen address", forwarder.RedactURL(raw))
	}
	if u.User == nil && user != "" {
		u.User = url.UserPassword(user, password)
	}
	return u.String(), nil
}

// redactURLs hides the passwords of a comma-separated URL list (the
// external NATS URLs) for logs and errors, each URL on its own: as one
// URL only the first password would be hidden.
func redactURLs(list string) string {
	urls := strings.Split(list, ",")
	for i, u := range urls {
		urls[i] = forwarder.RedactURL(u)
	}
	return strings.Join(urls, ",")
}

// clusterOptions adds the cluster settings to the server's options. A
// clustered server must listen for clients (DontListen stops routing), so
// with listen off it takes a random loopback port.
func clusterOptions(opts *server.Options, cfg clusterEngineConfig) error {
	if !cfg.clustered() {
		return nil
	}
	host, port, err := splitHostPort(cfg.ClusterListen)
	if err != nil {
		return fmt.Errorf("cluster listen: %w", err)
	}
	opts.Cluster = server.ClusterOpts{
		Name:     cfg.ClusterName,
		Host:     host,
		Port:     port,
		Username: cfg.ClusterUser,
		Password: cfg.ClusterPassword,
	}
	if cfg.ClusterTLSCert != "" {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{
			CertFile: cfg.ClusterTLSCert, KeyFile: cfg.ClusterTLSKey,
			CaFile: cfg.ClusterCA, Verify: cfg.ClusterCA != "",
		})
		if err != nil {
			return fmt.Errorf("cluster tls %s %s: %w", cfg.ClusterTLSCert, cfg.ClusterTLSKey, err)
		}
		opts.Cluster.TLSConfig, opts.Cluster.TLSTimeout = tc, 2
	}
	if cfg.Routes != "" {
		opts.Routes = server.RoutesFromStr(strings.ReplaceAll(cfg.Routes, " ", ","))
	}
	if opts.DontListen {
		opts.DontListen, opts.Host, opts.Port = false, "127.0.0.1", server.RANDOM_PORT
	}
	return nil
}

// clusterCurrent reports whether the embedded server is in touch with a
// JetStream meta leader (always true off a cluster), or, with an external
// cluster, whether the connection to it is up. A node cut off from the
// majority, or from the external cluster, is not: it could not acknowledge
// an event, so the readiness check says not ready and the load balancer
// sends providers elsewhere.
func (e *engine) clusterCurrent() bool {
	if e.srv == nil {
		return e.nc == nil || e.nc.IsConnected()
	}
	if !e.srv.JetStreamIsClustered() {
		return true
	}
	// JetStreamIsCurrent alone says yes to a follower with no leader at
	// all; the meta group's leader must be known too.
	if !e.srv.JetStreamIsCurrent() {
		return false
	}
	info, err := e.srv.Jsz(&server.JSzOptions{})
	return err == nil && info.Meta != nil && info.Meta.Leader != ""
}

// splitHostPort splits a host:port with a numeric port.
func splitHostPort(hp string) (string, int, error) {
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, fmt.Errorf("%q: %w", hp, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return "", 0, fmt.Errorf("%q: port: %w", hp, err)
	}
	return host, p, nil
}

// setupInBackground creates the streams and starts the forwarders,
// retrying until a JetStream cluster has a meta leader and enough peers
// for the replicas. Until it succeeds the handler answers 503 with a
// Retry-After (waitReady says no). Stop ends it.
func (a *App) setupInBackground() {
	ctx, cancel := context.WithCancel(context.Background())
	a.setupCancel = cancel
	a.setupDone = make(chan struct{})
	go func() {
		defer close(a.setupDone)
		for attempt := 1; ; attempt++ {
			err := a.setupOnce(ctx)
			if err == nil {
				a.logger.Info("event store ready on the cluster", zap.Int("attempts", attempt))
				close(a.ready)
				return
			}
			a.stopSharing()
			a.stopEventLog()
			a.stopForwarders()
			level := a.logger.Debug
			if attempt%10 == 0 {
				level = a.logger.Warn
			}
			level("cluster not ready for the event streams yet; retrying (is a majority of the nodes up and routed?)",
				zap.Int("attempt", attempt), zap.Error(err))
			select {
			case <-ctx.Done():
				return
			case <-time.After(clusterRetry):
			}
		}
	}()
}

// setupOnce is one bounded attempt of setup.
func (a *App) setupOnce(parent context.Context) error {
	ctx, cancel := context.WithTimeout(parent, clusterSetupTimeout)
	defer cancel()
	return a.setup(ctx)
}

// stopSetup ends a background setup and waits for it.
func (a *App) stopSetup() {
	if a.setupCancel == nil {
		return
	}
	a.setupCancel()
	<-a.setupDone
}

// parseCluster reads a cluster block. Syntax:
//
//	cluster {
//		name     <cluster name>
//		listen   <host:port>
//		routes   <nats://host:port>...
//		user     <user>
//		password <password>
//		tls      <cert_file> <key_file> [ca <ca_file>]
//	}
func parseCluster(d *caddyfile.Dispenser) (*ClusterConfig, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	c := new(ClusterConfig)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "name":
			c.Name, err = oneArg(d)
		case "listen":
			if c.Listen, err = oneArg(d); err == nil {
				err = wrapRule(d, checkListen(c.Listen))
			}
		case "routes":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return nil, d.ArgErr()
			}
			for _, r := range args {
				if _, rerr := routeURL(r, "", ""); rerr != nil {
					return nil, wrapRule(d, rerr)
				}
			}
			c.Routes = append(c.Routes, args...)
		case "user":
			c.User, err = oneArg(d)
		case "password":
			c.Password, err = oneArg(d)
		case "tls":
			err = parseClusterTLS(d, c)
		default:
			return nil, d.Errf("unrecognized cluster option %q", d.Val())
		}
		if err != nil {
			return nil, err
		}
	}
	if c.Name == "" || c.Listen == "" {
		return nil, d.Errf("cluster: give a name and a listen host:port")
	}
	return c, nil
}

// parseClusterTLS reads "tls <cert> <key> [ca <file>]".
func parseClusterTLS(d *caddyfile.Dispenser, c *ClusterConfig) error {
	args := d.RemainingArgs()
	switch {
	case len(args) == 2:
	case len(args) == 4 && args[2] == "ca":
		c.TLSCA = args[3]
	default:
		return d.Errf("cluster tls: want <cert_file> <key_file> [ca <ca_file>]")
	}
	c.TLSCert, c.TLSKey = args[0], args[1]
	return nil
}

// replicasArg reads "replicas 1|3|5".
func replicasArg(d *caddyfile.Dispenser) (int, error) {
	s, err := oneArg(d)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(s)
	if err != nil || (n != 1 && n != 3 && n != 5) {
		return 0, d.Errf("replicas %q: want 1, 3 or 5", s)
	}
	return n, nil
}
