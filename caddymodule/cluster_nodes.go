package caddymodule

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/hookgate/hookgate/event"
)

// nodesBucket is the KV bucket in which every gateway of a cluster (or of
// an external NATS) announces itself: key the gateway's node key (see
// nodeKey), value the time of its last heartbeat (RFC 3339, UTC), a space
// and nodeInstance (older gateways wrote the time alone). Its
// entries expire after nodeTTL, so the bucket holds the live gateways, and
// each divides its destinations' rates by their number. Subscribers cannot
// read or write it: their permissions allow no KV_* stream and no $KV.>
// subject (auth.go).
const nodesBucket = "WEBHOOKS_NODES"

// nodeBeat is how often a gateway renews its entry and re-counts the
// live gateways; nodeTTL is how long an entry outlives its last renewal.
// nodeTTL rides out a stream leader election (4–9 s in nats-server
// v2.15.2), during which no heartbeat can be written. So a gateway that
// joins is counted by the others within nodeBeat, and one that dies
// within nodeTTL + nodeBeat.
const (
	nodeBeat = 2 * time.Second
	nodeTTL  = 15 * time.Second
)

// nodeInstance tells this process's heartbeats from those of another
// gateway that has the same node key (two gateways on one host without a
// server_name, or a copied server_name); a reload's new counter in the
// same process keeps it. 16 hex digits, random per process.
var nodeInstance = func() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}()

// nodeDupLogEvery is the least time between two warnings about a shared
// node key.
const nodeDupLogEvery = time.Minute

// nodeCounter keeps this gateway's entry in nodesBucket alive and counts
// the entries: the number of gateways that share the destinations'
// consumers, and so their rates.
type nodeCounter struct {
	kv  jetstream.KeyValue
	key string
	log *zap.Logger
	// live is the last count, at least 1 (this gateway).
	live atomic.Int64
	// share is told the count after each beat.
	share func(n int)
	// instance is written with each heartbeat (nodeInstance); dupLog lets
	// a shared key be logged once per nodeDupLogEvery.
	instance string
	dupLog   rate.Sometimes
	cancel   context.CancelFunc
	done     chan struct{}
}

// nodeKey is this gateway's key in nodesBucket: its server_name when one
// is set (on an embedded cluster it must be, unique per node), else the
// host name. It is stable across restarts, so a restarted gateway takes
// over its old entry instead of being counted twice.
func (a *App) nodeKey() string {
	name := a.ServerName
	if name == "" {
		name, _ = os.Hostname()
	}
	key := []byte(name)
	for i, c := range key {
		key[i] = event.TokenByte(c)
	}
	return orDefault(string(key), defaultServerName)
}

// sharedConsumers reports whether other gateways may pull from this
// app's consumers: on an embedded cluster or an external NATS.
func (a *App) sharedConsumers() bool { return a.ecfg.clustered() || a.ecfg.external() }

// startNodeCounter opens (or creates) nodesBucket, writes the first
// heartbeat and counts the live gateways once, then keeps both up in the
// background until stopNodeCounter. share is called with each new count.
func (a *App) startNodeCounter(ctx context.Context, share func(n int)) (*nodeCounter, error) {
	kv, err := a.nodesBucket(ctx)
	if err != nil {
		return nil, fmt.Errorf("gateway heartbeat bucket %s: %w", nodesBucket, err)
	}
	nc := newNodeCounter(kv, a.nodeKey(), a.logger, share, nodeInstance)
	if err := nc.beat(ctx); err != nil {
		return nil, err
	}
	bg, cancel := context.WithCancel(context.Background())
	nc.cancel = cancel
	go nc.loop(bg)
	return nc, nil
}

// newNodeCounter returns a counter of this gateway's entry key in kv,
// written with instance, that tells share each count; its loop is not
// running.
func newNodeCounter(kv jetstream.KeyValue, key string, log *zap.Logger, share func(n int), instance string) *nodeCounter {
	nc := &nodeCounter{kv: kv, key: key, log: log, share: share, instance: instance,
		dupLog: rate.Sometimes{Interval: nodeDupLogEvery}, done: make(chan struct{})}
	nc.live.Store(1)
	return nc
}

// nodesBucket opens nodesBucket. On an embedded cluster it is created or
// updated to the app's replicas; on an external NATS an existing bucket is
// left as the operators made it, as the streams are (external.go).
func (a *App) nodesBucket(ctx context.Context) (jetstream.KeyValue, error) {
	if a.ecfg.external() {
		kv, err := a.engine.js.KeyValue(ctx, nodesBucket)
		if !errors.Is(err, jetstream.ErrBucketNotFound) {
			return kv, err
		}
	}
	return a.engine.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      nodesBucket,
		Description: "Hookgate: the live gateways, to share the destinations' rates",
		History:     1,
		TTL:         nodeTTL,
		Storage:     jetstream.FileStorage,
		Replicas:    max(1, a.Replicas),
	})
}

// loop beats every nodeBeat until ctx ends.
func (nc *nodeCounter) loop(ctx context.Context) {
	defer close(nc.done)
	t := time.NewTicker(nodeBeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		bctx, cancel := context.WithTimeout(ctx, nodeBeat)
		if err := nc.beat(bctx); err != nil && ctx.Err() == nil {
			// The last count stays: the gateways are as many as before
			// until the bucket answers again.
			nc.log.Debug("gateway heartbeat", zap.Error(err))
		}
		cancel()
	}
}

// beat renews this gateway's entry, then counts the entries and tells
// share (every time: a forwarder started since the last beat may not
// know the count yet; SetRateShare does nothing when it is unchanged).
func (nc *nodeCounter) beat(ctx context.Context) error {
	if e, err := nc.kv.Get(ctx, nc.key); err == nil {
		nc.checkShared(e.Value())
	}
	if _, err := nc.kv.Put(ctx, nc.key, []byte(time.Now().UTC().Format(time.RFC3339)+" "+nc.instance)); err != nil {
		return fmt.Errorf("gateway heartbeat in %s: %w", nodesBucket, err)
	}
	st, err := nc.kv.Status(ctx)
	if err != nil {
		return fmt.Errorf("count the gateways in %s: %w", nodesBucket, err)
	}
	// History 1 and no deletes: one message per live gateway.
	n := max(1, int64(st.Values()))
	if old := nc.live.Swap(n); old != n {
		nc.log.Info("gateways sharing the destinations changed", zap.Int64("gateways", n), zap.Int64("before", old))
	}
	nc.share(int(n))
	return nil
}

// checkShared warns (at most every nodeDupLogEvery) when the entry under
// this gateway's key was last written by another gateway: both count as
// one, so each runs a larger share of every destination's rate than the
// cluster's cap allows.
func (nc *nodeCounter) checkShared(v []byte) {
	_, other, ok := strings.Cut(string(v), " ")
	if !ok || other == nc.instance {
		return // our own, or a gateway too old to say
	}
	if turn(&nc.dupLog) {
		nc.log.Warn("another gateway announces itself under this gateway's key in "+nodesBucket+", so the two count as one and each runs too large a share of every destination's rate: give each gateway its own server_name",
			zap.String("key", nc.key))
	}
}

// count returns the last count of live gateways (at least 1).
func (nc *nodeCounter) count() int {
	if nc == nil {
		return 1
	}
	return int(nc.live.Load())
}

// stop ends the heartbeat. The entry is left to expire: a reload's next
// config renews the same key at once, and a gateway that stops for good
// is counted nodeTTL longer, which only lowers the others' rates.
func (nc *nodeCounter) stop() {
	if nc == nil || nc.cancel == nil {
		return
	}
	nc.cancel()
	<-nc.done
}

// startSharing starts counting the gateways when the consumers are shared
// and returns the count so far (1 when they are not).
func (a *App) startSharing(ctx context.Context) (int, error) {
	if !a.sharedConsumers() {
		return 1, nil
	}
	nc, err := a.startNodeCounter(ctx, a.shareRates)
	if err != nil {
		return 0, err
	}
	a.fwdMu.Lock()
	old := a.sharing
	a.sharing = nc
	a.fwdMu.Unlock()
	old.stop()
	return nc.count(), nil
}

// stopSharing ends the app's heartbeat, if any.
func (a *App) stopSharing() {
	a.fwdMu.Lock()
	nc := a.sharing
	a.sharing = nil
	a.fwdMu.Unlock()
	nc.stop()
}

// liveGateways returns how many gateways the app counts (0 when it does
// not count them).
func (a *App) liveGateways() int {
	a.fwdMu.RLock()
	nc := a.sharing
	a.fwdMu.RUnlock()
	if nc == nil {
		return 0
	}
	return nc.count()
}

// shareRates divides every running forwarder's rate among n gateways.
func (a *App) shareRates(n int) {
	a.fwdMu.RLock()
	defer a.fwdMu.RUnlock()
	for _, f := range a.forwarders {
		f.SetRateShare(n)
	}
}
