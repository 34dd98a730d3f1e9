package caddymodule

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"go.uber.org/zap"
)

// engines holds the embedded NATS servers of this process, keyed by their
// absolute store directory. Caddy starts a new config before it stops the old
// one; the pool lets both share one server, so a reload neither restarts NATS
// nor opens the store twice. The last App to let go destroys it.
var engines = caddy.NewUsagePool()

// engineConfig is everything that shapes the embedded server. It is
// comparable: a reload whose engineConfig differs from the running one's is
// applied with ReloadOptions.
type engineConfig struct {
	StoreDir     string
	ServerName   string
	SyncAlways   bool
	SyncInterval time.Duration
	// PerEventSync makes SyncAlways fsync once per event inside
	// nats-server instead of sharing fsyncs among concurrent requests
	// (group commit, store_group.go).
	PerEventSync bool
	// MaxStore is the server's JetStream file store limit in bytes.
	MaxStore int64
	// MaxPayload is the largest NATS message, headers included.
	MaxPayload int32
	// Listen is the client listener's host:port; "" means no listener.
	Listen   string
	User     string
	Password string
	// NKeys are the public nkeys of clients allowed in, space-separated.
	NKeys string
	// TLSCert and TLSKey, when set, make the client listener TLS-only.
	TLSCert, TLSKey string
	// GatewayConsumers are the names of the gateway's own consumers on
	// the event streams (fwd-<destination>), space-separated; subscribers
	// may not use them.
	GatewayConsumers string
	// clusterEngineConfig joins the server to a cluster (cluster.go).
	clusterEngineConfig
	// externalEngineConfig, when set, replaces the server with a
	// connection to an external NATS cluster (external.go).
	externalEngineConfig
}

// engine is one embedded nats-server with JetStream and the gateway's own
// in-process connection to it.
type engine struct {
	// cfg is the applied configuration; optsMu guards it.
	cfg engineConfig
	// dir is cfg.StoreDir, which never changes: read it without a lock.
	dir string
	srv *server.Server
	nc  *nats.Conn
	js  jetstream.JetStream
	// acks publishes the events and takes their PubAcks (store_publish.go).
	acks *ackMux
	lock *os.File
	log  *zap.Logger
	// internalKey authenticates the gateway's in-process connections; it
	// is made per process and never leaves it.
	internalKey nkeys.KeyPair
	// subscriberKey is the public nkey of the generated subscriber
	// credential, "" when the operator configured the subscribers or the
	// listener is off.
	subscriberKey string
	// commit publishes; with group commit it answers once an fsync
	// covers the event.
	commit *groupCommit

	// mu is read-locked by every publish and write-locked by Destruct, so
	// the server is not shut down under a publish whose PubAck a provider
	// is waiting for.
	mu     sync.RWMutex
	closed bool

	// health is the store's current write health (see health.go);
	// healthMu orders its changes.
	health   atomic.Pointer[storeHealth]
	healthMu sync.Mutex
	// optsMu orders the changes of the server's options (reload, the
	// restart after a full disk).
	optsMu sync.Mutex
	// stopping is closed by shutdown; recovery waits for the recovery
	// goroutine.
	stopping chan struct{}
	recovery sync.WaitGroup
}

// errEngineClosed means the store was shut down under a request.
var errEngineClosed = errors.New("event store is shut down")

func newEngine(cfg engineConfig, log *zap.Logger) (*engine, error) {
	if err := os.MkdirAll(cfg.StoreDir, 0o700); err != nil {
		return nil, fmt.Errorf("store %s: %w", cfg.StoreDir, err)
	}
	lock, err := lockStore(cfg.StoreDir)
	if err != nil {
		return nil, err
	}
	e := &engine{cfg: cfg, dir: cfg.StoreDir, lock: lock, log: log, stopping: make(chan struct{})}
	if e.internalKey, err = nkeys.CreateUser(); err != nil {
		return nil, fmt.Errorf("embedded NATS: internal credential: %w", err)
	}
	e.health.Store(newStoreHealth())
	ok := false
	defer func() {
		if !ok {
			e.shutdown()
		}
	}()
	if err := e.ensureSubscriberKey(cfg); err != nil {
		return nil, err
	}
	if err := e.startServer(cfg); err != nil {
		return nil, err
	}
	nc, err := nats.Connect("",
		nats.InProcessServer(e.srv),
		e.internalAuth(),
		nats.CustomInboxPrefix(gatewayInboxPrefix),
		nats.Name("hookgate"),
		nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: in-process connection: %w", err)
	}
	e.nc = nc
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: jetstream: %w", err)
	}
	e.js = js
	if e.acks, err = newAckMux(nc, !cfg.clustered()); err != nil {
		return nil, err
	}
	if e.commit, err = e.startCommit(cfg); err != nil {
		return nil, err
	}
	ok = true
	log.Info("event store started",
		zap.String("store", cfg.StoreDir),
		zap.Bool("sync_always", cfg.SyncAlways),
		zap.String("listen", orOff(cfg.Listen)))
	e.logSubscriberCredential()
	return e, nil
}

// startCommit starts the committer that decides when a publish is
// answered. On a cluster the Raft WAL already batches the fsyncs of
// concurrent proposals (SyncAlways applies to it), and a PubAck comes
// after a quorum stored the event: publish plainly, with nats-server's own
// sync_interval when lazy. On a single server a lazy interval is synced by
// the committer's background pass (store_lazy.go), and sync always by
// group commit unless PerEventSync asks for nats-server's own. Only this
// embedded store raises GOMAXPROCS (ensureTwoProcs): its fsyncs block a P
// in this process; an external NATS syncs on its own servers.
func (e *engine) startCommit(cfg engineConfig) (*groupCommit, error) {
	ensureTwoProcs(e.log)
	switch {
	case cfg.clustered():
		return newGroupCommit(cfg.StoreDir, e.publishRaw, false, e.log)
	case !cfg.SyncAlways:
		return newLazyCommit(cfg.StoreDir, e.publishRaw, cfg.SyncInterval, e.log)
	}
	return newGroupCommit(cfg.StoreDir, e.publishRaw, !cfg.PerEventSync, e.log)
}

// startServer starts the embedded server and waits until it takes
// connections with JetStream on. It fails at once when the server reports
// a fatal error (a taken listen port, a store it cannot open), and when
// the process is told to stop meanwhile.
func (e *engine) startServer(cfg engineConfig) error {
	opts, err := e.serverOptions(cfg)
	if err != nil {
		return err
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("embedded NATS: %w", err)
	}
	e.srv = srv
	nl := &natsLogger{log: e.log.Named("nats"), onNoSpace: e.markFull}
	srv.SetLoggerV2(nl, false, false, false)
	if err := runServer(srv, nl, caddy.Exiting, startTimeout); err != nil {
		return fmt.Errorf("embedded NATS on store %s: %w", cfg.StoreDir, listenAdvice(err, cfg.Listen))
	}
	if !srv.JetStreamEnabled() {
		return fmt.Errorf("embedded NATS on store %s: JetStream did not start: %s", cfg.StoreDir, nl.lastFatal())
	}
	return nil
}

func (e *engine) serverOptions(cfg engineConfig) (*server.Options, error) {
	opts := &server.Options{
		ServerName:         cfg.ServerName,
		JetStream:          true,
		StoreDir:           cfg.StoreDir,
		SyncAlways:         cfg.SyncAlways && (cfg.PerEventSync || cfg.clustered()), // else group commit syncs
		SyncInterval:       serverSyncInterval(cfg),
		JetStreamMaxStore:  cfg.MaxStore,
		JetStreamMaxMemory: 64 << 20,
		MaxPayload:         cfg.MaxPayload,
		NoSigs:             true,
		NoSystemAccount:    false,
	}
	if cfg.Listen == "" {
		opts.DontListen = true
	} else {
		host, port, err := splitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("listen: %w", err)
		}
		opts.Host, opts.Port = host, port
	}
	if err := clusterOptions(opts, cfg.clusterEngineConfig); err != nil {
		return nil, err
	}
	if cfg.TLSCert != "" {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: cfg.TLSCert, KeyFile: cfg.TLSKey})
		if err != nil {
			return nil, fmt.Errorf("tls %s %s: %w", cfg.TLSCert, cfg.TLSKey, err)
		}
		opts.TLSConfig, opts.TLS, opts.TLSTimeout = tc, true, 2
	}
	e.authOptions(opts, cfg)
	return opts, nil
}

// serverSyncInterval is nats-server's own sync_interval: the lazy
// interval on a cluster; else 0, its default of 2 minutes, because the
// committer syncs outside nats-server's locks (store_group.go,
// store_lazy.go) and nats-server's timer would stall the stream's writer
// while it fsyncs the newest block under that block's lock.
func serverSyncInterval(cfg engineConfig) time.Duration {
	if cfg.clustered() {
		return cfg.SyncInterval
	}
	return 0
}

// errSyncReload refuses a reload that changes sync: the committer is made
// with the engine (nats-server refused such a change too, while it ran
// the lazy interval itself).
var errSyncReload = errors.New("a new sync setting applies only after a restart (caddy stop; caddy run); the running store keeps its current one")

// syncSetting names cfg's sync for messages: "always" or the interval.
func syncSetting(cfg engineConfig) string {
	if cfg.SyncAlways {
		return "always"
	}
	return cfg.SyncInterval.String()
}

// reload applies a changed configuration to the running server. What
// nats-server cannot change at runtime (the listener's port, the store) it
// refuses, and the error says to restart.
func (e *engine) reload(cfg engineConfig) error {
	e.optsMu.Lock()
	defer e.optsMu.Unlock()
	if cfg == e.cfg {
		return nil
	}
	if cfg.external() {
		if cfg.externalEngineConfig != e.cfg.externalEngineConfig {
			return errors.New("nats: new credentials or TLS settings for the external cluster apply only after a restart (caddy stop; caddy run)")
		}
		e.cfg = cfg
		return nil
	}
	if cfg.StoreDir != e.cfg.StoreDir {
		return fmt.Errorf("store %s: internal error: reload across stores", cfg.StoreDir)
	}
	if cfg.SyncAlways != e.cfg.SyncAlways || cfg.SyncInterval != e.cfg.SyncInterval || cfg.PerEventSync != e.cfg.PerEventSync {
		return fmt.Errorf("sync %s (running: sync %s): %w", syncSetting(cfg), syncSetting(e.cfg), errSyncReload)
	}
	hadKey := e.subscriberKey != ""
	if err := e.ensureSubscriberKey(cfg); err != nil {
		return err
	}
	opts, err := e.serverOptions(cfg)
	if err != nil {
		return err
	}
	if err := e.srv.ReloadOptions(opts); err != nil {
		return fmt.Errorf("embedded NATS: cannot apply the new settings without a restart (%w); restart Caddy (caddy stop; caddy run) to apply them", err)
	}
	e.cfg = cfg
	if !hadKey {
		e.logSubscriberCredential()
	}
	return nil
}

// Destruct is called by the pool when the last App let go of the engine.
func (e *engine) Destruct() error {
	e.log.Info("event store stopping", zap.String("store", e.dir))
	return e.shutdown()
}

func (e *engine) shutdown() error {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	e.healthMu.Lock()
	close(e.stopping)
	e.healthMu.Unlock()
	e.recovery.Wait()
	if e.commit != nil {
		_ = e.commit.close() // only releases the directory's handle
	}
	if e.nc != nil {
		e.nc.Close()
	}
	if e.srv != nil {
		e.srv.Shutdown()
		e.srv.WaitForShutdown()
	}
	return unlockStore(e.lock)
}

func orOff(s string) string {
	if s == "" {
		return "off"
	}
	return s
}

var _ caddy.Destructor = (*engine)(nil)
