package caddymodule

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookgate/hookgate/event"
	"github.com/hookgate/hookgate/forwarder"
)

// A backup is a directory holding, for each stream it covers:
//
//	<stream>.json      the stream's config and state as the server reported
//	                   them when the snapshot began (what a restore sends back)
//	<stream>.snapshot  the snapshot itself, byte for byte as the server sent it
//	                   (an S2-compressed tar of the stream's store directory,
//	                   consumers included)
//
// and backup.json, the manifest, written last: a directory without it is
// not a finished backup. The format of the two stream files is JetStream's
// ($JS.API.STREAM.SNAPSHOT / $JS.API.STREAM.RESTORE in nats-server's
// server/jetstream_api.go, the same API `nats stream backup` uses).

// backupManifestFile names the manifest of a backup directory.
const backupManifestFile = "backup.json"

// backupStreams are the streams a backup covers, in the order they are
// snapshotted. Each snapshot is consistent on its own; across streams the
// order makes the copies fit together: the delivery-state bucket first, so
// everything it calls delivered is also acknowledged in the WEBHOOKS
// consumers copied after it (a restore delivers none of it again), and the
// dead-letter stream last, so every event a consumer gave up on before the
// WEBHOOKS copy is in the DLQ copy. The record of the gateway's own
// consumers follows WEBHOOKS: a consumer is recorded as soon as it is
// created, so each consumer in the WEBHOOKS copy has its record in the
// copy after it, and the restored gateway keeps its consumers (without
// the records it would take them for a NATS client's and start them
// afresh, delivering everything again).
var backupStreams = []string{"KV_" + forwarder.StateBucket, event.StreamName, "KV_" + forwarder.OwnerBucket, event.DLQStreamName}

// Limits of the snapshot and restore exchanges.
const (
	// backupChunkSize is the snapshot chunk the server sends and the chunk
	// a restore sends back: the server's default, well under max_payload.
	backupChunkSize = 128 << 10
	// backupChunkTimeout bounds the wait for any one chunk or its ack.
	backupChunkTimeout = 30 * time.Second
)

// backupManifest is backup.json.
type backupManifest struct {
	// Created is when the backup finished, RFC 3339 UTC.
	Created time.Time `json:"created"`
	// Streams lists what the backup holds, in snapshot order.
	Streams []streamBackup `json:"streams"`
}

// streamBackup describes one stream of a backup.
type streamBackup struct {
	Name     string `json:"name"`
	Messages uint64 `json:"messages"`
	Bytes    uint64 `json:"bytes"`
	// SnapshotBytes is the size of <name>.snapshot.
	SnapshotBytes int64 `json:"snapshot_bytes"`
}

// jsAPIError is the error object of a JetStream API answer.
type jsAPIError struct {
	Code        int    `json:"code"`
	ErrCode     int    `json:"err_code"`
	Description string `json:"description"`
}

// jsStreamNotFound is JetStream's error code for a missing stream
// (JSStreamNotFoundErr in nats-server's server/errors.json).
const jsStreamNotFound = 10059

// snapshotAnswer is the server's answer to a snapshot request: the
// stream's config and state, kept raw so a restore hands back exactly what
// the server described.
type snapshotAnswer struct {
	Error  *jsAPIError     `json:"error,omitempty"`
	Config json.RawMessage `json:"config"`
	State  json.RawMessage `json:"state"`
}

// backupStore writes a backup of every stream in backupStreams into dir,
// which must be absent or empty, over nc. Streams that do not exist (no
// destination ever created the delivery-state bucket) are left out.
func backupStore(ctx context.Context, nc *nats.Conn, dir string) (*backupManifest, error) {
	if err := prepareBackupDir(dir); err != nil {
		return nil, err
	}
	m := &backupManifest{}
	for _, name := range backupStreams {
		sb, err := backupStream(ctx, nc, dir, name)
		if errors.Is(err, errNoStream) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("back up stream %s: %w", name, err)
		}
		m.Streams = append(m.Streams, *sb)
	}
	m.Created = time.Now().UTC().Truncate(time.Second)
	if err := writeJSONFile(filepath.Join(dir, backupManifestFile), m); err != nil {
		return nil, err
	}
	return m, nil
}

var errNoStream = errors.New("no such stream")

func prepareBackupDir(dir string) error {
	if !filepath.IsAbs(dir) {
		return fmt.Errorf("backup directory %q: give an absolute path", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("backup directory: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("backup directory: %w", err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("backup directory %s is not empty: give a new or empty directory", dir)
	}
	return nil
}

// backupStream snapshots one stream into dir.
func backupStream(ctx context.Context, nc *nats.Conn, dir, name string) (*streamBackup, error) {
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, fmt.Errorf("subscribe for the snapshot: %w", err)
	}
	defer sub.Unsubscribe()
	// Unlimited pending: the server sends at most its window (8 MiB) ahead
	// of our acks.
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		return nil, err
	}
	req, _ := json.Marshal(map[string]any{"deliver_subject": inbox, "chunk_size": backupChunkSize})
	resp, err := nc.RequestWithContext(ctx, "$JS.API.STREAM.SNAPSHOT."+name, req)
	if err != nil {
		return nil, fmt.Errorf("snapshot request: %w", err)
	}
	var ans snapshotAnswer
	if err := json.Unmarshal(resp.Data, &ans); err != nil {
		return nil, fmt.Errorf("snapshot answer: %w", err)
	}
	if ans.Error != nil {
		if ans.Error.ErrCode == jsStreamNotFound {
			return nil, errNoStream
		}
		return nil, fmt.Errorf("snapshot refused: %s (code %d)", ans.Error.Description, ans.Error.ErrCode)
	}
	meta := map[string]json.RawMessage{"config": ans.Config, "state": ans.State}
	if err := writeJSONFile(filepath.Join(dir, name+".json"), meta); err != nil {
		return nil, err
	}
	size, err := receiveSnapshot(ctx, sub, filepath.Join(dir, name+".snapshot"))
	if err != nil {
		return nil, err
	}
	var st struct {
		Msgs  uint64 `json:"messages"`
		Bytes uint64 `json:"bytes"`
	}
	_ = json.Unmarshal(ans.State, &st)
	return &streamBackup{Name: name, Messages: st.Msgs, Bytes: st.Bytes, SnapshotBytes: size}, nil
}

// receiveSnapshot writes the chunks arriving on sub to path, acking each,
// until the server's closing message: an empty body with status 204, or
// an error status.
func receiveSnapshot(ctx context.Context, sub *nats.Subscription, path string) (int64, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, fmt.Errorf("snapshot file: %w", err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	var size int64
	for {
		cctx, cancel := context.WithTimeout(ctx, backupChunkTimeout)
		msg, err := sub.NextMsgWithContext(cctx)
		cancel()
		if err != nil {
			return size, fmt.Errorf("snapshot chunk after %d bytes: %w", size, err)
		}
		if len(msg.Data) == 0 {
			if st := msg.Header.Get("Status"); st != "" && st != "204" {
				return size, fmt.Errorf("snapshot ended with status %s %s", st, msg.Header.Get("Description"))
			}
			break
		}
		if _, err := w.Write(msg.Data); err != nil {
			return size, fmt.Errorf("snapshot file: %w", err)
		}
		size += int64(len(msg.Data))
		if msg.Reply != "" {
			if err := msg.Respond(nil); err != nil {
				return size, fmt.Errorf("ack snapshot chunk: %w", err)
			}
		}
	}
	if err := w.Flush(); err != nil {
		return size, fmt.Errorf("snapshot file: %w", err)
	}
	if err := f.Sync(); err != nil {
		return size, fmt.Errorf("snapshot file: %w", err)
	}
	return size, f.Close()
}

func writeJSONFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("backup file: %w", err)
	}
	defer f.Close()
	if _, err := f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("backup file %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("backup file %s: %w", path, err)
	}
	return f.Close()
}

// readBackupManifest reads dir's manifest.
func readBackupManifest(dir string) (*backupManifest, error) {
	b, err := os.ReadFile(filepath.Join(dir, backupManifestFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s has no %s: not a finished Hookgate backup", dir, backupManifestFile)
	}
	if err != nil {
		return nil, err
	}
	var m backupManifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", backupManifestFile, err)
	}
	return &m, nil
}

// restoreStore replaces the streams of the backup in dir with their copies.
// Each stream is deleted first, so the caller stops whatever consumes them.
func restoreStore(ctx context.Context, nc *nats.Conn, dir string) (*backupManifest, error) {
	m, err := readBackupManifest(dir)
	if err != nil {
		return nil, err
	}
	for _, sb := range m.Streams {
		if err := restoreStream(ctx, nc, dir, sb.Name); err != nil {
			return nil, fmt.Errorf("restore stream %s: %w", sb.Name, err)
		}
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	if err := forwarder.RecordRestoredConsumers(ctx, js); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	return m, nil
}

// restoreStream deletes the stream name if it exists and restores it from
// dir.
func restoreStream(ctx context.Context, nc *nats.Conn, dir, name string) error {
	meta, err := os.ReadFile(filepath.Join(dir, name+".json"))
	if err != nil {
		return err
	}
	f, err := os.Open(filepath.Join(dir, name+".snapshot"))
	if err != nil {
		return err
	}
	defer f.Close()
	if err := deleteStream(ctx, nc, name); err != nil {
		return err
	}
	resp, err := nc.RequestWithContext(ctx, "$JS.API.STREAM.RESTORE."+name, meta)
	if err != nil {
		return fmt.Errorf("restore request: %w", err)
	}
	var ans struct {
		Error          *jsAPIError `json:"error,omitempty"`
		DeliverSubject string      `json:"deliver_subject"`
	}
	if err := json.Unmarshal(resp.Data, &ans); err != nil {
		return fmt.Errorf("restore answer: %w", err)
	}
	if ans.Error != nil {
		return fmt.Errorf("restore refused: %s (code %d)", ans.Error.Description, ans.Error.ErrCode)
	}
	return sendSnapshot(ctx, nc, ans.DeliverSubject, f)
}

// sendSnapshot sends r to subject in chunks, each acknowledged by the
// server, then the empty message that ends it; the answer to that says
// whether the stream was restored.
func sendSnapshot(ctx context.Context, nc *nats.Conn, subject string, r io.Reader) error {
	buf := make([]byte, backupChunkSize)
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			if err := requestChunk(ctx, nc, subject, buf[:n]); err != nil {
				return err
			}
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read snapshot: %w", err)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 5*backupChunkTimeout)
	defer cancel()
	resp, err := nc.RequestWithContext(cctx, subject, nil)
	if err != nil {
		return fmt.Errorf("finish restore: %w", err)
	}
	var done struct {
		Error *jsAPIError `json:"error,omitempty"`
	}
	if err := json.Unmarshal(resp.Data, &done); err != nil {
		return fmt.Errorf("restore result: %w", err)
	}
	if done.Error != nil {
		return fmt.Errorf("restore failed: %s (code %d)", done.Error.Description, done.Error.ErrCode)
	}
	return nil
}

func requestChunk(ctx context.Context, nc *nats.Conn, subject string, chunk []byte) error {
	cctx, cancel := context.WithTimeout(ctx, backupChunkTimeout)
	defer cancel()
	resp, err := nc.RequestWithContext(cctx, subject, chunk)
	if err != nil {
		return fmt.Errorf("send snapshot chunk: %w", err)
	}
	if len(resp.Data) > 0 {
		var e struct {
			Error *jsAPIError `json:"error,omitempty"`
		}
		if json.Unmarshal(resp.Data, &e) == nil && e.Error != nil {
			return fmt.Errorf("restore chunk refused: %s (code %d)", e.Error.Description, e.Error.ErrCode)
		}
	}
	return nil
}

// deleteStream deletes the stream name; a missing stream is no error.
func deleteStream(ctx context.Context, nc *nats.Conn, name string) error {
	resp, err := nc.RequestWithContext(ctx, "$JS.API.STREAM.DELETE."+name, nil)
	if err != nil {
		return fmt.Errorf("delete stream before restoring it: %w", err)
	}
	var ans struct {
		Error *jsAPIError `json:"error,omitempty"`
	}
	if err := json.Unmarshal(resp.Data, &ans); err != nil {
		return fmt.Errorf("delete stream answer: %w", err)
	}
	if ans.Error != nil && ans.Error.ErrCode != jsStreamNotFound {
		return fmt.Errorf("delete stream before restoring it: %s (code %d)", ans.Error.Description, ans.Error.ErrCode)
	}
	return nil
}
