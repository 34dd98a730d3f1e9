//go:build !unix

package caddymodule

import "math"

// freeBytes does not know the free space here: a full store simply tries
// to take writes again every spaceCheckEvery.
func freeBytes(string) (int64, error) { return math.MaxInt64, nil }
