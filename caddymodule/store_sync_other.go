//go:build !linux

package caddymodule

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"
)

// storeSyncer returns a function that fsyncs every file and directory of
// the store (where syncfs(2) does not exist), and one that releases it.
// It is correct but slower than Linux's one syncfs. The lazy interval
// changes nothing here: every call syncs everything.
func storeSyncer(dir string, _ time.Duration, _ *zap.Logger) (syncFn, closeFn func() error, err error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, nil, fmt.Errorf("store directory to fsync: %w", err)
	}
	syncFn = func() error {
		return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while walking (a compacted block)
			}
			if err != nil {
				return err
			}
			f, err := os.Open(path)
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("fsync %s: %w", path, err)
			}
			defer f.Close()
			if err := f.Sync(); err != nil {
				return fmt.Errorf("fsync %s: %w", path, err)
			}
			return nil
		})
	}
	return syncFn, func() error { return nil }, nil
}
