package caddymodule

import (
	"net/http"
	"slices"
	"testing"
	"time"
)

// TestEventLogTypeFilterWithSubjectSuffix: subject_suffix adds tokens after
// the type, so the event log's type filter (GET /webhooks/events?type=,
// the CLI's --type, the dashboard) must still find the tagged events of
// that type, and only those: not "invoice.paid.x" events of a type that
// merely starts the same, not "invoice.created". Dead letters too.
func TestEventLogTypeFilterWithSubjectSuffix(t *testing.T) {
	bad := newRecorder(t, true)
	admin := freeAddr(t)
	g := startGateway(t, gatewayConfig{
		Admin: admin,
		Sources: demoSources + `
		source tagged {
			verify none
			id_header X-Id
			type_header X-Type
			subject_suffix ` + bt(`body.?mode.orValue(null)`) + `
		}`,
		Destinations: "\n\t\tdestination bad {\n\t\t\turl " + bad.srv.URL + "\n\t\t\tsubjects webhooks.v1.tagged.>\n\t\t\tmax_attempts 1\n\t\t}",
	})
	for _, e := range []struct{ id, typ, body string }{
		{"p1", "invoice.paid", `{"mode": "live"}`},
		{"p2", "invoice.paid", `{}`},
		{"p3", "invoice.paid", `{"mode": "test"}`},
		{"c1", "invoice.created", `{"mode": "live"}`},
		{"x1", "invoice.paid.extra", `{}`},
		{"s1", "push", `{"mode": "main"}`},
		{"s2", "push", `{}`},
	} {
		if st, _, b := g.post("/webhooks/v1/tagged", []byte(e.body), map[string]string{"X-Id": e.id, "X-Type": e.typ}); st != http.StatusOK {
			t.Fatalf("post %s: %d %s", e.id, st, b)
		}
	}
	for _, tc := range []struct {
		typ  string
		want []string
	}{
		{"invoice.paid", []string{"tagged:p1", "tagged:p2", "tagged:p3"}},
		{"push", []string{"tagged:s1", "tagged:s2"}},
		{"invoice.created", []string{"tagged:c1"}},
	} {
		got := listIDs(t, admin, "source=tagged&type="+tc.typ)
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("events of type %s: %v, want %v", tc.typ, got, tc.want)
		}
	}
	waitFor(t, 10*time.Second, "seven dead letters", func() bool {
		var p DLQPage
		adminJSON(t, admin, http.MethodGet, "/webhooks/dlq?limit=100", "", http.StatusOK, &p)
		return len(p.DeadLetters) == 7
	})
	var p DLQPage
	adminJSON(t, admin, http.MethodGet, "/webhooks/dlq?source=tagged&type=invoice.paid", "", http.StatusOK, &p)
	var got []string
	for _, d := range p.DeadLetters {
		got = append(got, d.EventID)
	}
	slices.Sort(got)
	if want := []string{"tagged:p1", "tagged:p2", "tagged:p3"}; !slices.Equal(got, want) {
		t.Errorf("dead letters of type invoice.paid: %v, want %v", got, want)
	}
}
