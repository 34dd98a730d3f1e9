package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/hookgate/hookgate/event"
	"github.com/hookgate/hookgate/forwarder"
)

func init() {
	caddy.RegisterModule(new(App))
}

// Defaults of the webhooks app.
const (
	defaultListen       = "127.0.0.1:4222"
	defaultRetention    = 7 * 24 * time.Hour
	defaultDedupWindow  = 6 * time.Hour
	defaultMaxStore     = 10 << 30
	defaultMaxEventSize = 4 << 20
	maxMaxEventSize     = 64 << 20
	defaultServerName   = "hookgate"
	// headerAllowance is room for the NATS headers of one event (the
	// provider's headers plus Hookgate's metadata) above its body.
	headerAllowance = 64 << 10
	// storeHeadroom is the part of the JetStream store limit left for
	// consumer state and the delivery-state bucket, above the streams'
	// own limits.
	storeHeadroom = 1 << 30
	// startTimeout bounds how long Start waits for streams to be created.
	startTimeout = 30 * time.Second
	// stopGrace bounds how long Stop waits for in-flight deliveries.
	stopGrace = 10 * time.Second
)

// App is the "webhooks" app: the durable event store (an embedded NATS
// server with JetStream) and the forwarders that deliver stored events to
// internal services. Handlers of type webhook_ingest publish into it.
type App struct {
	// Store is the directory of the embedded JetStream store. Default:
	// "hookgate" under Caddy's data directory. One process at a time may
	// use a store; reloads share it.
	Store string `json:"store,omitempty"`

	// Sync is "always" (the default: every event is fsynced before the
	// provider gets its 2xx) or an interval such as "1s" (events are
	// written before the 2xx but fsynced only every interval: a power loss
	// or OS crash can lose up to that much acknowledged data).
	Sync string `json:"sync,omitempty"`

	// Retention is how long events are kept (the stream's MaxAge).
	// Default: 7 days.
	Retention caddy.Duration `json:"retention,omitempty"`

	// MaxStore is the most bytes the WEBHOOKS stream may hold. A full
	// stream refuses new events (providers get 503 and retry) rather than
	// dropping old ones that may not be forwarded yet. Default: 10 GiB.
	MaxStore int64 `json:"max_store,omitempty"`

	// MaxEventSize is the largest event body the store accepts; every
	// source's max_body must fit in it. Default: 4 MiB.
	MaxEventSize int64 `json:"max_event_size,omitempty"`

	// DedupWindow is how long a provider's delivery id is remembered, so
	// that a retry of a stored delivery is acknowledged but not stored
	// again. Default: 6 hours (Shopify retries over 4 hours). It costs
	// memory per remembered id; see the README.
	DedupWindow caddy.Duration `json:"dedup_window,omitempty"`

	// Listen is the host:port where internal services connect to the
	// embedded NATS server to read events directly, or "off". Default:
	// 127.0.0.1:4222. Clients must log in (User, NKeys, or the generated
	// subscriber.nk) and may only read.
	Listen string `json:"listen,omitempty"`

	// ServerName is the embedded NATS server's name. Default: "hookgate".
	ServerName string `json:"server_name,omitempty"`

	// User is the login of the listener's NATS clients (subscribers),
	// instead of the credential generated in the store directory
	// (subscriber.nk). Subscribers may read events and use consumers of
	// their own, never write; see the README. Placeholders such as
	// {env.NATS_USER} are resolved at load time.
	User string `json:"user,omitempty"`

	// Password is User's password; use {env.X} or {file.X} so it stays
	// out of the autosaved config.
	Password string `json:"password,omitempty"`

	// NKeys are the public nkeys ("U...") of the listener's NATS clients,
	// with the same read-only rights as User. Set either or both to
	// replace the generated credential.
	NKeys []string `json:"nkeys,omitempty"`

	// TLSCert is a PEM certificate file; with TLSKey, NATS clients must
	// use TLS. (The gateway's own connection is in-process.)
	TLSCert string `json:"tls_cert,omitempty"`

	// TLSKey is the PEM private key file of TLSCert.
	TLSKey string `json:"tls_key,omitempty"`

	// Destinations are the internal HTTP services events are forwarded to.
	Destinations []*DestinationConfig `json:"destinations,omitempty"`

	// Cluster, when set, makes the embedded server a node of a JetStream
	// cluster of gateways (cluster.go, docs/CLUSTER.md).
	Cluster *ClusterConfig `json:"cluster,omitempty"`

	// NATS, when set, replaces the embedded server with an external NATS
	// cluster (external.go, docs/CLUSTER.md).
	NATS *ExternalNATS `json:"nats,omitempty"`

	// Replicas is how many nodes keep a copy of every stream, bucket and
	// consumer: 1, 3 or 5. Above 1 a PubAck (and so a 2xx) means a
	// majority of them stored the event. Default: 1.
	Replicas int `json:"replicas,omitempty"`

	// setupCancel and setupDone end and await the background setup of a
	// clustered store (cluster.go); nil when setup ran in Start.
	setupCancel context.CancelFunc
	setupDone   chan struct{}

	ecfg         engineConfig
	maxEventSize int64 // MaxEventSize with its default
	streams      []jetstream.StreamConfig
	fwdConfigs   []forwarder.Config
	ready        chan struct{}
	// engine is set once in Start, before ready is closed, and never
	// cleared: handlers of a stopping config may still hold the app.
	engine   *engine
	released bool
	// fwdMu guards what setup starts and Stop stops: forwarders and
	// released, which the admin API and the metrics read, the gateway
	// counter while the consumers are shared (sharing, cluster_nodes.go)
	// and the replay consumers (replayers, eventlog_replay.go). These
	// belong to this app alone, so a reload's new app and the old one
	// never see each other's. It is held only to read or swap them,
	// never across a call that stops one or takes another lock
	// (shareRates, which the counter calls, takes it for reading; stop
	// waits for the counter outside it).
	fwdMu      sync.RWMutex
	forwarders []*forwarder.Forwarder
	sharing    *nodeCounter
	replayers  []jetstream.ConsumeContext
	logger     *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (*App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "webhooks",
		New: func() caddy.Module { return new(App) },
	}
}

// Provision resolves defaults and placeholders. It opens nothing: caddy
// validate runs it too.
func (a *App) Provision(ctx caddy.Context) error {
	return appError(a.provision(ctx))
}

func (a *App) provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	a.ready = make(chan struct{})
	if reg := ctx.GetMetricsRegistry(); reg != nil {
		if err := registerMetrics(reg); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		if err := reg.Register(&appCollector{app: a}); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		if err := reg.Register(&clusterCollector{app: a}); err != nil { // cluster_status.go
			return fmt.Errorf("metrics: %w", err)
		}
	}
	repl := caddy.NewReplacer()

	store := a.Store
	if store == "" {
		store = filepath.Join(caddy.AppDataDir(), "hookgate")
	}
	store, err := resolveSecret(repl, "store", store)
	if err != nil {
		return err
	}
	store, err = filepath.Abs(store)
	if err != nil {
		return fmt.Errorf("store %q: %w", a.Store, err)
	}
	a.ecfg = engineConfig{
		StoreDir:   store,
		ServerName: orDefault(a.ServerName, defaultServerName),
		SyncAlways: true,
	}
	switch s := strings.TrimSpace(a.Sync); s {
	case "", "always":
	default:
		d, err := caddy.ParseDuration(s)
		if err != nil || d <= 0 {
			return fmt.Errorf("sync %q: want 'always' or a positive interval such as 1s", a.Sync)
		}
		a.ecfg.SyncAlways, a.ecfg.SyncInterval = false, d
	}
	switch a.Listen {
	case "":
		a.ecfg.Listen = defaultListen
	case "off":
	default:
		if err := checkListen(a.Listen); err != nil {
			return err
		}
		a.ecfg.Listen = a.Listen
	}
	if a.ecfg.User, err = resolveSecret(repl, "user", a.User); err != nil {
		return err
	}
	if a.ecfg.Password, err = resolveSecret(repl, "password", a.Password); err != nil {
		return err
	}
	for _, k := range a.NKeys {
		if err := checkNKey(k); err != nil {
			return err
		}
	}
	a.ecfg.NKeys = strings.Join(a.NKeys, " ")
	if err := a.provisionCluster(repl); err != nil {
		return err
	}
	if err := a.provisionExternal(repl); err != nil {
		return err
	}
	if (a.TLSCert == "") != (a.TLSKey == "") {
		return fmt.Errorf("tls: give both a certificate and a key file")
	}
	if a.TLSCert != "" {
		if a.ecfg.TLSCert, err = resolveSecret(repl, "tls certificate", a.TLSCert); err != nil {
			return err
		}
		if a.ecfg.TLSKey, err = resolveSecret(repl, "tls key", a.TLSKey); err != nil {
			return err
		}
	}

	maxStore := orDefault(a.MaxStore, defaultMaxStore)
	a.maxEventSize = orDefault(a.MaxEventSize, defaultMaxEventSize)
	a.ecfg.MaxStore = maxStore + maxStore/4 + storeHeadroom
	a.ecfg.MaxPayload = int32(min(a.maxEventSize, maxMaxEventSize) + headerAllowance)
	retention := time.Duration(orDefault(a.Retention, caddy.Duration(defaultRetention)))
	a.streams = []jetstream.StreamConfig{{
		Name:        event.StreamName,
		Description: "Hookgate: every accepted webhook, as received",
		Subjects:    []string{event.SubjectRoot + ".>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardNew,
		MaxBytes:    maxStore,
		MaxAge:      retention,
		Duplicates:  time.Duration(orDefault(a.DedupWindow, caddy.Duration(defaultDedupWindow))),
		MaxMsgSize:  a.ecfg.MaxPayload,
		Replicas:    max(1, a.Replicas),
		AllowDirect: true,
	}, {
		Name:        event.DLQStreamName,
		Description: "Hookgate: events a destination gave up on",
		Subjects:    []string{event.DLQSubjectRoot + ".>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardNew,
		MaxBytes:    maxStore / 4,
		MaxAge:      retention,
		Duplicates:  10 * time.Minute,
		MaxMsgSize:  a.ecfg.MaxPayload,
		Replicas:    max(1, a.Replicas),
		AllowDirect: true,
	}}

	a.fwdConfigs = a.fwdConfigs[:0]
	for _, d := range a.Destinations {
		fc, err := d.forwarderConfig(repl)
		if err != nil {
			return fmt.Errorf("destination %q: %w", d.Name, err)
		}
		a.fwdConfigs = append(a.fwdConfigs, fc)
		a.ecfg.GatewayConsumers = strings.TrimSpace(a.ecfg.GatewayConsumers + " " + forwarder.ConsumerName(fc.Name))
	}
	a.warnRisky()
	return nil
}

// Validate checks what Provision could not decide alone.
func (a *App) Validate() error {
	return appError(a.validate())
}

func (a *App) validate() error {
	s := a.streams[0]
	if err := checkDedupWindow(s.Duplicates, s.MaxAge); err != nil {
		return err
	}
	if err := checkMaxEventSize(a.maxEventSize); err != nil {
		return err
	}
	if a.MaxStore < 0 || a.MaxEventSize < 0 {
		return errors.New("max_store and max_event_size must be positive")
	}
	seen := map[string]bool{}
	for i := range a.fwdConfigs {
		fc := &a.fwdConfigs[i]
		if seen[fc.Name] {
			return fmt.Errorf("destination %q is defined twice", fc.Name)
		}
		seen[fc.Name] = true
		if err := fc.Validate(); err != nil {
			return err // names the destination already
		}
	}
	return nil
}

// Start takes (or shares) the embedded NATS server, makes sure the streams
// exist, and starts the forwarders. On error it undoes its own work: Caddy
// does not call Stop for an app whose Start failed.
func (a *App) Start() (err error) {
	key := a.ecfg.poolKey()
	val, loaded, err := engines.LoadOrNew(key, func() (caddy.Destructor, error) {
		if a.ecfg.external() {
			return newExternalEngine(a.ecfg, a.logger) // external.go
		}
		return newEngine(a.ecfg, a.logger)
	})
	if err != nil {
		return err
	}
	a.engine = val.(*engine)
	defer func() {
		if err != nil {
			a.stopSharing()
			a.stopEventLog()
			a.stopForwarders()
			a.release()
		}
	}()
	if loaded {
		if err := a.engine.reload(a.ecfg); err != nil {
			return err
		}
	}
	if a.ecfg.clustered() || a.ecfg.external() {
		a.setupInBackground() // cluster.go
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := a.setup(ctx); err != nil {
		return err
	}
	close(a.ready)
	return nil
}

// setup creates or updates the streams and the event log and starts the
// forwarders. On error the caller stops what it started.
func (a *App) setup(ctx context.Context) error {
	for _, sc := range a.streams {
		if a.ecfg.external() {
			if err := a.ensureExternalStream(ctx, sc); err != nil {
				return err
			}
			continue
		}
		if _, err := a.engine.js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("stream %s: %w", sc.Name, err)
		}
	}
	if a.ecfg.clustered() {
		a.applyReplicas(ctx) // cluster_replicas.go
	}
	if err := a.startEventLog(ctx); err != nil { // eventlog_replay.go
		return err
	}
	gateways, err := a.startSharing(ctx) // cluster_nodes.go
	if err != nil {
		return err
	}
	for _, fc := range a.fwdConfigs {
		fc.Observer = newDestinationObserver(fc.Name)
		fc.Shared = a.sharedConsumers()
		// The forwarder's errors name the destination already.
		f, err := forwarder.New(a.engine.js, fc, a.logger.Named("forwarder"))
		if err != nil {
			return err
		}
		f.SetRateShare(gateways)
		if err := f.Start(ctx); err != nil {
			return err
		}
		a.fwdMu.Lock()
		a.forwarders = append(a.forwarders, f)
		a.fwdMu.Unlock()
	}
	return nil
}

// Stop stops the forwarders (in-flight deliveries finish or go back to the
// stream) and lets go of the engine; the engine shuts down when no config
// uses it any more.
func (a *App) Stop() error {
	a.stopSetup()
	a.stopSharing()
	a.stopEventLog()
	a.stopForwarders()
	a.release()
	return nil
}

func (a *App) stopForwarders() {
	ctx, cancel := context.WithTimeout(context.Background(), stopGrace)
	defer cancel()
	a.fwdMu.Lock()
	fs := a.forwarders
	a.forwarders = nil
	a.fwdMu.Unlock()
	for _, f := range fs {
		if err := f.Stop(ctx); err != nil {
			a.logger.Warn("forwarder did not stop cleanly", zap.Error(err))
		}
	}
}

// runningForwarders returns the app's running forwarders.
func (a *App) runningForwarders() []*forwarder.Forwarder {
	a.fwdMu.RLock()
	defer a.fwdMu.RUnlock()
	return append([]*forwarder.Forwarder(nil), a.forwarders...)
}

// forwarder returns the running forwarder of a destination, or nil.
func (a *App) forwarder(name string) *forwarder.Forwarder {
	for _, f := range a.runningForwarders() {
		if f.Name() == name {
			return f
		}
	}
	return nil
}

func (a *App) release() {
	a.fwdMu.Lock()
	done := a.engine == nil || a.released
	a.released = true
	a.fwdMu.Unlock()
	if done {
		return
	}
	if _, err := engines.Delete(a.ecfg.poolKey()); err != nil {
		a.logger.Error("event store did not shut down cleanly", zap.Error(err))
	}
}

// runningEngine returns the app's engine while the app is started, else
// nil.
func (a *App) runningEngine() *engine {
	select {
	case <-a.ready:
	default:
		return nil
	}
	a.fwdMu.RLock()
	defer a.fwdMu.RUnlock()
	if a.released {
		return nil
	}
	return a.engine
}

// publish stores an event in the app's store. Call it only once waitReady
// said yes.
func (a *App) publish(ctx context.Context, msg *nats.Msg) (*jetstream.PubAck, error) {
	return a.engine.publish(ctx, msg)
}

// waitReady reports whether the app is ready to store events, waiting at most
// d. Apps start in random order, so the HTTP server may take requests before
// this app has its store.
func (a *App) waitReady(d time.Duration) bool {
	select {
	case <-a.ready:
		return true
	default:
	}
	if d <= 0 {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-a.ready:
		return true
	case <-t.C:
		return false
	}
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Interface guards.
var (
	_ caddy.App         = (*App)(nil)
	_ caddy.Provisioner = (*App)(nil)
	_ caddy.Validator   = (*App)(nil)
)
