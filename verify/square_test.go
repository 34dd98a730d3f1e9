package verify

import "testing"

// The vector shared by Square's SDK test suites (square/square-go-sdk
// client/webhooks_helper_test.go, square-nodejs-sdk, square-python-sdk):
// signature key, notification URL and body.
const (
	squareKey  = "Ibxx_5AKakO-3qeNVR61Dw"
	squareURL  = "https://webhook.site/679a4f3a-dcfa-49ee-bac5-9d0edad886b9"
	squareBody = `{"merchant_id":"MLEFBHHSJGVHD","type":"webhooks.test_notification","event_id":"ac3ac95b-f97d-458c-a6e6-18981597e05f","created_at":"2022-07-13T20:30:59.037339943Z","data":{"type":"webhooks","id":"bc368e64-01aa-407e-b46e-3231809b1129"}}`
	squareSig  = "GF4YkrJgGBDZ9NIYbNXBnMzqb2HoL4RW/S6vkZ9/2N4="
)

func TestSquareKnownAnswer(t *testing.T) {
	v := Must(Square(squareKey))
	r := withURL(t, request(squareBody, unix(0), "x-square-hmacsha256-signature", squareSig), squareURL)
	accept(t, v, r, Result{ID: "ac3ac95b-f97d-458c-a6e6-18981597e05f", Type: "webhooks.test_notification"})

	// The SDKs' second case: characters JSON might escape are signed raw.
	accept(t, Must(Square("signature-key")), withURL(t, request(`{"data":{"type":"webhooks","id":">id<"}}`, unix(0),
		"x-square-hmacsha256-signature", "Cxt7+aTi4rKgcA0bC4g9EHdVtLSDWdqccmL5MvihU4U="), "https://webhook.site/webhooks"), Result{})

	reject(t, v, withURL(t, request(squareBody, unix(0), "x-square-hmacsha256-signature", squareSig), squareURL+"/"), ErrMismatch)
	reject(t, v, withURL(t, request(squareBody+" ", unix(0), "x-square-hmacsha256-signature", squareSig), squareURL), ErrMismatch)
	reject(t, Must(Square("Ibxx_5AKakO-3qeNVR61Dx")), withURL(t, request(squareBody, unix(0), "x-square-hmacsha256-signature", squareSig), squareURL), ErrMismatch)
	reject(t, v, withURL(t, request(squareBody, unix(0)), squareURL), ErrMissing)
	reject(t, v, withURL(t, request(squareBody, unix(0), "x-square-hmacsha256-signature", "%%%"), squareURL), ErrMalformed)
	reject(t, v, request(squareBody, unix(0), "x-square-hmacsha256-signature", squareSig), ErrConfig)
}
