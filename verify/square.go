package verify

import (
	"crypto/sha256"
	"encoding/base64"
)

func init() { Register("square", newSquare) }

// Square verifies Square webhooks: x-square-hmacsha256-signature is the
// base64 HMAC-SHA256 of "<notification URL><body>" under the
// subscription's signature key. The URL is Request.URL, so a source behind
// a proxy must set its public_url to the notification URL registered with
// Square. The delivery id is the body's "event_id", the type its "type".
// No timestamp is signed. No options.
func Square(secrets ...string) (Verifier, error) {
	return newSquare(Config{Scheme: "square", Secrets: secrets})
}

type square struct{ ring keyring }

func newSquare(c Config) (Verifier, error) {
	ring, _, err := rawRing(c, sha256.New)
	if err != nil {
		return nil, err
	}
	return &square{ring}, nil
}

// Verify implements Verifier.
func (s *square) Verify(r *Request) (Result, error) {
	if r.URL == nil {
		return Result{}, fail("square", ErrConfig, "the notification URL is unknown: set the source's public_url")
	}
	const name = "X-Square-Hmacsha256-Signature"
	sig, err := decodeOne("square", name, r.Header.Get(name), "", base64.StdEncoding.DecodeString)
	if err != nil {
		return Result{}, err
	}
	if !s.ring.match([][]byte{sig}, []byte(r.URL.String()), r.Body) {
		return Result{}, s.ring.mismatch("square", 1)
	}
	f := fields(r.Body, "event_id", "type")
	return Result{ID: text(f[0]), Type: text(f[1])}, nil
}

// Sign implements Signer.
func (s *square) Sign(r *Request) error {
	if r.URL == nil {
		return fail("square", ErrConfig, "signing needs the notification URL")
	}
	headers(r).Set("X-Square-Hmacsha256-Signature", base64.StdEncoding.EncodeToString(s.ring.sign([]byte(r.URL.String()), r.Body)))
	return nil
}

var (
	_ Verifier = (*square)(nil)
	_ Signer   = (*square)(nil)
)
