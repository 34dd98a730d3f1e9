package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/hookgate/hookgate/internal/testgw"
)

// gwConfig fills the gateway's Caddyfile.
type gwConfig struct {
	Dir      string // working directory: Caddyfile, logs, Caddy's own data
	Store    string // the JetStream store directory
	HTTP     string // the webhook site's host:port
	Admin    string // Caddy's admin API host:port
	NATS     string // the NATS client listener's host:port
	Sync     string // "always" or an interval
	MaxStore string // "" for the default
	// Destinations are destination blocks for the webhooks app.
	Destinations []destConfig
	// Sources are extra source blocks (the demo source is always there).
	Sources string
	// Timeouts is the body of Caddy's servers { timeouts { } } block.
	Timeouts string
	// Ingest holds extra lines for webhook_ingest.
	Ingest string
}

// destConfig is one destination block.
type destConfig struct {
	Name  string
	URL   string
	Extra string // more lines, e.g. "rate 100/s"
}

// newGWConfig returns a config with fresh ports in dir.
func newGWConfig(dir string) gwConfig {
	return gwConfig{
		Dir:      dir,
		Store:    filepath.Join(dir, "store"),
		HTTP:     testgw.MustFreeAddr(),
		Admin:    testgw.MustFreeAddr(),
		NATS:     testgw.MustFreeAddr(),
		Sync:     "always",
		Timeouts: "read_header 5s\n\t\t\tread_body 10s",
	}
}

var caddyfileTmpl = template.Must(template.New("Caddyfile").Parse(`{
	admin {{.Admin}}
	persist_config off
	auto_https off
	storage file_system {{.Dir}}/caddy
	webhooks {
		store {{.Store}}
		sync {{.Sync}}
		listen {{.NATS}}
{{- if .MaxStore}}
		max_store {{.MaxStore}}
{{- end}}
{{- range .Destinations}}
		destination {{.Name}} {
			url {{.URL}}
			subjects webhooks.>
{{.Extra}}
		}
{{- end}}
	}
	servers {
		timeouts {
			{{.Timeouts}}
		}
	}
}

http://{{.HTTP}} {
	webhook_ingest {
		versions v1
{{.Ingest}}
		source demo {
			verify none
			id_header X-Id
			type_header X-Type
		}
{{.Sources}}
	}
}
`))

// caddyfile renders the config.
func (c gwConfig) caddyfile() string {
	var b strings.Builder
	if err := caddyfileTmpl.Execute(&b, c); err != nil {
		panic(err)
	}
	return b.String()
}

// writeCaddyfile writes the config to <Dir>/Caddyfile and returns the path.
func (c gwConfig) writeCaddyfile() (string, error) {
	path := filepath.Join(c.Dir, "Caddyfile")
	return path, os.WriteFile(path, []byte(c.caddyfile()), 0o600)
}

// gateway is one running gateway process.
type gateway struct {
	bin string
	cfg gwConfig
	// addr is the webhook site's host:port; unlike cfg, which reload
	// replaces, it never changes, so load goroutines may read it.
	addr   string
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // the process's exit, once exited is closed
	// wrap, when set, runs the gateway under another program (strace).
	wrap []string
	log  *os.File
}

// startGateway starts bin run on cfg; it does not wait for readiness.
func startGateway(bin string, cfg gwConfig, wrap ...string) (*gateway, error) {
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, err
	}
	g := &gateway{bin: bin, cfg: cfg, addr: cfg.HTTP, wrap: wrap}
	return g, g.start()
}

func (g *gateway) start() error {
	path, err := g.cfg.writeCaddyfile()
	if err != nil {
		return err
	}
	g.log, err = os.OpenFile(filepath.Join(g.cfg.Dir, "gateway.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	args := append(append([]string{}, g.wrap...), g.bin, "run", "--config", path, "--adapter", "caddyfile")
	g.cmd = exec.Command(args[0], args[1:]...)
	g.cmd.Env = append(os.Environ(),
		"HOME="+g.cfg.Dir, "XDG_CONFIG_HOME="+g.cfg.Dir+"/config", "XDG_DATA_HOME="+g.cfg.Dir+"/data")
	g.cmd.Stdout, g.cmd.Stderr = g.log, g.log
	g.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := g.cmd.Start(); err != nil {
		return fmt.Errorf("start gateway: %w", err)
	}
	g.exited = make(chan struct{})
	go func() {
		g.err = g.cmd.Wait()
		g.log.Close()
		close(g.exited)
	}()
	return nil
}

// startReady starts bin run on cfg and waits up to d for a probe event to
// be acknowledged, recording that probe in rec (see waitReady). On error
// the gateway is stopped; otherwise the caller stops it.
func startReady(bin string, cfg gwConfig, d time.Duration, rec *recorder, wrap ...string) (*gateway, error) {
	g, err := startGateway(bin, cfg, wrap...)
	if err != nil {
		return nil, err
	}
	if _, err := g.waitReady(d, rec); err != nil {
		g.stop()
		return nil, err
	}
	return g, nil
}

// alive reports whether the process is still running.
func (g *gateway) alive() bool {
	select {
	case <-g.exited:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL to the gateway (and anything it runs under) and waits.
func (g *gateway) kill() {
	if !g.alive() {
		return
	}
	_ = syscall.Kill(-g.cmd.Process.Pid, syscall.SIGKILL)
	<-g.exited
}

// restart starts the gateway again on the same config and store.
func (g *gateway) restart() error { return g.start() }

// stop asks the gateway to shut down cleanly and waits up to 30s, then kills.
func (g *gateway) stop() {
	if !g.alive() {
		return
	}
	_ = syscall.Kill(-g.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-g.exited:
	case <-time.After(30 * time.Second):
		g.kill()
	}
}

// reload writes cfg (with the same HTTP address) and runs caddy reload
// against the admin API.
func (g *gateway) reload(cfg gwConfig) error {
	g.cfg = cfg
	path, err := cfg.writeCaddyfile()
	if err != nil {
		return err
	}
	out, err := exec.Command(g.bin, "reload", "--config", path, "--adapter", "caddyfile", "--address", cfg.Admin).CombinedOutput()
	if err != nil {
		return fmt.Errorf("caddy reload: %w: %s", err, out)
	}
	return nil
}

// cli runs a caddy subcommand against the gateway's admin API.
func (g *gateway) cli(args ...string) (string, error) {
	args = append(args, "--address", g.cfg.Admin)
	out, err := exec.Command(g.bin, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("caddy %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// url returns the URL of path on the webhook site.
func (g *gateway) url(path string) string { return "http://" + g.addr + path }

// demoURL returns the URL the scenarios post events to: the demo source of
// version v1. It reads only addr, so load goroutines may call it.
func (g *gateway) demoURL() string { return g.url("/webhooks/v1/demo") }

// waitReady polls until a probe event gets a 2xx, for at most d, and
// returns how long that took. The probe is an ordinary event (id
// "probe-<n>") that the checker counts like any other.
func (g *gateway) waitReady(d time.Duration, rec *recorder) (time.Duration, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	probes := newRecorder()
	for ctx.Err() == nil {
		if !g.alive() {
			return 0, fmt.Errorf("gateway exited: %v; its log: %s", g.err, g.tail())
		}
		// Probes that fail are not the scenario's requests: only the one
		// that succeeds is recorded (it is an event like any other).
		id := rec.nextID("probe")
		if probes.post(ctx, probeClient, g.demoURL(), id, nil) == outcomeOK {
			rec.record(id, outcomeOK, "", start, time.Since(start))
			return time.Since(start), nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return 0, fmt.Errorf("gateway not ready after %s; its log: %s", d, g.tail())
}

var probeClient = &http.Client{Timeout: 5 * time.Second}

// tail returns the end of the gateway's log.
func (g *gateway) tail() string {
	b, _ := os.ReadFile(filepath.Join(g.cfg.Dir, "gateway.log"))
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}
