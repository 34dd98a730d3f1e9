package caddymodule

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// TestNodeKeyShared: two gateways that announce themselves under one key
// in WEBHOOKS_NODES (two on one host without a server_name, or a copied
// server_name) count as one, and each runs the rate meant for two; the
// heartbeat notices the other writer and warns, naming the key and the
// fix. A gateway alone under its key (a reload's new counter in the same
// process included) never warns. Real parts: an in-process JetStream
// server and its KV bucket.
func TestNodeKeyShared(t *testing.T) {
	js := dialJS(t, startJetStream(t).ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: nodesBucket, History: 1, TTL: nodeTTL})
	if err != nil {
		t.Fatal(err)
	}
	counter := func(instance string) (*nodeCounter, *observer.ObservedLogs) {
		core, logs := observer.New(zap.WarnLevel)
		return newNodeCounter(kv, "gw", zap.New(core), func(int) {}, instance), logs
	}
	a, aLogs := counter("aaaa")
	reloaded, reloadedLogs := counter("aaaa")
	for _, nc := range []*nodeCounter{a, reloaded, a, reloaded} {
		if err := nc.beat(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if aLogs.Len()+reloadedLogs.Len() != 0 {
		t.Errorf("one gateway (and its reload) warned: %v %v", aLogs.All(), reloadedLogs.All())
	}
	b, bLogs := counter("bbbb")
	for _, nc := range []*nodeCounter{b, a, b, a} {
		if err := nc.beat(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for name, logs := range map[string]*observer.ObservedLogs{"a": aLogs, "b": bLogs} {
		all := logs.All()
		if len(all) != 1 || !strings.Contains(all[0].Message, "give each gateway its own server_name") || all[0].ContextMap()["key"] != "gw" {
			t.Errorf("gateway %s logged %v; want one warning naming the key and the fix (at most one a minute)", name, all)
		}
	}
	if n := a.count(); n != 1 {
		t.Errorf("the bucket counts %d gateways; the two share one entry", n)
	}
}
