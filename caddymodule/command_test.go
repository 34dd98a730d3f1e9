package caddymodule

import "testing"

// TestAdminCommandErrorsArePlainText: when the admin API refuses a
// request, the CLI prints its message as one plain line with the status,
// not a JSON log line quoting the API's escaped JSON answer, and exits 1.
func TestAdminCommandErrorsArePlainText(t *testing.T) {
	sk := newSink(t, always(200))
	admin := freeAddr(t)
	startGateway(t, gatewayConfig{Admin: admin, Destinations: destination("orders", sk.srv.URL, "")})
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"resume", "nope"}, `caddy webhooks resume: no destination "nope" in the running config (HTTP 404)` + "\n"},
		{[]string{"deliveries", "demo:nope"}, `caddy webhooks deliveries: no delivery state for event "demo:nope": unknown, matched by no destination, or expired (HTTP 404)` + "\n"},
	} {
		code, out, errOut := runCaddy(t, append(append([]string{"webhooks"}, tc.args...), "--address", admin)...)
		if code != 1 || errOut != tc.want || out != "" {
			t.Errorf("%v: exit %d\nstderr %q\nwant   %q\nstdout %q", tc.args, code, errOut, tc.want, out)
		}
	}
}
