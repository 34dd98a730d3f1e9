package caddymodule

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookgate/hookgate/internal/clitest"
)

// TestSendContentType: 'caddy webhooks send' posts a JSON body with
// Content-Type: application/json, as GitHub and Stripe do; --content-type
// and a --header Content-Type override it.
func TestSendContentType(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Get("Content-Type"))
		mu.Unlock()
	}))
	defer srv.Close()
	base := []string{"webhooks", "send", "--scheme", "github", "--secret", "s3cret", "--url", srv.URL}
	cases := []struct {
		body  string
		extra []string
		want  string
	}{
		{`{"zen":"hi"}`, nil, "application/json"},
		{`a=1&b=2`, nil, ""},
		{`a=1`, []string{"--content-type", "application/x-www-form-urlencoded"}, "application/x-www-form-urlencoded"},
		{`{"zen":"hi"}`, []string{"--header", "Content-Type: application/vnd.test+json"}, "application/vnd.test+json"},
	}
	for _, c := range cases {
		if code, out, errOut := clitest.Run(t, c.body, append(slicesClone(base), c.extra...)...); code != 0 {
			t.Fatalf("send %q %v: exit %d\n%s%s", c.body, c.extra, code, out, errOut)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for i, c := range cases {
		if i >= len(got) || got[i] != c.want {
			t.Errorf("send %q %v: Content-Type %q, want %q (all: %q)", c.body, c.extra, at(got, i), c.want, got)
		}
	}
}

func slicesClone(s []string) []string { return append([]string(nil), s...) }

func at(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return "<none>"
}

// TestTailTable: 'caddy webhooks tail' prints the header row of 'events'
// and keeps its columns aligned whatever the length of the ids.
func TestTailTable(t *testing.T) {
	g, admin, _, _ := eventLogGateway(t)
	done := make(chan string, 1)
	go func() {
		_, o, e := runCaddy(t, "webhooks", "tail", "--count", "2", "--interval", "100ms", "--address", admin)
		done <- o + e
	}()
	var out string
	for i := 0; out == ""; i++ {
		if i > 60 {
			t.Fatal("tail did not finish")
		}
		id := fmt.Sprintf("t%d", i)
		if i%2 == 1 {
			id += "-a-much-longer-event-id"
		}
		postTyped(t, g, id, "user.signup")
		select {
		case out = <-done:
		case <-time.After(300 * time.Millisecond):
		}
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "SEQ") || !strings.Contains(lines[0], "STATUS") {
		t.Fatalf("tail printed no header and two rows:\n%s", out)
	}
	for _, name := range []string{"ID", "SOURCE", "TYPE"} {
		col := strings.Index(lines[0], name)
		for _, l := range lines[1:] {
			if len(l) <= col || l[col-1] != ' ' || l[col] == ' ' {
				t.Errorf("column %s (at %d) misaligned in %q:\n%s", name, col, l, out)
			}
		}
	}
}
