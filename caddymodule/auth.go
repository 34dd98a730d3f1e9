package caddymodule

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"go.uber.org/zap"

	"github.com/hookgate/hookgate/event"
)

// Who may do what on the embedded NATS server.
//
// The gateway's own in-process connections log in with an nkey made per
// process (engine.internalKey) that never leaves it; that user alone may
// publish events, change streams and use the gateway's consumers. Every
// client of the listener (the configured user, the configured nkeys, or by
// default the generated subscriber credential) gets subscriberPermissions:
// read the event subjects, read the streams, and create and use consumers of
// its own. See the README's "Reading events from NATS".
const (
	// subscriberSeedFile is the generated subscriber credential in the
	// store directory: a NATS user nkey seed, as "nats --nkey" and
	// nats.NkeyOptionFromSeed read it.
	subscriberSeedFile = "subscriber.nk"
	// gatewayInboxPrefix is the reply-subject prefix of the gateway's
	// connections. Subscribers may only subscribe to "_INBOX.>", so they
	// cannot read the gateway's replies (PubAcks, pulls, delivery state).
	gatewayInboxPrefix = "_HOOKGATE_INBOX"
)

// eventStreams are the streams subscribers may read.
var eventStreams = []string{event.StreamName, event.DLQStreamName}

// subscriberKey returns the public nkey of the store's generated subscriber
// credential, creating the seed file (mode 0600) on first use and reusing it
// on later starts, so subscribers keep working across restarts.
func subscriberKey(storeDir string) (path, public string, err error) {
	path = filepath.Join(storeDir, subscriberSeedFile)
	seed, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		seed, err = newSubscriberSeed(path)
		if err != nil {
			return "", "", err
		}
	case err != nil:
		return "", "", fmt.Errorf("subscriber credential %s: %w", path, err)
	}
	kp, err := nkeys.ParseDecoratedNKey(seed)
	if err != nil {
		return "", "", fmt.Errorf("subscriber credential %s is not an nkey seed (%w); delete it and restart to generate a new one", path, err)
	}
	defer kp.Wipe()
	if public, err = kp.PublicKey(); err != nil || !nkeys.IsValidPublicUserKey(public) {
		return "", "", fmt.Errorf("subscriber credential %s does not hold a user seed (SU...); delete it and restart to generate a new one", path)
	}
	return path, public, nil
}

// newSubscriberSeed writes a fresh user seed to path, readable by its owner
// only, and returns it.
func newSubscriberSeed(path string) ([]byte, error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, fmt.Errorf("subscriber credential: %w", err)
	}
	defer kp.Wipe()
	seed, err := kp.Seed()
	if err != nil {
		return nil, fmt.Errorf("subscriber credential: %w", err)
	}
	seed = append(bytes.Clone(seed), '\n')
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("subscriber credential %s: %w", path, err)
	}
	if _, err := f.Write(seed); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("subscriber credential %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("subscriber credential %s: %w", path, err)
	}
	return seed, nil
}

// subscriberPermissions are what a NATS client of the listener may do: read
// the event subjects live, read the event streams, create, read, use and
// delete consumers of its own on them. Publishing events, purging or
// deleting streams or messages, and touching the gateway's consumers
// (gatewayConsumers, e.g. fwd-orders) are refused; deny wins over allow.
// Permissions match whole tokens, so fwd-<name> of a destination not
// configured yet cannot be refused here: forwarder.OwnerBucket, which
// subscribers cannot touch (no $JS.API.STREAM.*.KV_* or $KV.> is allowed),
// lets the forwarder tell such a consumer from its own and replace it.
func subscriberPermissions(gatewayConsumers []string) *server.Permissions {
	pub := []string{"$JS.API.INFO", "$JS.API.STREAM.NAMES", "$JS.API.STREAM.LIST"}
	var deny []string
	for _, s := range eventStreams {
		pub = append(pub,
			"$JS.API.STREAM.INFO."+s,
			"$JS.API.STREAM.MSG.GET."+s,
			"$JS.API.DIRECT.GET."+s, "$JS.API.DIRECT.GET."+s+".>",
			// Consumer names are in the subject, so the deny list below
			// holds. The legacy $JS.API.CONSUMER.CREATE.<stream>, which
			// takes the name from the body, is not allowed.
			"$JS.API.CONSUMER.CREATE."+s+".>",
			"$JS.API.CONSUMER.DURABLE.CREATE."+s+".*",
			"$JS.API.CONSUMER.INFO."+s+".*",
			"$JS.API.CONSUMER.NAMES."+s, "$JS.API.CONSUMER.LIST."+s,
			"$JS.API.CONSUMER.MSG.NEXT."+s+".*",
			"$JS.API.CONSUMER.DELETE."+s+".*",
			// Acks and flow control, in the v1 ($JS.ACK.<stream>...) and
			// v2 ($JS.ACK.<domain>.<account>.<stream>...) forms.
			"$JS.ACK."+s+".>", "$JS.ACK.*.*."+s+".>",
			"$JS.FC."+s+".>", "$JS.FC.*.*."+s+".>",
		)
		for _, c := range gatewayConsumers {
			deny = append(deny,
				"$JS.API.CONSUMER.CREATE."+s+"."+c, "$JS.API.CONSUMER.CREATE."+s+"."+c+".>",
				"$JS.API.CONSUMER.DURABLE.CREATE."+s+"."+c,
				"$JS.API.CONSUMER.MSG.NEXT."+s+"."+c,
				"$JS.API.CONSUMER.DELETE."+s+"."+c,
				"$JS.ACK."+s+"."+c+".>", "$JS.ACK.*.*."+s+"."+c+".>",
			)
		}
	}
	return &server.Permissions{
		Publish: &server.SubjectPermission{Allow: pub, Deny: deny},
		Subscribe: &server.SubjectPermission{Allow: []string{
			event.SubjectRoot + ".>", event.DLQSubjectRoot + ".>", "_INBOX.>",
		}},
	}
}

// authOptions sets the users of the embedded server: the gateway's internal
// user with every right, and the subscribers with subscriberPermissions.
func (e *engine) authOptions(opts *server.Options, cfg engineConfig) {
	internal, _ := e.internalKey.PublicKey() // a user key pair always has one
	opts.Nkeys = []*server.NkeyUser{{Nkey: internal}}
	perms := subscriberPermissions(strings.Fields(cfg.GatewayConsumers))
	if cfg.User != "" {
		opts.Users = append(opts.Users, &server.User{Username: cfg.User, Password: cfg.Password, Permissions: perms})
	}
	keys := strings.Fields(cfg.NKeys)
	if e.subscriberKey != "" && !cfg.subscribersConfigured() {
		keys = append(keys, e.subscriberKey)
	}
	for _, nk := range keys {
		opts.Nkeys = append(opts.Nkeys, &server.NkeyUser{Nkey: nk, Permissions: perms})
	}
}

// internalAuth is the connection option that logs the gateway in.
func (e *engine) internalAuth() nats.Option {
	public, _ := e.internalKey.PublicKey()
	return nats.Nkey(public, e.internalKey.Sign)
}

// subscribersConfigured reports whether the operator named the listener's
// clients (user or nkey); if not, the generated credential is used.
func (c engineConfig) subscribersConfigured() bool {
	return c.User != "" || c.NKeys != ""
}

// ensureSubscriberKey loads (or creates) the generated subscriber
// credential when the listener is on and the operator named no
// subscribers.
func (e *engine) ensureSubscriberKey(cfg engineConfig) error {
	if cfg.Listen == "" || cfg.subscribersConfigured() || e.subscriberKey != "" {
		return nil
	}
	_, public, err := subscriberKey(cfg.StoreDir)
	if err != nil {
		return err
	}
	e.subscriberKey = public
	return nil
}

// logSubscriberCredential says where the generated subscriber credential
// is, so that an operator can hand it to internal services. It logs the
// path, never the seed.
func (e *engine) logSubscriberCredential() {
	if e.subscriberKey == "" {
		return
	}
	e.log.Info("NATS subscribers log in with the nkey seed in this file (read events and use their own consumers; only the gateway may publish events or change streams)",
		zap.String("credential", filepath.Join(e.cfg.StoreDir, subscriberSeedFile)),
		zap.String("listen", e.cfg.Listen))
}
