package verify

import "errors"

// The reasons Reason returns, a small fixed set suited to a metric label
// (caddy_webhooks_verify_failures_total{reason}).
const (
	// ReasonMissingHeader: a required signature, timestamp or token header
	// (or body field) is absent (ErrMissing).
	ReasonMissingHeader = "missing_header"
	// ReasonMalformed: a signature or timestamp could not be parsed
	// (ErrMalformed).
	ReasonMalformed = "malformed"
	// ReasonStaleTimestamp: the signed timestamp is outside the tolerance,
	// in the past or the future (ErrExpired).
	ReasonStaleTimestamp = "stale_timestamp"
	// ReasonMismatch: no signature matched any active secret
	// (ErrMismatch), and any error that wraps no sentinel.
	ReasonMismatch = "mismatch"
	// ReasonConfig: the verifier cannot judge the request because of the
	// source's configuration, such as a missing public URL (ErrConfig).
	ReasonConfig = "config"
)

// Reasons lists every value Reason returns for a non-nil error.
func Reasons() []string {
	return []string{ReasonMissingHeader, ReasonMalformed, ReasonStaleTimestamp, ReasonMismatch, ReasonConfig}
}

// Reason maps an error from a Verifier to one of Reasons(), for metrics;
// "" for nil. An error that wraps no sentinel counts as a mismatch: the
// request was not shown authentic.
func Reason(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrMissing):
		return ReasonMissingHeader
	case errors.Is(err, ErrMalformed):
		return ReasonMalformed
	case errors.Is(err, ErrExpired):
		return ReasonStaleTimestamp
	case errors.Is(err, ErrConfig):
		return ReasonConfig
	}
	return ReasonMismatch
}
