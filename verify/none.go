package verify

import "fmt"

func init() { Register("none", newNone) }

// None is the explicit opt-out: it accepts every request and learns nothing
// from it. A source must say "verify none" to get it; there is no default.
func None() Verifier { return none{} }

type none struct{}

// Verify implements Verifier.
func (none) Verify(*Request) (Result, error) { return Result{}, nil }

// Sign implements Signer: an unsigned request needs no headers.
func (none) Sign(*Request) error { return nil }

func newNone(c Config) (Verifier, error) {
	if len(c.Secrets) > 0 {
		return nil, fmt.Errorf("%w: scheme none takes no secret", ErrConfig)
	}
	if len(c.Options) > 0 {
		return nil, fmt.Errorf("%w: scheme none takes no options", ErrConfig)
	}
	return None(), nil
}

var (
	_ Verifier = none{}
	_ Signer   = none{}
)
