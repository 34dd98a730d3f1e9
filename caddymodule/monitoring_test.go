package caddymodule

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// dashboardExprs returns every query of docs/grafana-dashboard.json.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../docs/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	var exprs []string
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	if len(exprs) < 10 {
		t.Fatalf("only %d queries in the dashboard", len(exprs))
	}
	return exprs
}

// grafanaVars stands in for the dashboard's variables so that a query
// becomes plain PromQL.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h", "$instance", ".*")

// promtool returns promtool's path, skipping the test where Debian's
// prometheus package is not installed (.ci/run installs it).
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (apt-get install prometheus): alert rules and dashboard queries not checked")
	}
	return p
}

// TestAlertRules runs promtool over docs/alerts.yaml: the rules parse, and
// each alert fires (and stays quiet) on the synthetic series of
// docs/alerts_test.yaml.
func TestAlertRules(t *testing.T) {
	pt := promtool(t)
	for _, args := range [][]string{{"check", "rules", "alerts.yaml"}, {"test", "rules", "alerts_test.yaml"}} {
		cmd := exec.Command(pt, args...)
		cmd.Dir = "../docs"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	b, _ := os.ReadFile("../docs/alerts_test.yaml")
	r, _ := os.ReadFile("../docs/alerts.yaml")
	for _, m := range regexp.MustCompile(`(?m)^\s+- alert: (\w+)`).FindAllStringSubmatch(string(r), -1) {
		if !strings.Contains(string(b), "alertname: "+m[1]) {
			t.Errorf("alert %s has no test in alerts_test.yaml", m[1])
		}
	}
}

// TestDashboardQueriesParse has promtool parse every dashboard query, as a
// recording rule, with Grafana's variables replaced.
func TestDashboardQueriesParse(t *testing.T) {
	pt := promtool(t)
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	exprs := dashboardExprs(t)
	for i, e := range exprs {
		q, _ := json.Marshal(grafanaVars.Replace(e)) // a JSON string is a YAML string
		fmt.Fprintf(&b, "      - record: dashboard:query%d\n        expr: %s\n", i+1, q)
	}
	file := filepath.Join(t.TempDir(), "dashboard-rules.yaml")
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(pt, "check", "rules", file).CombinedOutput()
	if err != nil {
		t.Fatalf("a dashboard query does not parse: %v\n%s", err, out)
	}
	if want := fmt.Sprintf("SUCCESS: %d rules found", len(exprs)); !slices.Contains(strings.Split(string(out), "\n"), "  "+want) {
		t.Fatalf("promtool did not check all %d queries:\n%s", len(exprs), out)
	}
}

// TestDashboardNamesExportedMetrics checks that every metric the dashboard
// and the alert rules query is one the gateway exports, so a renamed
// metric cannot leave a panel or an alert silently empty.
func TestDashboardNamesExportedMetrics(t *testing.T) {
	exported := exportedMetricNames(t)
	rules, err := os.ReadFile("../docs/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sources := map[string]string{"docs/alerts.yaml": string(rules)}
	for i, e := range dashboardExprs(t) {
		sources[fmt.Sprintf("dashboard query %d", i+1)] = e
	}
	used := map[string]bool{}
	for where, text := range sources {
		for _, name := range metricName.FindAllString(text, -1) {
			used[name] = true
			if !exported[name] {
				t.Errorf("%s queries %s, which the gateway does not export", where, name)
			}
		}
	}
	var unused []string
	for name := range exported {
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
		if name == base && !used[name] && !used[name+"_bucket"] {
			unused = append(unused, name)
		}
	}
	sort.Strings(unused)
	t.Logf("exported but on no panel or alert: %v", unused)
}

// exportedMetricNames returns the name of every metric the gateway exports,
// with the _bucket, _sum and _count series of its histograms.
func exportedMetricNames(t *testing.T) map[string]bool {
	t.Helper()
	ch := make(chan *prometheus.Desc, 64)
	go func() {
		for _, c := range processCollectors() {
			c.Describe(ch)
		}
		(&appCollector{}).Describe(ch)
		close(ch)
	}()
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	names := map[string]bool{}
	for d := range ch {
		m := fq.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("no name in %s", d)
		}
		for _, suffix := range []string{"", "_bucket", "_sum", "_count"} {
			names[m[1]+suffix] = true
		}
	}
	return names
}

var metricName = regexp.MustCompile(`\bcaddy_webhooks_[a-z_]+\b`)
