// Package testgw holds what the programs and tests that run a Hookgate
// gateway as a process need around it: the gateway binary built from
// ./cmd/caddy, and free loopback ports for its listeners. The reliability
// suite, bench/compare and the in-process benchmarks share it.
package testgw

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
)

// ModuleRoot walks up from the working directory to Hookgate's go.mod and
// returns its directory.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.Contains(b, []byte("module github.com/hookgate/hookgate")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run from inside the Hookgate repository (no go.mod of github.com/hookgate/hookgate above the working directory)")
		}
		dir = parent
	}
}

// Build builds ./cmd/caddy of the module holding the working directory
// into dir/name and returns the binary's path. A failed build's error
// holds the go command's output.
func Build(dir, name string) (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/caddy")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/caddy: %w\n%s", err, out)
	}
	return bin, nil
}

// FreeAddr returns a loopback host:port that was free a moment ago.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free loopback port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// FreePort is the port of FreeAddr, for a config that writes the host
// itself.
func FreePort() (string, error) {
	addr, err := FreeAddr()
	if err != nil {
		return "", err
	}
	_, port, err := net.SplitHostPort(addr)
	return port, err
}

// MustFreeAddr is FreeAddr for setup code that cannot go on without a
// port: it panics when none can be had.
func MustFreeAddr() string {
	addr, err := FreeAddr()
	if err != nil {
		panic(err)
	}
	return addr
}
