package caddymodule

import (
	"syscall"
	"testing"
)

// TestPinStreamOnStoreFilesystem: syncfs(2) of the store directory covers
// the filesystem the directory is on; the stream's block files must be on
// that same filesystem (nats-server keeps them under the store directory).
func TestPinStreamOnStoreFilesystem(t *testing.T) {
	a := startApp(t, "")
	var store, blocks syscall.Stat_t
	if err := syscall.Stat(a.ecfg.StoreDir, &store); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Stat(streamBlockDir(a.ecfg.StoreDir), &blocks); err != nil {
		t.Fatalf("the stream's block directory is not where group commit expects it: %v", err)
	}
	if store.Dev != blocks.Dev {
		t.Fatalf("store %s (device %d) and its stream blocks (device %d) are on different filesystems: one syncfs does not cover both", a.ecfg.StoreDir, store.Dev, blocks.Dev)
	}
}
