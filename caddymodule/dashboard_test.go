package caddymodule

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/hookgate/hookgate/forwarder"
)

// startDashboard starts a gateway (admin endpoint off) whose destination
// "orders" delivers to ok and "audit" to bad, and a webhook_dashboard on a
// site of its own; it returns the gateway and the dashboard's base URL.
func startDashboard(t *testing.T, ok, bad *sink, more ...string) (*gateway, string) {
	t.Helper()
	cfg := gatewayConfig{
		Store:        t.TempDir(),
		Addr:         freeAddr(t),
		Sources:      demoSources,
		Destinations: destination("orders", ok.srv.URL, "") + destination("audit", bad.srv.URL, "\t\t\tmax_attempts 1") + strings.Join(more, ""),
	}
	dash := freeAddr(t)
	// Mounted twice: on a route that keeps its path, and on one that
	// strips it.
	text := cfg.caddyfile() + "\nhttp://" + dash + " {\n\thandle /ops* {\n\t\twebhook_dashboard\n\t}\n\thandle_path /stripped/* {\n\t\twebhook_dashboard\n\t}\n}\n"
	if err := loadCaddyfile(text); err != nil {
		t.Fatalf("load: %v\n%s", err, text)
	}
	t.Cleanup(func() {
		if err := caddy.Stop(); err != nil {
			t.Errorf("caddy stop: %v", err)
		}
	})
	return &gateway{t: t, store: filepath.Join(cfg.Store, "store"), addr: cfg.Addr, cfg: cfg}, "http://" + dash + "/ops/"
}

// replays counts the requests s received with Webhook-Replay: true.
func (s *sink) replays() int {
	_, hdrs := s.received()
	n := 0
	for _, h := range hdrs {
		if h.Get("Webhook-Replay") == "true" {
			n++
		}
	}
	return n
}

// TestDashboardAPI: the dashboard's JSON endpoints answer what the admin
// API answers while Caddy's admin endpoint is off, and refuse a POST that
// does not come from the page: another origin, or no CSRF token.
func TestDashboardAPI(t *testing.T) {
	ok, bad := newSink(t, always(http.StatusOK)), newSink(t, always(http.StatusBadRequest))
	g, base := startDashboard(t, ok, bad)
	g.postAll(t, "a1", "a2")
	waitFor(t, 10*time.Second, "both deliveries", func() bool { return ok.calls.Load() == 2 && bad.calls.Load() == 2 })

	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	page := get(t, client, base)
	token := metaToken(t, page)
	if len(token) < 40 || !strings.Contains(page, "<title>Hookgate") {
		t.Fatalf("page without a token: %.300s", page)
	}
	var list struct {
		Events []struct {
			ID     string            `json:"id"`
			Status map[string]string `json:"status"`
		} `json:"events"`
	}
	waitFor(t, 10*time.Second, "the failed delivery in the list", func() bool {
		if err := json.Unmarshal([]byte(get(t, client, base+"api/events?source=demo")), &list); err != nil {
			t.Fatal(err)
		}
		return len(list.Events) == 2 && list.Events[1].Status["audit"] == "failed"
	})
	if list.Events[0].ID != "demo:a2" || list.Events[0].Status["orders"] != "delivered" {
		t.Errorf("events: %+v", list.Events)
	}
	if st := get(t, client, base+"api/status"); !strings.Contains(st, `"name":"orders"`) || !strings.Contains(st, `"breaker":"closed"`) {
		t.Errorf("status: %s", st)
	}
	if dlq := get(t, client, base+"api/dlq"); strings.Count(dlq, `"destination":"audit"`) != 2 {
		t.Errorf("dlq: %s", dlq)
	}

	replay := base + "api/events/demo:a1/replay"
	for _, tc := range []struct {
		name, origin, token string
	}{
		{"another origin", "http://evil.example", token},
		{"no token", "", ""},
		{"wrong token", "", strings.Repeat("A", len(token))},
	} {
		code, body := post(t, client, replay, tc.origin, tc.token, `{"destination":"orders"}`)
		if code != http.StatusForbidden || !strings.Contains(body, `"error"`) {
			t.Errorf("%s: %d %s, want 403", tc.name, code, body)
		}
	}
	code, body := post(t, client, replay, strings.TrimSuffix(base, "/ops/"), token, `{"destination":"orders"}`)
	if code != http.StatusAccepted || !strings.Contains(body, `"destinations":["orders"]`) {
		t.Fatalf("replay from the page's origin: %d %s", code, body)
	}
	waitFor(t, 10*time.Second, "the replay at the sink", func() bool { return ok.replays() == 1 })
	if ok.replays() != 1 {
		t.Errorf("the refused POSTs replayed: %d replays", ok.replays())
	}
	code, body = post(t, client, base+"api/replay", "", token, `{"source":"demo","destination":"orders"}`)
	if code != http.StatusAccepted || !strings.Contains(body, `"matched":2`) {
		t.Errorf("bulk replay: %d %s", code, body)
	}
	waitFor(t, 10*time.Second, "the bulk replay at the sink", func() bool { return ok.replays() == 3 })
	if code, body := post(t, client, base+"api/dlq/1/redrive", "http://evil.example", token, `{}`); code != http.StatusForbidden {
		t.Errorf("cross-origin redrive: %d %s", code, body)
	}
	calls := bad.calls.Load()
	if code, body := post(t, client, base+"api/dlq/1/redrive", "", token, `{}`); code != http.StatusAccepted || !strings.Contains(body, `"status":"queued"`) {
		t.Errorf("redrive: %d %s", code, body)
	}
	waitFor(t, 10*time.Second, "the redrive at audit", func() bool { return bad.calls.Load() > calls })
	if code, body := post(t, client, base+"api/nope", "", token, `{}`); code != http.StatusNotFound {
		t.Errorf("unknown endpoint: %d %s", code, body)
	}
	// Under handle_path the page, its cookie and its endpoints work too.
	stripped := strings.TrimSuffix(base, "/ops/") + "/stripped/"
	token2 := metaToken(t, get(t, client, stripped))
	if st := get(t, client, stripped+"api/status"); !strings.Contains(st, `"name":"orders"`) {
		t.Errorf("status under handle_path: %s", st)
	}
	if code, body := post(t, client, stripped+"api/events/demo:a2/replay", "", token2, `{"destination":"orders"}`); code != http.StatusAccepted {
		t.Errorf("replay under handle_path: %d %s", code, body)
	}
	resp, err := client.Get(strings.TrimSuffix(base, "/"))
	if err != nil || resp.Request.URL.Path != "/ops/" {
		t.Errorf("the route without its slash: %v %v", err, resp.Request.URL)
	}
}

func get(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return string(b)
}

func post(t *testing.T, c *http.Client, url, origin, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	if token != "" {
		req.Header.Set(csrfHeader, token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func metaToken(t *testing.T, page string) string {
	t.Helper()
	_, rest, ok := strings.Cut(page, `<meta name="csrf-token" content="`)
	token, _, ok2 := strings.Cut(rest, `"`)
	if !ok || !ok2 {
		t.Fatal("no csrf-token meta in the page")
	}
	return token
}

// chromium returns the path of Debian's chromium, or skips the test.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("chromium is not installed (Debian: apt-get install -y chromium; .ci/run installs it): the dashboard's browser test needs it")
	return ""
}

// browser starts a headless chromium with a profile of its own and
// returns a chromedp context bounded to a minute.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Flag("headless", true), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 900), // a laptop screen
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	return ctx
}

// screenshot saves the page as name.png in the test's artifact directory,
// and in $HOOKGATE_DASHBOARD_SCREENSHOTS when set (how docs/ gets them).
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	dirs := []string{t.ArtifactDir()}
	if d := os.Getenv("HOOKGATE_DASHBOARD_SCREENSHOTS"); d != "" {
		dirs = append(dirs, d)
	}
	for _, dir := range dirs {
		p := filepath.Join(dir, name+".png")
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s (%d bytes)", p, len(png))
	}
}

// rowText returns the text of the list row of event id, "" when absent.
func rowText(ctx context.Context, id string) (string, error) {
	return chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`(() => { const r = document.querySelector('#listpane tr[data-id=%q]'); return r ? r.innerText : ""; })()`, id)))
}

// TestDashboardInBrowser drives the page in Debian's chromium: it lists
// the posted events with their statuses, shows a new event without a
// reload, opens an event, replays it with the button (the sink sees the
// replay), and a page of another origin cannot make it replay.
func TestDashboardInBrowser(t *testing.T) {
	ctx := browser(t)
	ok, bad := newSink(t, always(http.StatusOK)), newSink(t, always(http.StatusBadRequest))
	g, base := startDashboard(t, ok, bad)
	for i := 1; i <= 3; i++ {
		body := fmt.Sprintf(`{"id":"ord_%d","object":"order","amount":%d,"currency":"eur","customer":{"id":"cus_42","email":"ops@example.com"}}`, i, 1000*i)
		if st, _, b := g.post("/webhooks/v1/demo", []byte(body), map[string]string{"X-Id": fmt.Sprintf("o%d", i), "X-Type": "order.created"}); st != http.StatusOK {
			t.Fatalf("post: %d %s", st, b)
		}
	}
	waitFor(t, 10*time.Second, "the deliveries", func() bool { return ok.calls.Load() == 3 && bad.calls.Load() == 3 })

	if err := chromedp.Do(ctx, chromedp.Navigate(base), chromedp.WaitVisible(chromedp.CSS(`#listpane tr[data-id="demo:o3"]`))); err != nil {
		t.Fatalf("load the dashboard: %v", err)
	}
	waitFor(t, 15*time.Second, "the statuses in the list", func() bool {
		text, err := rowText(ctx, "demo:o1")
		if err != nil {
			t.Fatal(err)
		}
		return strings.Contains(text, "orders ✓ delivered") && strings.Contains(text, "audit ✕ failed")
	})
	screenshot(t, ctx, "dashboard-events")

	// A new event appears without a reload: a mark left in the page's
	// window survives.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.hookgateTestMark = true`)); err != nil {
		t.Fatal(err)
	}
	g.postAll(t, "live1")
	waitFor(t, 15*time.Second, "the new event in the open page", func() bool {
		text, err := rowText(ctx, "demo:live1")
		if err != nil {
			t.Fatal(err)
		}
		return text != ""
	})
	if mark, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.hookgateTestMark === true`)); err != nil || !mark {
		t.Fatalf("the page was reloaded (mark %v, %v)", mark, err)
	}

	// The id filter, from the keyboard: "/" focuses it, Enter applies.
	if err := chromedp.Do(ctx, chromedp.KeyEvent("/")); err != nil {
		t.Fatalf("search: %v", err)
	}
	// DevTools sends the "/" as a separate char event, which a real
	// keyboard's cancelled keydown would not: clear it.
	if name, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => { const e = document.activeElement; e.value = ""; return e.name; })()`)); err != nil || name != "q" {
		t.Fatalf("'/' focused %q (%v), want the id search", name, err)
	}
	if err := chromedp.Do(ctx, chromedp.KeyEvent("demo:o1"), chromedp.KeyEvent(kb.Enter)); err != nil {
		t.Fatalf("search: %v", err)
	}
	waitFor(t, 15*time.Second, "the list filtered to demo:o1", func() bool {
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#listpane tbody tr").length`))
		if err != nil {
			t.Fatal(err)
		}
		text, _ := rowText(ctx, "demo:o1")
		return n == 1 && text != ""
	})
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#clear`)), chromedp.WaitVisible(chromedp.CSS(`#listpane tr[data-id="demo:live1"]`)), chromedp.KeyEvent(kb.Escape)); err != nil {
		t.Fatalf("clear the filter: %v", err)
	}

	// Open an event by keyboard (the third row: live1, o3, o2) and replay
	// it to orders with its button.
	if err := chromedp.Do(ctx,
		chromedp.KeyEvent("jjj"), chromedp.KeyEvent(kb.Enter),
		chromedp.WaitVisible(chromedp.CSS(`#detail button[data-replay="orders"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#detail .timeline`)),
	); err != nil {
		t.Fatalf("open the event: %v", err)
	}
	if h, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#detail h2").innerText`)); err != nil || h != "demo:o2" {
		t.Fatalf("j j j Enter opened %q (%v), want demo:o2", h, err)
	}
	screenshot(t, ctx, "dashboard-event")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#detail button[data-replay="orders"]`))); err != nil {
		t.Fatalf("replay: %v", err)
	}
	waitFor(t, 15*time.Second, "the replay at the sink", func() bool { return ok.replays() == 1 })
	bodies, hdrs := ok.received()
	last := len(hdrs) - 1
	if hdrs[last].Get("Webhook-Id") != "demo:o2" || !strings.Contains(string(bodies[last]), `"ord_2"`) {
		t.Errorf("replayed %s: %s (%v)", hdrs[last].Get("Webhook-Id"), bodies[last], hdrs[last])
	}

	// The dead letters, by keyboard, with the events view filtered on a
	// status (which the dead-letter view must neither send nor lose);
	// Redrive sends one to audit again.
	if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.Escape)); err != nil {
		t.Fatalf("close the event: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector("#filters select[name=status]").value = "failed"; document.querySelector("#filters").requestSubmit(); true`)); err != nil {
		t.Fatalf("status=failed: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.KeyEvent("2"),
		chromedp.WaitVisible(chromedp.CSS(`#listpane tr[data-dlq]`))); err != nil {
		t.Fatalf("dead letters: %v", err)
	}
	screenshot(t, ctx, "dashboard-dlq")
	// A dead letter has no delivery status: the view hides that filter
	// (the API refuses a redrive that names one).
	statusShown, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`getComputedStyle(document.querySelector("#filters select[name=status]").closest("label")).display !== "none"`))
	if err != nil {
		t.Fatalf("status filter: %v", err)
	}
	if statusShown {
		t.Error("the dead-letter view shows the status filter, which it cannot apply")
	}
	before := bad.calls.Load()
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#listpane tr[data-dlq] button`))); err != nil {
		t.Fatalf("redrive: %v", err)
	}
	waitFor(t, 15*time.Second, "the redriven dead letter at audit", func() bool { return bad.calls.Load() > before })
	redriveAllMatching(t, ctx, base, bad)

	// A page on another origin posts to the replay endpoint with the
	// browser's cookies: refused.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, `<!doctype html><script>
fetch(%q, {method: "POST", credentials: "include", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body: '{"destination":"orders"}'})
	.then(() => document.title = "sent", () => document.title = "sent");
</script>`, base+"api/events/demo:o2/replay")
	}))
	defer evil.Close()
	if err := chromedp.Do(ctx, chromedp.Navigate(evil.URL)); err != nil {
		t.Fatalf("the other origin's page: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.title === "sent"`)); err != nil {
		t.Fatalf("the other origin's page: %v", err)
	}
	// Then a replay from the dashboard itself: once it has arrived, a
	// replay queued before it by the other page would have too.
	if err := chromedp.Do(ctx, chromedp.Navigate(base),
		chromedp.WaitVisible(chromedp.CSS(`#listpane tr[data-id="demo:o2"]`)),
		chromedp.Click(chromedp.CSS(`#listpane tr[data-id="demo:o2"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#detail button[data-replay="orders"]`)),
		chromedp.Click(chromedp.CSS(`#detail button[data-replay="orders"]`)),
	); err != nil {
		t.Fatalf("second replay: %v", err)
	}
	waitFor(t, 15*time.Second, "the second replay", func() bool { return ok.replays() >= 2 })
	time.Sleep(500 * time.Millisecond)
	if n := ok.replays(); n != 2 {
		t.Errorf("%d replays at the sink, want 2: the other origin's POST was accepted", n)
	}
}

// TestDashboardCaddyfile: the directive takes no options, and says so
// with the line.
func TestDashboardCaddyfile(t *testing.T) {
	cfg := "{\n\twebhooks {\n\t\tstore " + t.TempDir() + "\n\t\tlisten off\n\t}\n}\n:8081 {\n\twebhook_dashboard {\n\t\tpublic yes\n\t}\n}\n"
	if _, err := loadErr(cfg); err == nil || !strings.Contains(err.Error(), "webhook_dashboard takes no options") || !strings.Contains(err.Error(), "Caddyfile:9") {
		t.Errorf("options: %v", err)
	}
	if _, err := loadErr(strings.Replace(cfg, " {\n\t\tpublic yes\n\t}", "", 1)); err != nil {
		t.Errorf("a bare webhook_dashboard: %v", err)
	}
}

// TestDashboardURLWithCredentials opens the page as
// http://user:pass@host/ops/, as an operator does behind basic auth: its
// fetches must not be built from the URL with the credentials in it
// (fetch refuses those), so the events still show.
func TestDashboardURLWithCredentials(t *testing.T) {
	ctx := browser(t)
	ok, bad := newSink(t, always(http.StatusOK)), newSink(t, always(http.StatusOK))
	g, base := startDashboard(t, ok, bad)
	g.postAll(t, "cred1")
	withUser := strings.Replace(base, "http://", "http://admin:hookgate-demo@", 1)
	if err := chromedp.Do(ctx, chromedp.Navigate(withUser), chromedp.WaitVisible(chromedp.CSS(`#listpane tr[data-id="demo:cred1"]`))); err != nil {
		t.Fatalf("the dashboard opened with credentials in its URL shows no events: %v", err)
	}
}

// TestDashboardShowsTransformedBody: the event page shows the stored body
// and, for a destination with a transformation, the body sent there (its
// digest matching the one recorded at the delivery) and the headers set.
func TestDashboardShowsTransformedBody(t *testing.T) {
	ctx := browser(t)
	ok, bad, shaped := newSink(t, always(http.StatusOK)), newSink(t, always(http.StatusBadRequest)), newSink(t, always(http.StatusOK))
	g, base := startDashboard(t, ok, bad, destination("shaped", shaped.srv.URL,
		"\t\t\ttransform "+bt(`{"order": body.id, "cents": body.amount}`)+"\n\t\t\ttransform_headers "+bt(`{"X-Order": body.id}`)))
	if st, _, b := g.post("/webhooks/v1/demo", []byte(`{"id":"ord_7","amount":700}`), map[string]string{"X-Id": "t1", "X-Type": "order.created"}); st != http.StatusOK {
		t.Fatalf("post: %d %s", st, b)
	}
	waitFor(t, 10*time.Second, "the transformed delivery", func() bool {
		st, err := forwarder.ReadDelivery(context.Background(), g.engine().js, "demo:t1", "shaped")
		return err == nil && st.Status == forwarder.StatusDelivered
	})
	if err := chromedp.Do(ctx, chromedp.Navigate(base),
		chromedp.WaitVisible(chromedp.CSS(`#listpane tr[data-id="demo:t1"]`)),
		chromedp.Click(chromedp.CSS(`#listpane tr[data-id="demo:t1"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#detail h3[data-transformed="shaped"]`)),
	); err != nil {
		t.Fatalf("open the event: %v", err)
	}
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#detail").innerText`))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Body as stored", `"amount": 700`, "Body sent to shaped", "This is the body that was sent (same SHA-256).",
		`"cents": 700`, `"order": "ord_7"`, "X-Order", "application/json"} {
		if !strings.Contains(strings.ToLower(text), strings.ToLower(want)) { // headings are upper-cased by CSS
			t.Errorf("the event page lacks %q:\n%s", want, text)
		}
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(document.querySelector('#detail h3[data-transformed="shaped"]').previousElementSibling.previousElementSibling.scrollIntoView(), true)`)); err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "dashboard-transformed")
}

// redriveAllMatching: in the dead-letter view, "Redrive all matching…"
// sends the q the list applies, so only the event searched for is
// redriven (it redrove every dead letter of the other filters), and not
// the events view's status; back in the events view, that status holds.
func redriveAllMatching(t *testing.T, ctx context.Context, base string, bad *sink) {
	t.Helper()
	waitFor(t, 15*time.Second, "o1 and o2 dead-lettered at audit", func() bool {
		resp, err := testClient.Get(base + "api/dlq?destination=audit")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var p DLQPage
		if json.NewDecoder(resp.Body).Decode(&p) != nil {
			return false
		}
		return slices.ContainsFunc(p.DeadLetters, func(d DeadLetter) bool { return d.EventID == "demo:o1" }) &&
			slices.ContainsFunc(p.DeadLetters, func(d DeadLetter) bool { return d.EventID == "demo:o2" })
	})
	before := bad.calls.Load()
	if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.CSS(`#filters input[name=q]`), "demo:o1")); err != nil {
		t.Fatalf("q=demo:o1: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.confirm = () => true; document.querySelector("#filters").requestSubmit(); true`)); err != nil {
		t.Fatalf("submit q=demo:o1: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.WaitNotPresent(chromedp.CSS(`#listpane tr[data-id="demo:o2"]`)),
		chromedp.Click(chromedp.CSS(`#bulk`))); err != nil {
		t.Fatalf("redrive all matching q=demo:o1: %v", err)
	}
	waitFor(t, 15*time.Second, "the bulk redrive at audit", func() bool { return bad.calls.Load() > before })
	time.Sleep(time.Second)
	_, hdrs := bad.received()
	var ids []string
	for _, h := range hdrs[before:] {
		ids = append(ids, h.Get("Webhook-Id"))
	}
	if !slices.Equal(ids, []string{"demo:o1"}) {
		t.Errorf("redrive all matching q=demo:o1 sent %v to audit, want demo:o1 only", ids)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector("#filters input[name=q]").value = ""; document.querySelector("#filters").requestSubmit(); true`)); err != nil {
		t.Fatalf("clear q: %v", err)
	}
	// Back to the events: the status set there is still applied.
	if err := chromedp.Do(ctx, chromedp.KeyEvent("1")); err != nil {
		t.Fatalf("events view: %v", err)
	}
	kept, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#filters select[name=status]").value + " " + new URLSearchParams(location.search).get("status")`))
	if err != nil || kept != "failed failed" {
		t.Errorf("events view after the dead letters: status %q (select, URL), want failed kept: %v", kept, err)
	}
}
