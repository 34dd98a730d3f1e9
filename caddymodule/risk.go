package caddymodule

import (
	"fmt"
	"net"
	"strings"
)

// warnRisky logs, at every provisioning, the settings that are valid but
// carry a risk the operator should know about, as Caddy's acmeserver
// warnIfPolicyAllowsAll does for an open ACME policy.
func (a *App) warnRisky() {
	for _, w := range a.risks() {
		a.logger.Warn(w)
	}
}

// risks returns one sentence per risky setting of the provisioned app:
// what is set, what can go wrong, and what to set instead.
func (a *App) risks() []string {
	var out []string
	if !a.ecfg.SyncAlways {
		out = append(out, fmt.Sprintf("sync %s: events are acknowledged to providers before they are fsynced; a power loss or kernel crash can lose up to %s of acknowledged events, which providers will not send again. Use 'sync always' unless that loss is acceptable", a.ecfg.SyncInterval, a.ecfg.SyncInterval))
	}
	if a.ecfg.User != "" && a.ecfg.Password == "" {
		out = append(out, fmt.Sprintf("user %s has no password: any process that can reach the NATS listener logs in as %s with an empty password and reads every event. Add 'password {file.<path>}', or use nkey", a.ecfg.User, a.ecfg.User))
	}
	if l := a.ecfg.Listen; l != "" && !loopbackListen(l) && a.ecfg.TLSCert == "" {
		what := "events and consumer traffic cross the network in clear text"
		if a.ecfg.User != "" {
			what += ", and so does the NATS password"
		}
		out = append(out, fmt.Sprintf("listen %s: the NATS listener is reachable beyond this host without TLS; %s. Add 'tls <cert> <key>', or listen on 127.0.0.1", l, what))
	}
	return out
}

// loopbackListen reports whether a host:port listens on loopback only.
// A name other than localhost counts as reachable: resolving it is I/O
// that provisioning must not do.
func loopbackListen(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
