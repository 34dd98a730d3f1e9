package caddymodule

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// storeSyncer returns a function that makes everything written to the
// store's filesystem durable with one syncfs(2), and one that releases it.
// syncfs rather than fsync of each block file: nats-server also writes
// index files, new block files and directory entries without fsync, and
// syncfs covers them all (and, as a side effect, any other dirty data of
// that filesystem). Since Linux 5.8 syncfs reports writeback errors.
func storeSyncer(dir string) (syncFn, closeFn func() error, err error) {
	f, err := openStoreDir(dir)
	if err != nil {
		return nil, nil, err
	}
	fd := int(f.Fd())
	syncFn = func() error {
		if err := unix.Syncfs(fd); err != nil {
			return fmt.Errorf("syncfs %s: %w", dir, err)
		}
		return nil
	}
	return syncFn, f.Close, nil
}

// openStoreDir opens dir for syncing.
func openStoreDir(dir string) (*os.File, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("open store directory to fsync it: %w", err)
	}
	return f, nil
}
