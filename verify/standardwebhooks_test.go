package verify

import (
	"crypto/ed25519"
	"encoding/base64"
	"testing"
)

// The Standard Webhooks test vector, used by the reference libraries and
// by Svix's SDK suites (e.g. svix/svix-webhooks php/tests/WebhookTest.php,
// testSignFunctionWorks): secret, id, timestamp and body give this v1.
const (
	swSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	swID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	swTS     = 1614265330
	swBody   = `{"test": 2432232314}`
	swSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

// The v1a (Ed25519) vector of the Standard Webhooks Go library,
// libraries/go/webhook_asymmetric_test.go TestAsymmetricWebhookSign: the
// seed signs the same id, timestamp and body.
const (
	swSeed   = "VEVTVFNJR05JTkdLRVlET05PVFVTRVRISVNGT1JBTlk="
	swSigV1a = "v1a,tQ9V2XOqn7jL/DQenEFpqIugdBVtiMmER5mhSkXBNwM0mkATuDe6KYYUuxqtaiHeYGb7KaaBRdM5WqyeFiL8Ag=="
)

func swRequest(sig string, now int64) *Request {
	return request(swBody, unix(now), "webhook-id", swID, "webhook-timestamp", "1614265330", "webhook-signature", sig)
}

func TestStandardWebhooksKnownAnswer(t *testing.T) {
	v := Must(StandardWebhooks(swSecret))
	accept(t, v, swRequest(swSig, swTS), Result{ID: swID})
	// The prefix is optional, as in the reference libraries.
	accept(t, Must(StandardWebhooks(swSecret[len("whsec_"):])), swRequest(swSig, swTS), Result{ID: swID})
	// Several signatures, unknown versions and junk among them.
	accept(t, v, swRequest("v2,abc v1,bm9wZQ== junk "+swSig, swTS), Result{ID: swID})

	reject(t, v, request(swBody+" ", unix(swTS), "webhook-id", swID, "webhook-timestamp", "1614265330", "webhook-signature", swSig), ErrMismatch)
	reject(t, v, request(swBody, unix(swTS), "webhook-id", swID+"x", "webhook-timestamp", "1614265330", "webhook-signature", swSig), ErrMismatch)
	reject(t, Must(StandardWebhooks("whsec_"+base64.StdEncoding.EncodeToString([]byte("another secret")))), swRequest(swSig, swTS), ErrMismatch)
	reject(t, v, swRequest(swSig, swTS+301), ErrExpired)
	reject(t, v, swRequest(swSig, swTS-301), ErrExpired)
	reject(t, v, swRequest("v1,", swTS), ErrMalformed)
	reject(t, v, swRequest("v1 g0hM9SsE", swTS), ErrMalformed)
	reject(t, v, request(swBody, unix(swTS), "webhook-timestamp", "1614265330", "webhook-signature", swSig), ErrMissing)
	reject(t, v, request(swBody, unix(swTS), "webhook-id", swID, "webhook-signature", swSig), ErrMissing)
	reject(t, v, request(swBody, unix(swTS), "webhook-id", swID, "webhook-timestamp", "1614265330"), ErrMissing)
	reject(t, v, request(swBody, unix(swTS), "webhook-id", swID, "webhook-timestamp", "1614265330.5", "webhook-signature", swSig), ErrMalformed)
	// A Stripe-style header under the right name is no signature.
	reject(t, v, swRequest("t=1614265330,v1=abcd", swTS), ErrMalformed)
}

func TestStandardWebhooksV1a(t *testing.T) {
	seed, _ := base64.StdEncoding.DecodeString(swSeed)
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	whpk := "whpk_" + base64.StdEncoding.EncodeToString(pub)

	v := Must(StandardWebhooks(whpk))
	accept(t, v, swRequest(swSigV1a, swTS), Result{ID: swID})
	// An HMAC secret and a public key side by side: either kind verifies.
	mixed := Must(StandardWebhooks(swSecret, whpk))
	accept(t, mixed, swRequest(swSig, swTS), Result{ID: swID})
	accept(t, mixed, swRequest(swSigV1a, swTS), Result{ID: swID})
	// A v1a signature is never checked as a v1 HMAC, nor the reverse.
	reject(t, Must(StandardWebhooks(swSecret)), swRequest(swSigV1a, swTS), ErrMismatch)
	reject(t, v, swRequest(swSig, swTS), ErrMismatch)

	// Signing with the whsk_ key reproduces the library's signature.
	s, err := NewSigner(Config{Scheme: "standard-webhooks", Secrets: []string{"whsk_" + swSeed}})
	if err != nil {
		t.Fatal(err)
	}
	r := request(swBody, unix(swTS), "webhook-id", swID)
	if err := s.Sign(r); err != nil {
		t.Fatal(err)
	}
	if got := r.Header.Get("webhook-signature"); got != swSigV1a {
		t.Fatalf("v1a signature\n got %s\nwant %s", got, swSigV1a)
	}
	if _, err := NewSigner(Config{Scheme: "standard-webhooks", Secrets: []string{whpk}}); err == nil {
		t.Fatal("NewSigner accepted a public key")
	}
}

func TestStandardWebhooksSignKnownAnswer(t *testing.T) {
	s, err := NewSigner(Config{Scheme: "standard-webhooks", Secrets: []string{swSecret}})
	if err != nil {
		t.Fatal(err)
	}
	r := request(swBody, unix(swTS), "webhook-id", swID)
	if err := s.Sign(r); err != nil {
		t.Fatal(err)
	}
	if got := r.Header.Get("webhook-signature"); got != swSig {
		t.Fatalf("signature %s, want %s", got, swSig)
	}
	if got := r.Header.Get("webhook-timestamp"); got != "1614265330" {
		t.Fatalf("timestamp %s", got)
	}
}

func TestStandardWebhooksBadSecrets(t *testing.T) {
	for _, s := range []string{"whsec_!!!", "whpk_AAAA", "whsk_AAAA", "whsec_"} {
		if _, err := StandardWebhooks(s); err == nil {
			t.Errorf("secret %q accepted", s)
		} else {
			noSecretIn(t, err, "!!!", "AAAA")
		}
	}
}

func TestSvixKnownAnswer(t *testing.T) {
	// The same vector under svix-* headers (svix/svix-webhooks SDK suites).
	v := Must(Svix(swSecret))
	body := `{"type":"user.created","data":{"id":"user_29w83sxmDNGwOuEthce5gg56FcC"}}`
	s := Must(Svix(swSecret)).(Signer)
	r := request(body, unix(swTS), "svix-id", swID)
	if err := s.Sign(r); err != nil {
		t.Fatal(err)
	}
	accept(t, v, r, Result{ID: swID, Type: "user.created"})
	accept(t, v, request(swBody, unix(swTS), "svix-id", swID, "svix-timestamp", "1614265330", "svix-signature", swSig), Result{ID: swID})
	// Svix's libraries fall back to the webhook-* headers.
	accept(t, v, swRequest(swSig, swTS), Result{ID: swID})
	reject(t, v, request(swBody, unix(swTS), "svix-id", swID, "svix-timestamp", "1614265331", "svix-signature", swSig), ErrMismatch)
	reject(t, v, request(swBody, unix(swTS), "svix-id", swID, "svix-timestamp", "1614265330"), ErrMissing)
}

func TestStandardWebhooksBoundedWork(t *testing.T) {
	seed, _ := base64.StdEncoding.DecodeString(swSeed)
	whpk := "whpk_" + base64.StdEncoding.EncodeToString(ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey))
	other := "whpk_" + base64.StdEncoding.EncodeToString(make([]byte, 32))
	junk := "v1a," + base64.StdEncoding.EncodeToString(make([]byte, 64))
	header := func(n int) string {
		s := ""
		for range n {
			s += junk + " "
		}
		return s + swSigV1a
	}
	// The valid signature as the 8th is read, as the 9th it is not.
	accept(t, Must(StandardWebhooks(whpk)), swRequest(header(MaxSignatures-1), swTS), Result{ID: swID})
	reject(t, Must(StandardWebhooks(whpk)), swRequest(header(MaxSignatures), swTS), ErrMismatch)
	// With two keys, at most MaxSignatures key-signature pairs are tried.
	accept(t, Must(StandardWebhooks(whpk, other)), swRequest(header(MaxSignatures-1), swTS), Result{ID: swID})
	reject(t, Must(StandardWebhooks(other, whpk)), swRequest(header(4), swTS), ErrMismatch)
	accept(t, Must(StandardWebhooks(other, whpk)), swRequest(header(3), swTS), Result{ID: swID})
}
