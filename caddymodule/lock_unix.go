//go:build unix

package caddymodule

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockStore takes an exclusive, non-blocking lock on the store directory so
// that a second process opening the same store fails instead of corrupting
// it. nats-server itself takes no lock. The lock dies with the process.
func lockStore(dir string) (*os.File, error) {
	path := filepath.Join(dir, "hookgate.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store %s: open lock file: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("store %s is in use by another process (lock %s held); stop that process, or give this one another 'store' directory — within one Caddy process use 'caddy reload', which shares the store", dir, path)
		}
		return nil, fmt.Errorf("store %s: lock %s: %w", dir, path, err)
	}
	return f, nil
}

func unlockStore(f *os.File) error {
	if f == nil {
		return nil
	}
	// Closing the descriptor releases the flock.
	return f.Close()
}
