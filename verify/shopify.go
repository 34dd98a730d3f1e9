package verify

import (
	"crypto/sha256"
	"encoding/base64"
)

func init() { Register("shopify", newShopify) }

// Shopify verifies Shopify webhooks: X-Shopify-Hmac-Sha256 is the base64
// HMAC-SHA256 of the body under the app's client secret. The delivery id
// is X-Shopify-Webhook-Id (the same on every retry), the type
// X-Shopify-Topic ("orders/create"). No timestamp is signed. No options.
func Shopify(secrets ...string) (Verifier, error) {
	return newShopify(Config{Scheme: "shopify", Secrets: secrets})
}

type shopify struct{ ring keyring }

func newShopify(c Config) (Verifier, error) {
	ring, _, err := rawRing(c, sha256.New)
	if err != nil {
		return nil, err
	}
	return &shopify{ring}, nil
}

// Verify implements Verifier.
func (s *shopify) Verify(r *Request) (Result, error) {
	sig, err := decodeOne("shopify", "X-Shopify-Hmac-Sha256", r.Header.Get("X-Shopify-Hmac-Sha256"), "", base64.StdEncoding.DecodeString)
	if err != nil {
		return Result{}, err
	}
	if !s.ring.match([][]byte{sig}, r.Body) {
		return Result{}, s.ring.mismatch("shopify", 1)
	}
	return Result{ID: r.Header.Get("X-Shopify-Webhook-Id"), Type: r.Header.Get("X-Shopify-Topic")}, nil
}

// Sign implements Signer. It adds a random X-Shopify-Webhook-Id when none
// is set.
func (s *shopify) Sign(r *Request) error {
	h := headers(r)
	setDefault(h, "X-Shopify-Webhook-Id", uuid4())
	h.Set("X-Shopify-Hmac-Sha256", base64.StdEncoding.EncodeToString(s.ring.sign(r.Body)))
	return nil
}

var (
	_ Verifier = (*shopify)(nil)
	_ Signer   = (*shopify)(nil)
)
