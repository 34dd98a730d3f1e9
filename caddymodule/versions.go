package caddymodule

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap/zapcore"
)

// Deprecation announces that a version is going away.
type Deprecation struct {
	// Version is the deprecated version, one of the handler's Versions.
	Version string `json:"version"`

	// Sunset is the date (2027-06-30, midnight UTC) or RFC 3339 time after
	// which the version may stop working, sent as the Sunset header.
	Sunset string `json:"sunset"`

	// Since is when the version is deprecated, sent as the Deprecation
	// header ("@<unix seconds>"); a future date announces it. Default: the
	// Sunset date.
	Since string `json:"since,omitempty"`

	// Successor is the version senders should move to, linked with
	// rel="successor-version". Default: the last of the handler's
	// versions that the source accepts and that is not deprecated.
	Successor string `json:"successor,omitempty"`
}

// deprecation is a Deprecation ready to render.
type deprecation struct {
	since, sunset time.Time
	successor     string
}

// versionList is the handler's accepted versions in their configured order.
func (h *Handler) versionList() []string {
	if len(h.Versions) == 0 {
		return []string{defaultVersion}
	}
	return h.Versions
}

// acceptVersions checks the accepted versions.
func (h *Handler) acceptVersions() error {
	h.versions = map[string]bool{}
	for _, v := range h.versionList() {
		if err := checkVersion("version", v); err != nil {
			return err
		}
		h.versions[v] = true
	}
	return nil
}

// retireAndDeprecate checks the retired versions and the deprecations, and
// returns the deprecations by version.
func (h *Handler) retireAndDeprecate() (map[string]*deprecation, error) {
	h.retired = map[string]bool{}
	for _, v := range h.Retired {
		if err := checkVersion("retire", v); err != nil {
			return nil, err
		}
		if h.versions[v] {
			return nil, fmt.Errorf("retire %s: %s is also among the versions; a version is either accepted or retired", v, v)
		}
		h.retired[v] = true
	}
	return h.deprecations()
}

// deprecations checks the Deprecated list against the versions.
func (h *Handler) deprecations() (map[string]*deprecation, error) {
	out := make(map[string]*deprecation, len(h.Deprecated))
	for _, d := range h.Deprecated {
		if !h.versions[d.Version] {
			return nil, fmt.Errorf("deprecate %s: not among the versions %v", d.Version, h.Versions)
		}
		if out[d.Version] != nil {
			return nil, fmt.Errorf("deprecate %s: given twice", d.Version)
		}
		sunset, err := parseDate(d.Sunset)
		if err != nil {
			return nil, fmt.Errorf("deprecate %s: sunset: %w", d.Version, err)
		}
		since := sunset
		if d.Since != "" {
			if since, err = parseDate(d.Since); err != nil {
				return nil, fmt.Errorf("deprecate %s: since: %w", d.Version, err)
			}
			if since.After(sunset) {
				return nil, fmt.Errorf("deprecate %s: since %s is after the sunset %s", d.Version, d.Since, d.Sunset)
			}
		}
		if d.Successor != "" && (!h.versions[d.Successor] || d.Successor == d.Version) {
			return nil, fmt.Errorf("deprecate %s: successor %q must be another of the versions %v", d.Version, d.Successor, h.Versions)
		}
		out[d.Version] = &deprecation{since: since, sunset: sunset, successor: d.Successor}
	}
	return out, nil
}

// parseDate reads a date (2027-06-30, taken as midnight UTC) or an RFC 3339
// time.
func parseDate(s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: want a date such as 2027-06-30 or an RFC 3339 time", s)
	}
	return t.UTC(), nil
}

// sourceVersions sets up a source's versions: which it takes, the headers
// announcing each deprecated one, and the answer to a retired one.
func (h *Handler) sourceVersions(s *Source, rs *source, deprecated map[string]*deprecation) error {
	accepted := h.versionList()
	if len(s.Versions) > 0 {
		rs.versions = make(map[string]bool, len(s.Versions))
		for _, v := range s.Versions {
			if !h.versions[v] {
				return fmt.Errorf("versions: %q is not among the handler's versions %v", v, accepted)
			}
			rs.versions[v] = true
		}
		accepted = s.Versions
	}
	latest := latestVersion(accepted, deprecated)
	for _, v := range accepted {
		d := deprecated[v]
		if d == nil {
			continue
		}
		if rs.deprecated == nil {
			rs.deprecated = map[string]http.Header{}
		}
		successor := latest
		if d.successor != "" && (rs.versions == nil || rs.versions[d.successor]) {
			successor = d.successor
		}
		rs.deprecated[v] = deprecationHeader(d, h.successorLink(s.Name, successor))
	}
	if len(h.retired) > 0 {
		rs.gone = newProblemWith(http.StatusGone, "version-retired",
			"This API version is retired; post to one of the current versions: "+strings.Join(accepted, ", ")+".",
			zapcore.InfoLevel, map[string]any{"current_versions": accepted})
		rs.goneLink = h.successorLink(s.Name, latest)
	}
	return nil
}

// latestVersion is the successor a sender is pointed to by default: the
// last accepted version that is not deprecated ("" when all are).
func latestVersion(accepted []string, deprecated map[string]*deprecation) string {
	latest := ""
	for _, v := range accepted {
		if deprecated[v] == nil {
			latest = v
		}
	}
	return latest
}

// successorLink is the Link header value pointing a source's senders to
// version, or nil when there is none.
func (h *Handler) successorLink(source, version string) []string {
	if version == "" {
		return nil
	}
	return []string{"<" + h.prefix + "/" + version + "/" + source + `>; rel="successor-version"`}
}

// deprecationHeader renders a deprecation as Deprecation (RFC 9745),
// Sunset (RFC 8594) and, when link is not nil, Link.
func deprecationHeader(d *deprecation, link []string) http.Header {
	hdr := http.Header{
		"Deprecation": {"@" + strconv.FormatInt(d.since.Unix(), 10)},
		"Sunset":      {d.sunset.Format(http.TimeFormat)},
	}
	if link != nil {
		hdr["Link"] = link
	}
	return hdr
}
