package verify

import (
	"testing"
)

// SendGrid's vector, from sendgrid-go helpers/eventwebhook/eventwebhook_test.go
// (TestVerifySignature): the public key, timestamp and signature below
// over the payload json.Marshal makes of {"event": "test_event",
// "category": "example_payload", "message_id": "message_id"} (keys sorted).
const (
	sendgridDocPublic = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA=="
	sendgridDocTS     = 1588788367
	sendgridDocSig    = "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH2j/0="
	sendgridDocBody   = `{"category":"example_payload","event":"test_event","message_id":"message_id"}`
)

func sendgridRequest(body, sig, ts string, now int64) *Request {
	return request(body, unix(now), "X-Twilio-Email-Event-Webhook-Signature", sig, "X-Twilio-Email-Event-Webhook-Timestamp", ts)
}

func TestSendGridKnownAnswer(t *testing.T) {
	v := Must(New(Config{Scheme: "sendgrid", Secrets: []string{sendgridDocPublic}}))
	accept(t, v, sendgridRequest(sendgridDocBody, sendgridDocSig, "1588788367", sendgridDocTS), Result{})
	// sendgrid-go's negative cases: another payload, a corrupt signature,
	// an invalid or empty timestamp.
	reject(t, v, sendgridRequest("this is not valid payload for the given signature", sendgridDocSig, "1588788367", sendgridDocTS), ErrMismatch)
	reject(t, v, sendgridRequest(sendgridDocBody, sendgridDocSig+"causing failure", "1588788367", sendgridDocTS), ErrMalformed)
	reject(t, v, sendgridRequest(sendgridDocBody, sendgridDocSig, "invalid timestamp", sendgridDocTS), ErrMalformed)
	reject(t, v, sendgridRequest(sendgridDocBody, sendgridDocSig, "", sendgridDocTS), ErrMissing)
	reject(t, v, sendgridRequest(sendgridDocBody, "", "1588788367", sendgridDocTS), ErrMissing)
	reject(t, v, sendgridRequest(sendgridDocBody, sendgridDocSig, "1588788367", sendgridDocTS+301), ErrExpired)
	// The private key of the same pair verifies too, and signs.
	s, err := NewSigner(Config{Scheme: "sendgrid", Secrets: []string{sendgridPriv}})
	if err != nil {
		t.Fatal(err)
	}
	r := request(`[{"event":"open","sg_event_id":"e1"}]`, unix(sendgridDocTS))
	if err := s.Sign(r); err != nil {
		t.Fatal(err)
	}
	accept(t, v, r, Result{ID: "e1", Type: "open"})
	if _, err := NewSigner(Config{Scheme: "sendgrid", Secrets: []string{sendgridDocPublic}}); err == nil {
		t.Fatal("NewSigner accepted a public key")
	}
	for _, bad := range []string{"not base64!", "AAAA", sendgridDocPublic[:40]} {
		if _, err := New(Config{Scheme: "sendgrid", Secrets: []string{bad}}); err == nil {
			t.Errorf("key %q accepted", bad)
		}
	}
}
