package verify

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

// TestReason maps each sentinel, wrapped as verifiers wrap it, to its
// metric label, and everything else to a label of the fixed set.
func TestReason(t *testing.T) {
	cases := []struct {
		err  error
		want string
	}{
		{nil, ""},
		{fail("x", ErrMissing, "no header"), "missing_header"},
		{fail("x", ErrMalformed, "bad"), "malformed"},
		{fail("x", ErrExpired, "old"), "stale_timestamp"},
		{fail("x", ErrMismatch, "no"), "mismatch"},
		{fmt.Errorf("%w: bad", ErrConfig), "config"},
		{errors.New("something else"), "mismatch"},
	}
	for _, c := range cases {
		got := Reason(c.err)
		if got != c.want {
			t.Errorf("Reason(%v) = %q, want %q", c.err, got, c.want)
		}
		if c.err != nil && !slices.Contains(Reasons(), got) {
			t.Errorf("Reason(%v) = %q, not in Reasons()", c.err, got)
		}
	}
	// A real rejection from a scheme.
	_, err := Must(Stripe("whsec_x")).Verify(request("{}", unix(1)))
	if Reason(err) != "missing_header" {
		t.Errorf("Reason(%v) = %q", err, Reason(err))
	}
}
