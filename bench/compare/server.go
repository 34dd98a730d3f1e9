package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hookgate/hookgate/internal/testgw"
)

// benchSecret is the GitHub HMAC secret of the "verified" configuration.
const benchSecret = "bench-secret"

// config is one server configuration under test.
type config struct {
	// Name is the short name printed in the table.
	Name string
	// Path is the request path the load generator POSTs to.
	Path string
	// Site is the body of the site block on the measured port; {backend}
	// is the port of the loopback backend (reverse_proxy only).
	Site string
	// Extra is more site blocks (the reverse_proxy backend).
	Extra string
	// Webhooks is the body of the global webhooks block, "" for none.
	Webhooks string
	// Signed makes requests carry GitHub's headers and signature.
	Signed bool
	// Admin is the admin listener's host:port (for /debug/pprof), "" for
	// admin off.
	Admin string
	// Env is more environment of the server process (GOGC=50, ...).
	Env []string
}

const ingestDemo = `webhook_ingest /webhooks/* {
		source demo {
			verify none
			id_header X-Id
		}
	}`

const ingestGitHub = `webhook_ingest /webhooks/* {
		source github {
			verify github ` + benchSecret + `
		}
	}`

// configs are the configurations of the comparison, in the order run.
var configs = []config{
	{Name: "respond", Path: "/webhooks/v1/demo", Site: "respond 200"},
	{Name: "reverse_proxy", Path: "/webhooks/v1/demo", Site: "reverse_proxy 127.0.0.1:{backend}", Extra: "http://127.0.0.1:{backend} {\n\trespond 200\n}\n"},
	{Name: "hookgate-always", Path: "/webhooks/v1/demo", Site: ingestDemo, Webhooks: "sync always"},
	{Name: "hookgate-1s", Path: "/webhooks/v1/demo", Site: ingestDemo, Webhooks: "sync 1s"},
	{Name: "hookgate-github", Path: "/webhooks/v1/github", Site: ingestGitHub, Webhooks: "sync always", Signed: true},
}

// configNamed returns the configuration named name; a name that is not
// among configs is a bug of the program itself (panic).
func configNamed(name string) config {
	for _, c := range configs {
		if c.Name == name {
			return c
		}
	}
	panic("bench/compare: no configuration " + name)
}

// caddyfile renders c for a server on addr with its files under dir.
func (c config) caddyfile(addr, dir, backendPort string) string {
	var b strings.Builder
	admin := "off"
	if c.Admin != "" {
		admin = c.Admin
	}
	fmt.Fprintf(&b, "{\n\tadmin %s\n\tpersist_config off\n\tauto_https off\n\tstorage file_system %s\n\tlog {\n\t\tlevel ERROR\n\t}\n", admin, filepath.Join(dir, "caddy"))
	if c.Webhooks != "" {
		fmt.Fprintf(&b, "\twebhooks {\n\t\tstore %s\n\t\tlisten off\n\t\t%s\n\t}\n", filepath.Join(dir, "store"), c.Webhooks)
	}
	b.WriteString("}\n")
	fmt.Fprintf(&b, "http://%s {\n\t%s\n}\n", addr, c.Site)
	b.WriteString(c.Extra)
	return strings.ReplaceAll(b.String(), "{backend}", backendPort)
}

// server is one running gateway process.
type server struct {
	cmd   *exec.Cmd
	dir   string
	keep  bool   // leave dir (the store) for a restart
	admin string // the admin listener, "" when off
	done  chan error
}

// startServer writes c's Caddyfile into a fresh directory and runs bin on
// it, pinned to core 1 with taskset when pin is set, with GOMAXPROCS procs
// (0: Go's default). It returns once the server answers probe with 2xx;
// stop removes the directory.
func startServer(bin string, c config, addr string, pin bool, procs int, probe func() error) (*server, error) {
	dir, err := os.MkdirTemp("", "hookgate-compare-")
	if err != nil {
		return nil, err
	}
	return startServerIn(dir, false, bin, c, addr, pin, procs, probe)
}

// startServerIn is startServer in dir (the Caddyfile, Caddy's storage and
// the store go under it); keep leaves dir in place when the server stops,
// so the next server on dir restarts on the same store.
func startServerIn(dir string, keep bool, bin string, c config, addr string, pin bool, procs int, probe func() error) (*server, error) {
	backend, err := testgw.FreePort()
	if err != nil {
		return nil, err
	}
	file := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(file, []byte(c.caddyfile(addr, dir, backend)), 0o600); err != nil {
		return nil, err
	}
	args := []string{bin, "run", "--config", file, "--adapter", "caddyfile"}
	if pin {
		args = append([]string{"taskset", "-c", "1"}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = os.Environ()
	if procs > 0 {
		cmd.Env = append(cmd.Env, "GOMAXPROCS="+strconv.Itoa(procs))
	}
	cmd.Env = append(cmd.Env, c.Env...)
	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", c.Name, err)
	}
	s := &server{cmd: cmd, dir: dir, keep: keep, admin: c.Admin, done: make(chan error, 1)}
	go func() { s.done <- cmd.Wait() }()
	if err := s.waitReady(addr, probe); err != nil {
		s.stop()
		return nil, fmt.Errorf("%s did not start (log: %s): %w", c.Name, filepath.Join(dir, "server.log"), err)
	}
	return s, nil
}

// waitReady waits up to readyTimeout for the port to accept and probe to
// pass.
func (s *server) waitReady(addr string, probe func() error) error {
	deadline := time.Now().Add(readyTimeout)
	var err error
	for time.Now().Before(deadline) {
		select {
		case werr := <-s.done:
			s.done <- werr
			return fmt.Errorf("exited: %v", werr)
		default:
		}
		var c net.Conn
		if c, err = net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			if err = probe(); err == nil {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// cpuTicks returns the server's user+system CPU time so far, in clock
// ticks of 1/100 s (Linux's USER_HZ): fields 14 and 15 of /proc/<pid>/stat
// (proc(5)).
func (s *server) cpuTicks() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields after it follow
	// the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	return utime + stime, errors.Join(err1, err2)
}

// ticksPerSecond is Linux's USER_HZ, the unit of /proc/<pid>/stat times.
const ticksPerSecond = 100

// peakRSS returns the server's peak resident set size in bytes (VmHWM of
// /proc/<pid>/status).
func (s *server) peakRSS() (int64, error) { return s.procStatus("VmHWM") }

// rss returns the server's resident set size now, in bytes (VmRSS).
func (s *server) rss() (int64, error) { return s.procStatus("VmRSS") }

// procStatus returns a kB field of /proc/<pid>/status (proc(5)) in bytes.
func (s *server) procStatus(field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc status", field)
}

// stop ends the server (SIGTERM, then SIGKILL after 60s) and removes its
// files unless they are kept for a restart.
func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(60 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	if !s.keep {
		_ = os.RemoveAll(s.dir)
	}
}

// readyTimeout bounds a server's start: a restart on a store of a million
// events rebuilds the dedup window from every block before it answers.
const readyTimeout = 5 * time.Minute
