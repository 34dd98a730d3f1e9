//go:build !unix

package caddymodule

import "os"

// lockStore is a no-op where flock does not exist; there, one store
// directory must not be shared by two processes.
func lockStore(string) (*os.File, error) { return nil, nil }

func unlockStore(*os.File) error { return nil }
