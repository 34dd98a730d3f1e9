package verify

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

func init() { Register("stripe", newStripe) }

// Stripe verifies Stripe webhooks: Stripe-Signature is
// "t=<unix>,v1=<hex>[,v1=<hex>...]", each v1 the HMAC-SHA256 of
// "<t>.<body>" under the endpoint's signing secret (whsec_..., used as it
// is). During a secret roll Stripe sends one v1 per active secret. The
// timestamp must be within the tolerance. The delivery id and type are the
// event's "id" (evt_...) and "type" from the body.
//
// No options.
func Stripe(secrets ...string) (Verifier, error) {
	return newStripe(Config{Scheme: "stripe", Secrets: secrets})
}

type stripe struct {
	ring keyring
	tol  time.Duration
}

func newStripe(c Config) (Verifier, error) {
	ring, tol, err := rawRing(c, sha256.New)
	if err != nil {
		return nil, err
	}
	return &stripe{ring, tol}, nil
}

// parseStripeSignature reads Stripe-Signature into its timestamp and v1
// signatures; v0 and future schemes are ignored.
func parseStripeSignature(value string) (ts string, sigs [][]byte, err error) {
	return keyValues("stripe", "Stripe-Signature", value, ',', "t", "v1", hex.DecodeString)
}

var dot = []byte{'.'}

// Verify implements Verifier.
func (s *stripe) Verify(r *Request) (Result, error) {
	ts, sigs, err := parseStripeSignature(r.Header.Get("Stripe-Signature"))
	if err != nil {
		return Result{}, err
	}
	if err := checkTimestamp("stripe", "Stripe-Signature t=", ts, time.Second, r.now(), s.tol); err != nil {
		return Result{}, err
	}
	if len(sigs) == 0 {
		return Result{}, fail("stripe", ErrMismatch, "Stripe-Signature carries no v1 signature")
	}
	if !s.ring.match(sigs, []byte(ts), dot, r.Body) {
		return Result{}, s.ring.mismatch("stripe", len(sigs))
	}
	f := fields(r.Body, "id", "type")
	return Result{ID: text(f[0]), Type: text(f[1])}, nil
}

// Sign implements Signer.
func (s *stripe) Sign(r *Request) error {
	ts := unixText(r.now(), time.Second)
	sig := s.ring.sign([]byte(ts), dot, r.Body)
	headers(r).Set("Stripe-Signature", "t="+ts+",v1="+hex.EncodeToString(sig))
	return nil
}

var (
	_ Verifier = (*stripe)(nil)
	_ Signer   = (*stripe)(nil)
)
