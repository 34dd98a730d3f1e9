package caddymodule

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// fullSyncEvery is how often the store's whole filesystem is synced
// (syncfs), for what the event rounds do not cover: stream and consumer
// metadata, index files, the DLQ stream and the delivery-state bucket,
// which nats-server writes without fsync when SyncAlways is off. It runs
// whether or not events come in: the forwarder writes dead letters and
// consumer state on its own. On a clean filesystem it costs next to
// nothing. With a lazy interval longer than this, the full sync runs at
// that interval instead (nats-server's own timer, which did it before,
// ran at the interval too).
const fullSyncEvery = time.Second

// blockSyncer makes the WEBHOOKS stream's newly written messages durable
// with fdatasync(2) of the block files written since the previous round,
// plus an fsync of their directory when a new block file appeared. It
// relies on nats-server v2.15 naming a stream's blocks <n>.blk with n
// growing by one per new block, and writing only into the newest one
// (pinned by TestPinBlocksGrowByOne). A round costs one fdatasync of one
// file, like nats-server's own SyncAlways, instead of a syncfs that also
// flushes every other dirty page of the filesystem (on a shared disk,
// several times slower).
type blockSyncer struct {
	store, msgs string
	// newest is the highest block index the previous round synced; 0
	// before the first round, which syncs the whole filesystem.
	newest uint64

	// Beside the rounds, a goroutine syncs the whole filesystem every
	// fullEvery.
	fullEvery time.Duration
	stop      chan struct{}
	done      chan struct{}
	log       *zap.Logger
}

// storeSyncer returns the sync function of the store dir's committer, and
// one that stops its background full sync. lazy is the lazy sync interval
// (0 for group commit); it stretches the full sync's period when longer
// than fullSyncEvery.
func storeSyncer(dir string, lazy time.Duration, log *zap.Logger) (syncFn, closeFn func() error, err error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, nil, fmt.Errorf("store directory to fsync: %w", err)
	}
	s := &blockSyncer{store: dir, msgs: streamBlockDir(dir), fullEvery: max(lazy, fullSyncEvery),
		stop: make(chan struct{}), done: make(chan struct{}), log: log}
	go s.fullSyncLoop()
	return s.sync, s.close, nil
}

// sync is one round: everything acknowledged before it started becomes
// durable.
func (s *blockSyncer) sync() error {
	if s.newest == 0 {
		return s.prime()
	}
	idx := s.newest
	for ; ; idx++ {
		err := fdatasyncPath(s.blockPath(idx))
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if err != nil {
			return err
		}
	}
	if idx == s.newest {
		// The newest block is gone (a purge): start over from the
		// directory.
		return s.prime()
	}
	if idx-1 > s.newest {
		if err := fsyncPath(s.msgs); err != nil {
			return err
		}
	}
	s.newest = idx - 1
	return nil
}

// prime finds the newest block, then syncs the whole filesystem, which
// covers it, the blocks before it and every directory entry.
func (s *blockSyncer) prime() error {
	newest, err := s.scan()
	if err != nil {
		return err
	}
	if err := syncfsPath(s.store); err != nil {
		return err
	}
	s.newest = newest
	return nil
}

// scan returns the highest block index in the stream's directory, 0 if
// there is none yet.
func (s *blockSyncer) scan() (uint64, error) {
	entries, err := os.ReadDir(s.msgs)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read the stream's block directory: %w", err)
	}
	var newest uint64
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".blk"); ok {
			if i, err := strconv.ParseUint(n, 10, 64); err == nil {
				newest = max(newest, i)
			}
		}
	}
	return newest, nil
}

func (s *blockSyncer) blockPath(i uint64) string {
	return filepath.Join(s.msgs, strconv.FormatUint(i, 10)+".blk")
}

// fullSyncLoop syncs the whole filesystem every fullEvery. Its failures
// are logged, not sticky: events are covered by the rounds (or the lazy
// passes), whose failures are.
func (s *blockSyncer) fullSyncLoop() {
	defer close(s.done)
	t := time.NewTicker(s.fullEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		if err := syncfsPath(s.store); err != nil {
			s.log.Error("event store: periodic sync of stream metadata and consumer state failed; events stay covered by their own fsync, but check the disk", zap.Error(err))
		}
	}
}

func (s *blockSyncer) close() error {
	close(s.stop)
	<-s.done
	return nil
}

// fdatasyncPath fdatasyncs a file (its data and the metadata needed to
// read it back).
func fdatasyncPath(path string) error {
	return withFile(path, "fdatasync", unix.Fdatasync)
}

// fsyncPath fsyncs a file or directory.
func fsyncPath(path string) error {
	return withFile(path, "fsync", unix.Fsync)
}

// syncfsPath syncs the whole filesystem holding path (syncfs(2); since
// Linux 5.8 it reports writeback errors).
func syncfsPath(path string) error {
	return withFile(path, "syncfs", unix.Syncfs)
}

// withFile opens path read-only and runs op on its descriptor. A missing
// file is returned as is (fs.ErrNotExist); other errors name op and path.
// It opens with open(2) itself: os.Open would also fstat the file, try to
// register it with the runtime's poller and allocate an *os.File, once
// per group-commit round and block.
func withFile(path, op string, fn func(fd int) error) error {
	fd, err := openReadOnly(path)
	if errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", op, path, err)
	}
	defer unix.Close(fd)
	if err := fn(fd); err != nil {
		return fmt.Errorf("%s %s: %w", op, path, err)
	}
	return nil
}

// openReadOnly opens path read-only and close-on-exec, retrying when a
// signal interrupts the call (as os.Open does); its error is an
// *fs.PathError, as os.Open's.
func openReadOnly(path string) (int, error) {
	for {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return -1, &fs.PathError{Op: "open", Path: path, Err: err}
		}
		return fd, nil
	}
}
