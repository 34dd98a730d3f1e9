package caddymodule

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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

// TestPinLazyLeavesServerTimerAtDefault: with a lazy interval the engine
// leaves nats-server's own sync timer at its default of 2 minutes and
// SyncAlways off, so the committer's passes (store_lazy.go), not
// fileStore.syncBlocks under the block's lock, keep "fsynced within
// <interval>". nats-server's streams take their file store's
// SyncInterval from the server options (stream.go, fsCfg.SyncInterval =
// s.getOpts().SyncInterval), which JetStreamConfig reflects; 0 becomes
// defaultSyncInterval (opts.go setBaselineOptions, filestore.go). If this
// fails, nats-server syncs under its locks again and stalls every
// publish for the length of an fsync.
func TestPinLazyLeavesServerTimerAtDefault(t *testing.T) {
	e := startStore(t, "200ms", false, 0)
	jc := e.srv.JetStreamConfig()
	if jc.SyncAlways || jc.SyncInterval != 2*time.Minute {
		t.Fatalf("sync 200ms runs nats-server with SyncAlways %v, sync_interval %v; want false and its 2m default (the committer syncs every 200ms outside its locks)", jc.SyncAlways, jc.SyncInterval)
	}
	if e.commit.every != 200*time.Millisecond || e.commit.sync == nil {
		t.Fatalf("the committer of sync 200ms passes every %v (sync set: %v), want 200ms", e.commit.every, e.commit.sync != nil)
	}
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

// TestPinBlocksGrowByOne: the stream's block files are named <n>.blk,
// a new block takes the next n, and a message is written into the newest
// block present when it was published or a later one. The group commit's
// rounds (store_sync_linux.go) sync from the newest block they saw
// upwards; if this fails, a round could miss an event's block.
func TestPinBlocksGrowByOne(t *testing.T) {
	e := startStore(t, "always", false, 100<<10) // 32 KB blocks
	syncer := &blockSyncer{msgs: streamBlockDir(e.cfg.StoreDir)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 120 {
		before, err := syncer.scan()
		if err != nil {
			t.Fatal(err)
		}
		body := randomBody(t)
		msg := nats.NewMsg(event.SubjectRoot + ".v1.pin.test")
		msg.Data = bytes.Repeat(body, 4) // 512 bytes
		if _, err := e.publishRaw(ctx, msg); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		found := false
		for n := max(before, 1); ; n++ {
			b, err := os.ReadFile(syncer.blockPath(n))
			if err != nil {
				break
			}
			found = found || bytes.Contains(b, msg.Data)
		}
		if !found {
			t.Fatalf("message %d is not in block %d (the newest before it) or a later one: nats-server's block layout changed; group commit rounds may miss events", i, before)
		}
	}
	entries, err := os.ReadDir(syncer.msgs)
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	for _, en := range entries {
		if strings.HasSuffix(en.Name(), ".blk") {
			blocks = append(blocks, en.Name())
		}
	}
	newest, _ := syncer.scan()
	if len(blocks) < 2 || uint64(len(blocks)) != newest {
		t.Fatalf("blocks %v after 60 KB in 32 KB blocks: want 1.blk … n.blk with n ≥ 2, consecutive", blocks)
	}
}

// TestPinStaleIndexRecoversFromBlocks: group commit fsyncs the block files
// an event is in, not the stream's index file (index.db), which may then be
// older than the blocks after a power loss. nats-server must rebuild the
// stream's state from the blocks when the index is stale: here an old
// index.db is put back before a restart, and every event is still there.
func TestPinStaleIndexRecoversFromBlocks(t *testing.T) {
	dir := t.TempDir()
	publishN := func(from, n int) {
		a := openStoreAt(t, dir)
		defer func() { _ = a.Stop() }()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for i := from; i < from+n; i++ {
			msg := nats.NewMsg(event.SubjectRoot + ".v1.pin.test")
			msg.Data = []byte(strconv.Itoa(i))
			if _, err := a.engine.publish(ctx, msg); err != nil {
				t.Fatal(err)
			}
		}
	}
	index := filepath.Join(dir, "jetstream", server.DEFAULT_GLOBAL_ACCOUNT, "streams", event.StreamName, "msgs", "index.db")
	publishN(0, 10)
	stale, err := os.ReadFile(index)
	if err != nil {
		t.Fatalf("no index.db where expected (%v): nats-server's layout changed; re-check what group commit must fsync", err)
	}
	publishN(10, 10)
	if err := os.WriteFile(index, stale, 0o600); err != nil {
		t.Fatal(err)
	}
	a := openStoreAt(t, dir)
	defer func() { _ = a.Stop() }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := a.engine.js.Stream(ctx, event.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	if st := s.CachedInfo().State; st.Msgs != 20 || st.LastSeq != 20 {
		t.Fatalf("after a restart on a stale index.db: %d messages, last seq %d; want 20 and 20 (nats-server no longer rebuilds from the blocks)", st.Msgs, st.LastSeq)
	}
}

// openStoreAt starts a webhooks app on the store dir; the caller stops it.
func openStoreAt(t *testing.T, dir string) *App {
	t.Helper()
	a := provisionApp(t, &App{Store: dir, Listen: "off"})
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	return a
}
