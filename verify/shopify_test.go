package verify

import "testing"

// Shopify publishes no fixed vector and its libraries sign at test time,
// so this one was computed independently:
// printf '%s' "$body" | openssl dgst -sha256 -hmac hush -binary | base64
const (
	shopifySecret = "hush"
	shopifyBody   = `{"id":820982911946154508,"email":"jon@example.com"}`
	shopifySig    = "D0UMXmhjwBRi4y66TmhJrDlhQABD7zI2fm3p6/QLMo8="
)

func TestShopifyKnownAnswer(t *testing.T) {
	v := Must(Shopify(shopifySecret))
	r := request(shopifyBody, unix(0), "X-Shopify-Hmac-Sha256", shopifySig,
		"X-Shopify-Webhook-Id", "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043", "X-Shopify-Topic", "orders/create")
	accept(t, v, r, Result{ID: "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043", Type: "orders/create"})
	reject(t, v, request(shopifyBody[1:], unix(0), "X-Shopify-Hmac-Sha256", shopifySig), ErrMismatch)
	reject(t, Must(Shopify("hush!")), request(shopifyBody, unix(0), "X-Shopify-Hmac-Sha256", shopifySig), ErrMismatch)
	reject(t, v, request(shopifyBody, unix(0)), ErrMissing)
	reject(t, v, request(shopifyBody, unix(0), "X-Shopify-Hmac-Sha256", "D0UMXmhj!"), ErrMalformed)
	// The hex form of the same MAC is not what Shopify sends.
	reject(t, v, request(shopifyBody, unix(0), "X-Shopify-Hmac-Sha256", "0f450c5e68638014"), ErrMismatch)
}
