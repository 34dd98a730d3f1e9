package verify

import "testing"

// The example of Paddle's Go SDK, PaddleHQ/paddle-go-sdk
// example_webhook_verifier_test.go: secret key, Paddle-Signature and body.
const (
	paddleSecret = "pdl_ntfset_01hsdn8d43dt7mezr1ef2jtbaw_hKkRiCGyyRhbFwIUuqiTBgI7gnWoV0Gr"
	paddleSig    = "ts=1710929255;h1=6c05ef8fa83c44d751be6d259ec955ce5638e2c54095bf128e408e2fce1589c8"
	paddleTS     = 1710929255
	paddleBody   = `{"data":{"id":"pri_01hsdn96k2hxjzsq5yerecdj9j","name":null,"status":"active","quantity":{"maximum":999999,"minimum":1},"tax_mode":"account_setting","product_id":"pro_01hsdn8qp7yydry3x1yeg6a9rv","unit_price":{"amount":"1000","currency_code":"USD"},"custom_data":null,"description":"testing","import_meta":null,"trial_period":null,"billing_cycle":{"interval":"month","frequency":1},"unit_price_overrides":[]},"event_id":"evt_01hsdn97563968dy0szkmgjwh3","event_type":"price.created","occurred_at":"2024-03-20T10:07:35.590857Z","notification_id":"ntf_01hsdn977e920kbgzt6r6c9rqc"}`
)

func TestPaddleKnownAnswer(t *testing.T) {
	v := Must(Paddle(paddleSecret))
	want := Result{ID: "evt_01hsdn97563968dy0szkmgjwh3", Type: "price.created"}
	accept(t, v, request(paddleBody, unix(paddleTS), "Paddle-Signature", paddleSig), want)
	// Two h1 during a secret rotation, in either order.
	accept(t, v, request(paddleBody, unix(paddleTS), "Paddle-Signature", paddleSig+";h1=00ff"), want)
	accept(t, v, request(paddleBody, unix(paddleTS), "Paddle-Signature", "ts=1710929255;h1=00ff;"+paddleSig[len("ts=1710929255;"):]), want)

	reject(t, v, request(paddleBody+"\n", unix(paddleTS), "Paddle-Signature", paddleSig), ErrMismatch)
	reject(t, Must(Paddle(paddleSecret+"x")), request(paddleBody, unix(paddleTS), "Paddle-Signature", paddleSig), ErrMismatch)
	reject(t, v, request(paddleBody, unix(paddleTS+301), "Paddle-Signature", paddleSig), ErrExpired)
	reject(t, v, request(paddleBody, unix(paddleTS-301), "Paddle-Signature", paddleSig), ErrExpired)
	reject(t, v, request(paddleBody, unix(paddleTS)), ErrMissing)
	reject(t, v, request(paddleBody, unix(paddleTS), "Paddle-Signature", "ts=1710929255"), ErrMalformed)
	reject(t, v, request(paddleBody, unix(paddleTS), "Paddle-Signature", "h1=6c05"), ErrMalformed)
	reject(t, v, request(paddleBody, unix(paddleTS), "Paddle-Signature", "ts=1710929255,h1=6c05"), ErrMalformed)
	// Stripe's header shape under Paddle's name fails.
	reject(t, v, request(paddleBody, unix(paddleTS), "Paddle-Signature", "t=1710929255,v1=6c05ef8fa83c44d751be6d259ec955ce5638e2c54095bf128e408e2fce1589c8"), ErrMalformed)
}
