package caddymodule

import "testing"

// TestRoute: only <prefix>/<version>/<source> with a known version the
// source takes routes; a retired version routes (for its 410).
func TestRoute(t *testing.T) {
	h := &Handler{
		Prefix:   "/hooks",
		Versions: []string{"v1", "v2"},
		Retired:  []string{"v0"},
		Sources: []*Source{
			{Name: "demo", Verify: &VerifyConfig{Scheme: "none"}},
			{Name: "old", Verify: &VerifyConfig{Scheme: "none"}, Versions: []string{"v1"}},
		},
	}
	if err := h.provision(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path, version, source string
	}{
		{"/hooks/v1/demo", "v1", "demo"},
		{"/hooks/v2/demo", "v2", "demo"},
		{"/hooks/v0/demo", "v0", "demo"},
		{"/hooks/v1/old", "v1", "old"},
		{"/hooks/v2/old", "", ""},
		{"/hooks/v3/demo", "", ""},
		{"/hooks/v1/nosuch", "", ""},
		{"/hooks/v1/demo/extra", "", ""},
		{"/hooks/v1", "", ""},
		{"/hooks", "", ""},
		{"/webhooks/v1/demo", "", ""},
		{"/hooksv1/demo", "", ""},
		{"/hooks/v1%2Fdemo", "", ""},
	} {
		version, src := h.route(tc.path)
		if version != tc.version || src.nameOrEmpty() != tc.source {
			t.Errorf("route(%q) = %q, %q; want %q, %q", tc.path, version, src.nameOrEmpty(), tc.version, tc.source)
		}
	}
}
