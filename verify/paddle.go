package verify

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

func init() { Register("paddle", newPaddle) }

// Paddle verifies Paddle Billing webhooks: Paddle-Signature is
// "ts=<unix>;h1=<hex>[;h1=<hex>...]", each h1 the HMAC-SHA256 of
// "<ts>:<body>" under the notification destination's secret key
// (pdl_ntfset_..., used as it is); ts must be within the tolerance. The
// delivery id is the body's "event_id", the type its "event_type".
// No options.
func Paddle(secrets ...string) (Verifier, error) {
	return newPaddle(Config{Scheme: "paddle", Secrets: secrets})
}

type paddle struct {
	ring keyring
	tol  time.Duration
}

func newPaddle(c Config) (Verifier, error) {
	ring, tol, err := rawRing(c, sha256.New)
	if err != nil {
		return nil, err
	}
	return &paddle{ring, tol}, nil
}

// parsePaddleSignature reads Paddle-Signature into its timestamp and h1
// signatures.
func parsePaddleSignature(value string) (ts string, sigs [][]byte, err error) {
	return keyValues("paddle", "Paddle-Signature", value, ';', "ts", "h1", hex.DecodeString)
}

// Verify implements Verifier.
func (p *paddle) Verify(r *Request) (Result, error) {
	ts, sigs, err := parsePaddleSignature(r.Header.Get("Paddle-Signature"))
	if err != nil {
		return Result{}, err
	}
	if err := checkTimestamp("paddle", "Paddle-Signature ts=", ts, time.Second, r.now(), p.tol); err != nil {
		return Result{}, err
	}
	if len(sigs) == 0 {
		return Result{}, fail("paddle", ErrMalformed, "Paddle-Signature carries no h1 signature")
	}
	if !p.ring.match(sigs, []byte(ts), colon, r.Body) {
		return Result{}, p.ring.mismatch("paddle", len(sigs))
	}
	f := fields(r.Body, "event_id", "event_type")
	return Result{ID: text(f[0]), Type: text(f[1])}, nil
}

// Sign implements Signer.
func (p *paddle) Sign(r *Request) error {
	ts := unixText(r.now(), time.Second)
	headers(r).Set("Paddle-Signature", "ts="+ts+";h1="+hex.EncodeToString(p.ring.sign([]byte(ts), colon, r.Body)))
	return nil
}

var (
	_ Verifier = (*paddle)(nil)
	_ Signer   = (*paddle)(nil)
)
