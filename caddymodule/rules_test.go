package caddymodule

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// TestRulesSameWords: a rule broken in a Caddyfile and the same rule
// broken in JSON give the same words; the Caddyfile's also give the line.
func TestRulesSameWords(t *testing.T) {
	for _, tc := range []struct {
		name, caddyfile string
		json            *Handler
		want            string
	}{
		{"source name", "webhook_ingest {\nsource A.b {\nverify none\n}\n}",
			&Handler{Sources: []*Source{{Name: "A.b", Verify: &VerifyConfig{Scheme: "none"}}}}, `source name "A.b": want 1-64`},
		{"version", "webhook_ingest {\nversions V1\nsource a {\nverify none\n}\n}",
			&Handler{Versions: []string{"V1"}, Sources: []*Source{{Name: "a", Verify: &VerifyConfig{Scheme: "none"}}}}, `version "V1": want 1-64`},
		{"status", "webhook_ingest {\nstatus 302\nsource a {\nverify none\n}\n}",
			&Handler{Status: 302, Sources: []*Source{{Name: "a", Verify: &VerifyConfig{Scheme: "none"}}}}, `status "302": want a 2xx code`},
		{"dedup", "webhook_ingest {\nsource a {\nverify none\ndedup header\n}\n}",
			&Handler{Sources: []*Source{{Name: "a", Verify: &VerifyConfig{Scheme: "none"}, Dedup: "header"}}}, `dedup "header": the only mode is 'body'`},
		{"accept_encoding", "webhook_ingest {\nsource a {\nverify none\naccept_encoding br\n}\n}",
			&Handler{Sources: []*Source{{Name: "a", Verify: &VerifyConfig{Scheme: "none"}, AcceptEncoding: []string{"br"}}}}, `accept_encoding "br": the only encoding is gzip`},
		{"verify", "webhook_ingest {\nsource a {\n}\n}",
			&Handler{Sources: []*Source{{Name: "a"}}}, `source "a" has no verify line`},
	} {
		err := new(Handler).UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.caddyfile))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), ", at Testfile:") {
			t.Errorf("%s: Caddyfile error %v, want %q with its line", tc.name, err, tc.want)
		}
		if err := tc.json.provision(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: JSON error %v, want %q", tc.name, err, tc.want)
		}
	}
}
