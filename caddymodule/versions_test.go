package caddymodule

import (
	"strings"
	"testing"
)

// TestDeprecations: each deprecation renders Deprecation, Sunset and a Link
// to its successor; bad ones are refused with the version named.
func TestDeprecations(t *testing.T) {
	for _, tc := range []struct {
		name       string
		versions   []string
		deprecated []*Deprecation
		src        []string // the source's versions
		want       map[string][3]string
		err        string
	}{
		{
			name: "default successor", versions: []string{"v1", "v2"},
			deprecated: []*Deprecation{{Version: "v1", Sunset: "2027-06-30"}},
			want:       map[string][3]string{"v1": {"@1814313600", "Wed, 30 Jun 2027 00:00:00 GMT", `</webhooks/v2/demo>; rel="successor-version"`}},
		},
		{
			name: "since and successor", versions: []string{"v1", "v2", "v3"},
			deprecated: []*Deprecation{{Version: "v1", Sunset: "2027-06-30", Since: "2026-01-01", Successor: "v2"}},
			want:       map[string][3]string{"v1": {"@1767225600", "Wed, 30 Jun 2027 00:00:00 GMT", `</webhooks/v2/demo>; rel="successor-version"`}},
		},
		{
			name: "successor the source does not take", versions: []string{"v1", "v2", "v3"}, src: []string{"v1", "v3"},
			deprecated: []*Deprecation{{Version: "v1", Sunset: "2027-06-30", Successor: "v2"}},
			want:       map[string][3]string{"v1": {"@1814313600", "Wed, 30 Jun 2027 00:00:00 GMT", `</webhooks/v3/demo>; rel="successor-version"`}},
		},
		{
			name: "all deprecated: no link", versions: []string{"v1"},
			deprecated: []*Deprecation{{Version: "v1", Sunset: "2027-06-30T12:00:00+02:00"}},
			want:       map[string][3]string{"v1": {"@1814349600", "Wed, 30 Jun 2027 10:00:00 GMT", ""}},
		},
		{name: "unknown version", versions: []string{"v1"}, deprecated: []*Deprecation{{Version: "v9", Sunset: "2027-06-30"}}, err: "deprecate v9: not among"},
		{name: "twice", versions: []string{"v1", "v2"}, deprecated: []*Deprecation{{Version: "v1", Sunset: "2027-06-30"}, {Version: "v1", Sunset: "2027-06-30"}}, err: "given twice"},
		{name: "bad date", versions: []string{"v1", "v2"}, deprecated: []*Deprecation{{Version: "v1", Sunset: "30/06/2027"}}, err: "sunset"},
		{name: "since after sunset", versions: []string{"v1", "v2"}, deprecated: []*Deprecation{{Version: "v1", Sunset: "2027-06-30", Since: "2028-01-01"}}, err: "after the sunset"},
		{name: "successor itself", versions: []string{"v1", "v2"}, deprecated: []*Deprecation{{Version: "v1", Sunset: "2027-06-30", Successor: "v1"}}, err: "successor"},
	} {
		h := &Handler{Versions: tc.versions, Deprecated: tc.deprecated, Sources: []*Source{{Name: "demo", Verify: &VerifyConfig{Scheme: "none"}, Versions: tc.src}}}
		err := h.provision()
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got := h.sources["demo"].deprecated
		for v, w := range tc.want {
			hdr := got[v]
			if hdr.Get("Deprecation") != w[0] || hdr.Get("Sunset") != w[1] || hdr.Get("Link") != w[2] {
				t.Errorf("%s: %s headers %v, want %v", tc.name, v, hdr, w)
			}
		}
	}
}
