package caddymodule

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookgate/hookgate/event"
)

// The tests in this file pin the nats-server internals that group commit
// (store_group.go) relies on. Each fails loudly when a dependency upgrade
// changes one; read its message before "fixing" it: the promise "a 2xx
// means the event is on disk" depends on it.

// pinnedNatsServer is the nats-server version whose filestore was read for
// group commit: filestore.go msgBlock.writeMsgRecordLocked (flush in place
// when fs.fip, i.e. not AsyncFlush) → flushPendingMsgsLocked (pwrite, and
// fsync only when syncAlways), stream.go fileStoreConfig (AsyncFlush only
// for replicas > 1 or PersistMode async).
const pinnedNatsServer = "2.15.2"

func TestPinNatsServerVersion(t *testing.T) {
	if server.VERSION != pinnedNatsServer {
		t.Fatalf("nats-server is %s, group commit was verified against %s: re-read filestore.go (writeMsgRecordLocked, flushPendingMsgsLocked) and stream.go (AsyncFlush), run the TestPin* tests, then update pinnedNatsServer",
			server.VERSION, pinnedNatsServer)
	}
}

// streamBlockDir is where nats-server keeps the WEBHOOKS stream's block
// files: <store>/jetstream/<account>/streams/<stream>/msgs, the gateway's
// in-process connection being in the global account $G.
func streamBlockDir(storeDir string) string {
	return filepath.Join(storeDir, "jetstream", server.DEFAULT_GLOBAL_ACCOUNT, "streams", event.StreamName, "msgs")
}

// blockBytes reads every .blk file of the stream.
func blockBytes(t *testing.T, storeDir string) []byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(streamBlockDir(storeDir), "*.blk"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no .blk file in %s (%v): the store's file layout changed; syncfs of the store directory must still cover the stream's files", streamBlockDir(storeDir), err)
	}
	var all []byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

// TestPinMessageBytesInBlockAtPubAck: with the store as group commit runs
// it (SyncAlways off, R1, file storage, default persist mode), a message's
// bytes are in the stream's block files as soon as its PubAck returns,
// before any fsync. If this fails, a sync round that starts after the
// PubAck may not cover the event, and sync always is no longer durable.
func TestPinMessageBytesInBlockAtPubAck(t *testing.T) {
	a := startApp(t, "")
	e := a.engine
	if e.srv.JetStreamConfig().SyncAlways {
		t.Fatal("group commit runs nats-server with SyncAlways: per-event fsync is back")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := e.js.Stream(ctx, event.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	cfg := info.CachedInfo().Config
	if cfg.Storage != jetstream.FileStorage || cfg.Replicas != 1 || cfg.PersistMode != jetstream.DefaultPersistMode {
		t.Fatalf("stream storage %v replicas %d persist mode %v: group commit needs file storage, R1 and the default persist mode (others write after the PubAck)",
			cfg.Storage, cfg.Replicas, cfg.PersistMode)
	}
	for i := range 50 {
		body := randomBody(t)
		msg := nats.NewMsg(event.SubjectRoot + ".v1.pin.test")
		msg.Data = body
		msg.Header.Set(jetstream.MsgIDHeader, "pin-"+hex.EncodeToString(body[:8]))
		ack, err := e.publishRaw(ctx, msg)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(blockBytes(t, a.ecfg.StoreDir), body) {
			t.Fatalf("message %d (seq %d) is not in the stream's block files right after its PubAck: nats-server no longer writes before it acknowledges; group commit is unsafe", i, ack.Sequence)
		}
		// A duplicate's PubAck names the original, already written.
		dup := nats.NewMsg(msg.Subject)
		dup.Data = []byte("other bytes")
		dup.Header.Set(jetstream.MsgIDHeader, msg.Header.Get(jetstream.MsgIDHeader))
		dack, err := e.publishRaw(ctx, dup)
		if err != nil {
			t.Fatal(err)
		}
		if !dack.Duplicate || dack.Sequence != ack.Sequence {
			t.Fatalf("duplicate PubAck %+v, want Duplicate with the original's sequence %d", dack, ack.Sequence)
		}
	}
}

func randomBody(t *testing.T) []byte {
	t.Helper()
	b := make([]byte, 64)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return []byte(hex.EncodeToString(b))
}
