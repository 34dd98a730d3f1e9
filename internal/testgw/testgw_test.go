package testgw

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

// TestFreeAddrListens: the address FreeAddr gives is on loopback and can
// be listened on; FreePort's port too.
func TestFreeAddrListens(t *testing.T) {
	addr := MustFreeAddr()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	ln.Close()
	if host, _, _ := net.SplitHostPort(addr); host != "127.0.0.1" {
		t.Errorf("FreeAddr gave %s, want a 127.0.0.1 address", addr)
	}
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	ln, err = net.Listen("tcp", net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		t.Fatalf("listen on port %s: %v", port, err)
	}
	ln.Close()
}

// TestModuleRoot: from inside the repository, the root is where
// Hookgate's go.mod is; from outside, an error says where to run.
func TestModuleRoot(t *testing.T) {
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "cmd", "caddy")); err != nil {
		t.Errorf("root %s has no cmd/caddy: %v", root, err)
	}
	t.Chdir(t.TempDir())
	if _, err := ModuleRoot(); err == nil {
		t.Error("ModuleRoot found a root outside the repository")
	}
}
